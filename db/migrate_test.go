package db

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeV1 writes a file exactly as schema version 1 (the walking skeleton)
// did: meta/schema_version "1" and fingerprints with v1 records.
func writeV1(t *testing.T, path string, records map[string]string) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := m.Put([]byte("schema_version"), []byte("1")); err != nil {
			return err
		}
		f, err := tx.CreateBucket([]byte("fingerprints"))
		if err != nil {
			return err
		}
		for k, v := range records {
			if err := f.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func v1Record(kind, value, label, conf string, first, last string, block uint64) string {
	return `{"kind":"` + kind + `","value":"` + value + `","label":"` + label + `","category":"c2","source":"v1-test","confidence":"` + conf +
		`","notes":"kept","block_count":` + jsonNum(block) + `,"top_count":0,"first_seen":"` + first + `","last_seen":"` + last + `"}`
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestMigrateV1ToV2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	writeV1(t, path, map[string]string{
		"jarm\x00" + jarmA:      v1Record("jarm", jarmA, "cs", "high", "2025-01-02T03:04:05Z", "2025-02-03T04:05:06Z", 7),
		"cert_sha1\x00" + sha1A: v1Record("cert_sha1", sha1A, "sslbl", "", "2025-01-05T00:00:00Z", "2025-01-05T00:00:00Z", 0),
	})

	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.MigratedFrom() != 1 {
		t.Errorf("MigratedFrom = %d, want 1", d.MigratedFrom())
	}
	r, ok, err := d.Get("jarm", jarmA)
	if err != nil || !ok {
		t.Fatalf("Get after migration: %v %v", ok, err)
	}
	wantAdded := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	wantUpdated := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	if !r.Added.Equal(wantAdded) || !r.Updated.Equal(wantUpdated) {
		t.Errorf("added %v updated %v, want v1 first/last seen %v %v", r.Added, r.Updated, wantAdded, wantUpdated)
	}
	if !r.FirstSeen.IsZero() || !r.LastSeen.IsZero() {
		t.Errorf("first/last seen %v %v, want empty after migration", r.FirstSeen, r.LastSeen)
	}
	if r.Label != "cs" || r.Category != "c2" || r.Source != "v1-test" || r.Confidence != "high" || r.Notes != "kept" || r.BlockCount != 7 {
		t.Errorf("curated fields changed: %+v", r)
	}
	if c, _, _ := d.Get("cert_sha1", sha1A); c.Confidence != "medium" {
		t.Errorf("empty v1 confidence migrated to %q, want medium", c.Confidence)
	}
	// The new buckets work at once.
	if _, err := d.ObservationsWith("jarm", jarmA, time.Time{}); err != nil {
		t.Errorf("observations after migration: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// On disk: version 2 and one migration recorded; reopening migrates nothing.
	raw := rawMeta(t, path)
	if raw["schema_version"] != "2" {
		t.Errorf("schema_version = %q", raw["schema_version"])
	}
	var hist []migrationRecord
	if err := json.Unmarshal([]byte(raw["migrations"]), &hist); err != nil || len(hist) != 1 || hist[0].From != 1 || hist[0].To != 2 {
		t.Errorf("migrations = %s (%v)", raw["migrations"], err)
	}
	d, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.MigratedFrom() != 0 {
		t.Errorf("second open migrated again from %d", d.MigratedFrom())
	}
	d.Close()
}

func TestMigrateFailureLeavesV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1bad.db")
	writeV1(t, path, map[string]string{
		"jarm\x00" + jarmA: v1Record("jarm", jarmA, "ok", "low", "2025-01-02T03:04:05Z", "2025-01-02T03:04:05Z", 0),
		"jarm\x00" + jarmB: `{"kind":"jarm","value":"` + jarmB + `","label":""}`, // v1 never wrote this; a hand edit did
	})
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "migrate schema 1 → 2") || !strings.Contains(err.Error(), "label: required") {
		t.Fatalf("Open: err = %v, want a migration error naming the bad record", err)
	}
	if v := rawMeta(t, path)["schema_version"]; v != "1" {
		t.Errorf("failed migration left schema_version %q, want 1", v)
	}
}

func TestReadOnlyOpenOfV1SaysHowToMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1ro.db")
	writeV1(t, path, nil)
	_, err := Open(path, Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "schema version 1") || !strings.Contains(err.Error(), "migrate") {
		t.Fatalf("read-only open of v1: %v", err)
	}
}

func rawMeta(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := map[string]string{}
	err = b.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
