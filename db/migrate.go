package db

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// migration upgrades a file from version n to n+1 inside the transaction
// that Open runs; a failure rolls everything back and leaves the file at
// its old version.
type migration struct {
	run  func(tx *bolt.Tx, now time.Time) error
	note string // recorded in meta/migrations
}

// migrations[n] upgrades version n to n+1.
func migrations() map[int]migration {
	return map[int]migration{
		1: {migrateV1ToV2, "fingerprint first_seen/last_seen moved to added/updated; buckets observations, obs_index, learn_targets, learned added"},
	}
}

// migrationRecord is one entry of meta/migrations.
type migrationRecord struct {
	From int       `json:"from"`
	To   int       `json:"to"`
	At   time.Time `json:"at"`
	Note string    `json:"note"`
}

// migrate brings a writable file to SchemaVersion: a new file gets every
// bucket and the current version; an older file runs each migration in
// order. It returns the version it migrated from, 0 if none ran.
func migrate(tx *bolt.Tx, now time.Time) (int, error) {
	meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
	if err != nil {
		return 0, fmt.Errorf("create bucket meta: %w", err)
	}
	v, present, err := readVersion(meta)
	if err != nil {
		return 0, err
	}
	if !present {
		// A new file, or one whose meta was never written: version 1 files
		// always had it, so this is a fresh start.
		v = SchemaVersion
	}
	if v > SchemaVersion {
		return 0, fmt.Errorf("schema version %d: this stackprint reads version %d; use a newer stackprint", v, SchemaVersion)
	}
	from := 0
	if v < SchemaVersion {
		from = v
	}
	ms := migrations()
	for ; v < SchemaVersion; v++ {
		m, ok := ms[v]
		if !ok {
			return 0, fmt.Errorf("schema version %d: no migration to %d", v, v+1)
		}
		if err := m.run(tx, now); err != nil {
			return 0, fmt.Errorf("migrate schema %d → %d: %w", v, v+1, err)
		}
		if err := appendMigration(meta, migrationRecord{From: v, To: v + 1, At: now, Note: m.note}); err != nil {
			return 0, err
		}
	}
	for _, name := range schemaBuckets() {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return 0, fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if err := ensureNearIndex(tx); err != nil {
		return 0, err
	}
	if err := markObsNearIndexed(tx); err != nil {
		return 0, err
	}
	if err := meta.Put([]byte(keySchemaVersion), []byte(strconv.Itoa(SchemaVersion))); err != nil {
		return 0, fmt.Errorf("write schema version: %w", err)
	}
	return from, nil
}

func readVersion(meta *bolt.Bucket) (int, bool, error) {
	raw := meta.Get([]byte(keySchemaVersion))
	if raw == nil {
		return 0, false, nil
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return 0, true, fmt.Errorf("meta schema_version %q: not a positive number", raw)
	}
	return v, true, nil
}

func appendMigration(meta *bolt.Bucket, m migrationRecord) error {
	var hist []migrationRecord
	if raw := meta.Get([]byte(keyMigrations)); raw != nil {
		if err := json.Unmarshal(raw, &hist); err != nil {
			return fmt.Errorf("decode meta migrations: %w", err)
		}
	}
	hist = append(hist, m)
	raw, err := json.Marshal(hist)
	if err != nil {
		return err
	}
	return meta.Put([]byte(keyMigrations), raw)
}

// checkSchemaReadOnly accepts a current file or one never initialised (an
// empty DB); it cannot migrate, so an older file is an error that says how
// to migrate it.
func checkSchemaReadOnly(tx *bolt.Tx) error {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		return nil
	}
	v, present, err := readVersion(meta)
	if err != nil || !present {
		return err
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("schema version %d: this stackprint reads version %d; use a newer stackprint", v, SchemaVersion)
	case v < SchemaVersion:
		return fmt.Errorf("schema version %d: open it writable once (start `stackprint run`, or run any `stackprint db` command while the daemon is stopped) to migrate it to %d", v, SchemaVersion)
	}
	return nil
}

// recordV1 is a fingerprint record as schema version 1 stored it. Its
// first_seen and last_seen were when the entry was added and last written,
// not when the fingerprint was seen.
type recordV1 struct {
	Kind       string    `json:"kind"`
	Value      string    `json:"value"`
	Label      string    `json:"label"`
	Category   string    `json:"category"`
	Source     string    `json:"source"`
	Confidence string    `json:"confidence"`
	Notes      string    `json:"notes"`
	BlockCount uint64    `json:"block_count"`
	TopCount   uint64    `json:"top_count"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
}

// migrateV1ToV2 rewrites every fingerprint record: v1's first_seen and
// last_seen move to added and updated (that is what they recorded), and
// first_seen/last_seen start empty, meaning "not seen in the wild yet". A
// record that no longer validates (v1 did not check the all-zero hash of
// non-JARM kinds) aborts the migration with its key, so nothing is lost
// silently. The new buckets are created by migrate.
func migrateV1ToV2(tx *bolt.Tx, now time.Time) error {
	b := tx.Bucket([]byte(bucketFingerprints))
	if b == nil {
		return nil
	}
	type kv struct{ k, v []byte }
	var rewrite []kv
	err := b.ForEach(func(k, v []byte) error {
		var old recordV1
		if err := json.Unmarshal(v, &old); err != nil {
			return fmt.Errorf("fingerprints key %q: decode v1 record: %w", k, err)
		}
		r := Record{
			Kind: old.Kind, Value: old.Value, Label: old.Label, Category: old.Category,
			Source: old.Source, Confidence: old.Confidence, Notes: old.Notes,
			BlockCount: old.BlockCount, TopCount: old.TopCount,
			Added: old.FirstSeen.UTC(), Updated: old.LastSeen.UTC(),
		}
		if r.Added.IsZero() {
			r.Added = now
		}
		if r.Updated.IsZero() {
			r.Updated = r.Added
		}
		if err := ValidateRecord(&r); err != nil {
			return fmt.Errorf("fingerprints key %q: %w", k, err)
		}
		if string(key(r.Kind, r.Value)) != string(k) {
			return fmt.Errorf("fingerprints key %q: record says %s %s", k, r.Kind, r.Value)
		}
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		rewrite = append(rewrite, kv{append([]byte(nil), k...), raw})
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range rewrite {
		if err := b.Put(e.k, e.v); err != nil {
			return fmt.Errorf("fingerprints key %q: %w", e.k, err)
		}
	}
	return nil
}
