package db

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/stackprint/stackprint"
)

const (
	jarmA = "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5"
	jarmB = "07d14d16d21d21d07c42d41d00041d24a458a375eef0c576d23a7bab9a9fb1"
	sha1A = "6aaabbccddeeff00112233445566778899aabbcc"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func openTest(t *testing.T) (*DB, *clock) {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "fp.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c := &clock{t: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}
	d.now = c.now
	return d, c
}

func TestOpenCreatesSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fp.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Path() != path {
		t.Errorf("Path() = %q, want %q", d.Path(), path)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Inspect the file with bbolt itself, not through the package.
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			t.Fatal("bucket meta missing")
		}
		if got := string(meta.Get([]byte("schema_version"))); got != "2" {
			t.Errorf("schema_version = %q, want \"2\"", got)
		}
		for _, name := range []string{"fingerprints", "observations", "obs_index", "learn_targets", "learned", "checkpoints", "pending"} {
			if tx.Bucket([]byte(name)) == nil {
				t.Errorf("bucket %s missing", name)
			}
		}
		if meta.Get([]byte("migrations")) != nil {
			t.Error("a new file records a migration")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fp.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(Record{Kind: "jarm", Value: jarmA, Label: "x"}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, ok, err := ro.Get("jarm", jarmA); err != nil || !ok {
		t.Fatalf("Get after reopen: ok=%v err=%v", ok, err)
	}
	if err := ro.Add(Record{Kind: "jarm", Value: jarmB, Label: "y"}); err == nil {
		t.Error("Add on a read-only DB succeeded")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fp.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return m.Put([]byte("schema_version"), []byte("3"))
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		_, err = Open(path, Options{ReadOnly: ro})
		if err == nil || !strings.Contains(err.Error(), "schema version 3") || !strings.Contains(err.Error(), "newer stackprint") {
			t.Fatalf("Open (read-only %v) of a v3 file: err = %v, want schema version error", ro, err)
		}
	}
}

func TestOpenLockedFailsClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fp.db")
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	for _, ro := range []bool{false, true} {
		done := make(chan error, 1)
		go func() {
			d, err := Open(path, Options{Timeout: 100 * time.Millisecond, ReadOnly: ro})
			if err == nil {
				d.Close()
			}
			done <- err
		}()
		select {
		case err = <-done:
		case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
			t.Fatalf("second Open (read-only %v) hangs on a locked file", ro)
		}
		if err == nil {
			t.Fatalf("second Open (read-only %v) of a locked file succeeded", ro)
		}
		if !errors.Is(err, bolterrors.ErrTimeout) {
			t.Errorf("error does not wrap bbolt ErrTimeout: %v", err)
		}
		for _, want := range []string{path, "locked by another process", "stackprint run", "100ms"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	}
}

func TestAddGetListRemove(t *testing.T) {
	d, _ := openTest(t)
	recs := []Record{
		{Kind: "jarm", Value: jarmB, Label: "b", Source: "s1", Confidence: "high"},
		{Kind: "cert_sha1", Value: sha1A, Label: "c", Category: "c2", Notes: "n"},
		{Kind: "jarm", Value: jarmA, Label: "a", Source: "s2"},
	}
	for _, r := range recs {
		if err := d.Add(r); err != nil {
			t.Fatal(err)
		}
	}

	got, ok, err := d.Get("JARM", strings.ToUpper(jarmB))
	if err != nil || !ok {
		t.Fatalf("Get: ok=%v err=%v", ok, err)
	}
	if got.Label != "b" || got.Source != "s1" || got.Confidence != "high" || got.Kind != "jarm" || got.Value != jarmB {
		t.Errorf("Get = %+v", got)
	}
	if got.Added.IsZero() || !got.Added.Equal(got.Updated) {
		t.Errorf("Added %v Updated %v, want both set and equal on first add", got.Added, got.Updated)
	}
	if !got.FirstSeen.IsZero() || !got.LastSeen.IsZero() {
		t.Errorf("FirstSeen %v LastSeen %v, want zero: never seen in the wild", got.FirstSeen, got.LastSeen)
	}

	all, err := d.List("")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range all {
		keys = append(keys, r.Kind+" "+r.Label)
	}
	if want := "cert_sha1 c,jarm b,jarm a"; // jarmB sorts before jarmA
	strings.Join(keys, ",") != want {
		t.Errorf("List(\"\") = %v, want %s", keys, want)
	}
	jarms, err := d.List("jarm")
	if err != nil || len(jarms) != 2 || jarms[0].Value != jarmB {
		t.Errorf("List(jarm) = %+v, %v", jarms, err)
	}
	if _, err := d.List("ja3"); err == nil {
		t.Error("List of an unknown kind succeeded")
	}

	// Colon form of a certificate hash finds the same record.
	colon := strings.ToUpper(sha1A[:2] + ":" + sha1A[2:4] + ":" + sha1A[4:])
	removed, err := d.Remove("cert_sha1", colon)
	if err != nil || !removed {
		t.Fatalf("Remove: removed=%v err=%v", removed, err)
	}
	removed, err = d.Remove("cert_sha1", sha1A)
	if err != nil || removed {
		t.Errorf("second Remove: removed=%v err=%v, want false, nil", removed, err)
	}
	if _, ok, _ := d.Get("cert_sha1", sha1A); ok {
		t.Error("record still there after Remove")
	}
}

func TestAddUpsertKeepsAddedAndWidensSeen(t *testing.T) {
	d, c := openTest(t)
	t0 := c.t
	listed := t0.Add(-24 * time.Hour)
	if err := d.Add(Record{Kind: "jarm", Value: jarmA, Label: "old", Confidence: "low", BlockCount: 3, FirstSeen: listed, LastSeen: listed}); err != nil {
		t.Fatal(err)
	}
	c.t = t0.Add(48 * time.Hour)
	if err := d.Add(Record{Kind: "jarm", Value: jarmA, Label: "new", FirstSeen: c.t, LastSeen: c.t}); err != nil {
		t.Fatal(err)
	}
	r, _, err := d.Get("jarm", jarmA)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Added.Equal(t0) || !r.Updated.Equal(c.t) {
		t.Errorf("Added %v Updated %v, want %v (first add) and %v", r.Added, r.Updated, t0, c.t)
	}
	if !r.FirstSeen.Equal(listed) || !r.LastSeen.Equal(c.t) {
		t.Errorf("seen %v..%v, want %v..%v (widened)", r.FirstSeen, r.LastSeen, listed, c.t)
	}
	if r.Label != "new" || r.Confidence != "medium" {
		t.Errorf("curated fields not replaced: %+v", r)
	}
	if r.BlockCount != 3 {
		t.Errorf("BlockCount = %d, want the learned 3 kept", r.BlockCount)
	}
}

func TestAddRejectsInvalid(t *testing.T) {
	d, _ := openTest(t)
	err := d.Add(Record{Kind: "jarm", Value: stackprint.ZeroJARM, Label: "x"})
	if err == nil {
		t.Fatal("Add of the zero JARM succeeded")
	}
	if all, _ := d.List(""); len(all) != 0 {
		t.Errorf("invalid record written: %+v", all)
	}
}

func TestMatch(t *testing.T) {
	d, _ := openTest(t)
	if err := d.Add(Record{Kind: "jarm", Value: jarmA, Label: "cs", Source: "salesforce", Confidence: "high"}); err != nil {
		t.Fatal(err)
	}
	// A record stored under the zero JARM must never match, even if a
	// buggy writer slipped one in past ValidateRecord.
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketFingerprints)).Put(key(KindJARM, stackprint.ZeroJARM), []byte(`{"kind":"jarm","value":"`+stackprint.ZeroJARM+`","label":"zero"}`))
	})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		jarm string
		want int
	}{
		{"hit", jarmA, 1},
		{"hit upper case", strings.ToUpper(jarmA), 1},
		{"miss", jarmB, 0},
		{"zero jarm", stackprint.ZeroJARM, 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := d.Match(stackprint.Result{JARM: tt.jarm, Status: stackprint.StatusOK})
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != tt.want {
				t.Fatalf("Match = %+v, want %d matches", ms, tt.want)
			}
			if tt.want == 1 {
				want := stackprint.Match{Kind: "jarm", Value: jarmA, Label: "cs", Source: "salesforce", Confidence: "high"}
				if ms[0] != want {
					t.Errorf("Match = %+v, want %+v", ms[0], want)
				}
			}
		})
	}
}

// TestMatchSTARTTLSApart: a JARM or ATSF taken through STARTTLS matches
// only entries keyed with its protocol, never the direct-TLS entry of the
// same hash, and vice versa; certificates match either way.
func TestMatchSTARTTLSApart(t *testing.T) {
	d, _ := openTest(t)
	jarm := "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f881577"
	atsf := strings.Repeat("ab", 32)
	cert := strings.Repeat("cd", 32)
	for _, r := range []Record{
		{Kind: KindJARM, Value: jarm, Label: "direct"},
		{Kind: KindJARM, Value: "SMTP:" + strings.ToUpper(jarm), Label: "via-smtp"},
		{Kind: KindATSF, Value: "smtp:" + atsf, Label: "atsf-smtp"},
		{Kind: KindCertSHA256, Value: cert, Label: "cert"},
	} {
		if err := d.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	labels := func(r stackprint.Result) []string {
		m, err := d.Match(r)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range m {
			out = append(out, x.Label)
		}
		slices.Sort(out)
		return out
	}
	res := stackprint.Result{JARM: jarm, ATSF: &stackprint.ATSF{ID: atsf}, Cert: &stackprint.CertFacts{SHA256: cert}}
	if got := labels(res); !slices.Equal(got, []string{"cert", "direct"}) {
		t.Errorf("direct TLS matched %v", got)
	}
	res.StartTLS = stackprint.StartTLSSMTP
	if got := labels(res); !slices.Equal(got, []string{"atsf-smtp", "cert", "via-smtp"}) {
		t.Errorf("STARTTLS smtp matched %v", got)
	}
	res.StartTLS = stackprint.StartTLSIMAP
	if got := labels(res); !slices.Equal(got, []string{"cert"}) {
		t.Errorf("STARTTLS imap matched %v", got)
	}
	for _, bad := range []string{"smtps:" + jarm, "smtp:" + jarm[:61]} {
		if err := d.Add(Record{Kind: KindJARM, Value: bad, Label: "x"}); err == nil {
			t.Errorf("value %q accepted", bad)
		}
	}
	if err := d.Add(Record{Kind: KindCertSHA256, Value: "smtp:" + cert, Label: "x"}); err == nil {
		t.Error("a certificate hash with a STARTTLS prefix was accepted")
	}
}
