package db

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// observe records a probe of addr answering hellos at at.
func observe(t *testing.T, d *DB, addr string, hellos []string, starttls string, at time.Time) {
	t.Helper()
	r := resultOf(hellos)
	ap := netip.MustParseAddrPort(addr)
	r.Target = stackprint.Target{IP: ap.Addr(), Port: ap.Port()}
	r.Started, r.StartTLS = at, starttls
	if err := d.RecordObservation(r); err != nil {
		t.Fatal(err)
	}
}

func nearTargets(t *testing.T, d *DB, rec Record, since time.Time) []string {
	t.Helper()
	ns, err := d.ObservationsNear(rec, since)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range ns {
		out = append(out, netip.AddrPortFrom(n.IP, n.Port).String()+" "+n.Near.Differs[0])
	}
	slices.Sort(out)
	return out
}

func obsNearKeyCount(t *testing.T, d *DB) int {
	t.Helper()
	n := 0
	if err := d.view(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(bucketObsNear)).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A new entry finds, through obs_near, the observed targets with 9 of 10
// answers equal to its own: not the one with equal answers (exact), not
// one two answers away, not one through STARTTLS, not one whose answers
// changed since, not one older than since; and pruning takes the pruned
// targets' keys out of the index.
func TestObservationsNearIndex(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now().UTC()
	alpn := "771_1301_43.AwQ-51.29_16.AAUEaW1hcA___-"
	observe(t, d, "192.0.2.1:443", with(goHellos, 3, alpn), "", now)                          // one away (random6306)
	observe(t, d, "192.0.2.2:443", goHellos, "", now)                                         // equal: exact, not near
	observe(t, d, "192.0.2.3:443", with(with(goHellos, 3, alpn), 5, "x"), "", now)            // two away
	observe(t, d, "192.0.2.4:25", with(goHellos, 0, "______<40"), "smtp", now)                // STARTTLS: another fingerprint space
	observe(t, d, "192.0.2.5:443", with(goHellos, 9, "______<70"), "", now)                   // one away, then changed
	observe(t, d, "192.0.2.5:443", with(with(goHellos, 9, "a"), 8, "b"), "", now)             // two away now
	observe(t, d, "192.0.2.6:443", with(goHellos, 9, "______<70"), "", now.Add(-2*time.Hour)) // one away, old
	observe(t, d, "192.0.2.7:443", with(goHellos, 0, ""), "", now)                            // first ClientHello unanswered
	if n := obsNearKeyCount(t, d); n != 7*ATSFHellos {
		t.Fatalf("obs_near keys: %d, want ten for each of 7 targets", n)
	}

	rec := Record{Kind: KindATSF, Value: ATSFID(goHellos), Label: "go", Hellos: goHellos}
	got := nearTargets(t, d, rec, now.Add(-time.Hour))
	want := []string{"192.0.2.1:443 random6306", "192.0.2.7:443 " + atsfHelloNames[0]}
	if !slices.Equal(got, want) {
		t.Fatalf("near observations: %q, want %q", got, want)
	}
	if got := nearTargets(t, d, rec, now.Add(-3*time.Hour)); len(got) != 3 {
		t.Errorf("near observations with the old one: %q", got)
	}
	// The index and the scan agree.
	var scan []NearSighting
	if err := d.view(func(tx *bolt.Tx) error {
		var err error
		scan, err = observationsNearScan(tx.Bucket([]byte(bucketObservations)), rec, "", now.Add(-3*time.Hour))
		return err
	}); err != nil || len(scan) != 3 {
		t.Errorf("scan: %d near, %v", len(scan), err)
	}
	smtp := Record{Kind: KindATSF, Value: "smtp:" + ATSFID(goHellos), Hellos: goHellos}
	if got := nearTargets(t, d, smtp, time.Time{}); !slices.Equal(got, []string{"192.0.2.4:25 " + atsfHelloNames[0]}) {
		t.Errorf("near observations through STARTTLS: %q", got)
	}

	// Pruning the old one and all but the most recent of the rest.
	observe(t, d, "192.0.2.1:443", with(goHellos, 3, alpn), "", now.Add(time.Minute))
	if _, err := d.PruneObservationsTo(now.Add(-time.Hour), 1); err != nil {
		t.Fatal(err)
	}
	if n := obsNearKeyCount(t, d); n != ATSFHellos {
		t.Errorf("obs_near keys after pruning to one target: %d", n)
	}
	if got := nearTargets(t, d, rec, time.Time{}); !slices.Equal(got, []string{"192.0.2.1:443 random6306"}) {
		t.Errorf("near observations after pruning: %q", got)
	}
}

// A file written before obs_near existed gets it from BuildObsNearIndex
// (the daemon runs it at start), a batch per transaction, resuming after
// an interruption; until it ends, ObservationsNear reads every
// observation and finds the same.
func TestObservationsNearIndexBuild(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range 5 {
		observe(t, d, fmt.Sprintf("192.0.2.%d:443", i+1), with(goHellos, i, "______<70"), "", now)
	}
	// Make it an old file.
	err = d.update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(bucketObsNear)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bucketMeta)).Delete([]byte(keyObsNearIndexed))
	})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	rec := Record{Kind: KindATSF, Value: ATSFID(goHellos), Hellos: goHellos}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := nearTargets(t, ro, rec, time.Time{}); len(got) != 5 {
		t.Errorf("read-only, no index: %q", got)
	}
	ro.Close()

	d, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := nearTargets(t, d, rec, time.Time{}); len(got) != 5 {
		t.Errorf("writable, index not built yet: %q", got)
	}
	// One batch of two, interrupted; one more observation meanwhile; then
	// the rest.
	if n, err := d.buildObsNearIndex(context.Background(), 2, 1); err != nil || n != 2 {
		t.Fatalf("first batch: %d %v", n, err)
	}
	observe(t, d, "192.0.2.9:443", with(goHellos, 9, "______<70"), "", now)
	if n, err := d.BuildObsNearIndex(context.Background()); err != nil || n != 4 {
		t.Fatalf("rest of the build: %d %v", n, err)
	}
	if n := obsNearKeyCount(t, d); n != 6*ATSFHellos {
		t.Fatalf("obs_near keys after the build: %d", n)
	}
	var indexed bool
	d.view(func(tx *bolt.Tx) error {
		indexed = obsNearIndexed(tx) && tx.Bucket([]byte(bucketMeta)).Get([]byte(keyObsNearCursor)) == nil
		return nil
	})
	if !indexed {
		t.Fatal("build finished without marking the index complete")
	}
	if got := nearTargets(t, d, rec, time.Time{}); len(got) != 6 {
		t.Errorf("near after the build: %q", got)
	}
	if n, err := d.BuildObsNearIndex(context.Background()); err != nil || n != 0 {
		t.Errorf("build of a built index: %d %v", n, err)
	}
}

// go test ./db/ -run '^$' -bench ObservationsNear -near.obs 100000
var nearObs = flag.Int("near.obs", 100000, "observations with their ten answers in the ObservationsNear benchmark DB")

// BenchmarkObservationsNear is the near half of a retro-hunt when one ATSF
// entry is added to a DB of -near.obs observed targets with answers, 10
// of them one answer away from the entry: reading every observation
// (scan, the way before obs_near) against ten lookups (index).
func BenchmarkObservationsNear(b *testing.B) {
	path := filepath.Join(b.TempDir(), "obs.db")
	d, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	d.bolt.NoSync = true
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	entry := synthHellos(-1)
	const batch = 2000
	for start := 0; start < *nearObs; start += batch {
		err := d.update(func(tx *bolt.Tx) error {
			ob := tx.Bucket([]byte(bucketObservations))
			for i := start; i < min(start+batch, *nearObs); i++ {
				h := synthHellos(i)
				if i%(*nearObs/10) == 0 {
					h = with(entry, i%ATSFHellos, "______<40") // one answer away from the entry
				}
				ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				o := Observation{IP: ip, Port: 443, LastProbe: now, Status: stackprint.StatusOK, Probes: 1,
					Fingerprints: Fingerprints{ATSF: ATSFID(h)}, Since: now, Seen: now, Hellos: h}
				tk := TargetKey(o.Target())
				raw, err := json.Marshal(o)
				if err != nil {
					return err
				}
				if err := ob.Put([]byte(tk), raw); err != nil {
					return err
				}
				if err := reindexObsNear(tx, tk, "", nil, "", h); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	rec := Record{Kind: KindATSF, Value: ATSFID(entry), Label: "new", Hellos: entry}
	st, _ := os.Stat(path)
	// build: indexing the observations of a file from before obs_near.
	b.Run("build", func(b *testing.B) {
		cpu := time.Duration(0)
		for b.Loop() {
			b.StopTimer()
			err := d.update(func(tx *bolt.Tx) error {
				if err := tx.DeleteBucket([]byte(bucketObsNear)); err != nil {
					return err
				}
				if _, err := tx.CreateBucket([]byte(bucketObsNear)); err != nil {
					return err
				}
				return tx.Bucket([]byte(bucketMeta)).Delete([]byte(keyObsNearIndexed))
			})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			cpu0 := cpuTime()
			if n, err := d.BuildObsNearIndex(context.Background()); err != nil || n != *nearObs {
				b.Fatalf("build: %d %v", n, err)
			}
			cpu += cpuTime() - cpu0
		}
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(*nearObs), "observations")
	})
	for _, mode := range []string{"scan", "index"} {
		b.Run(mode, func(b *testing.B) {
			var found int
			cpu0 := cpuTime()
			for b.Loop() {
				var ns []NearSighting
				var err error
				if mode == "index" {
					ns, err = d.ObservationsNear(rec, time.Time{})
				} else {
					err = d.view(func(tx *bolt.Tx) error {
						ns, err = observationsNearScan(tx.Bucket([]byte(bucketObservations)), rec, "", time.Time{})
						return err
					})
				}
				if err != nil {
					b.Fatal(err)
				}
				found = len(ns)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			if found != 10 {
				b.Fatalf("%s found %d near observations, want 10", mode, found)
			}
			b.ReportMetric(float64(*nearObs), "observations")
			b.ReportMetric(float64(st.Size())/(1<<20), "db-MiB")
		})
	}
}

// A backfill's progress marks are pruned with the observations.
func TestPruneBackfillMarks(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now()
	d.now = func() time.Time { return now.Add(-48 * time.Hour) }
	if err := d.MarkBackfillDone("run", "old"); err != nil {
		t.Fatal(err)
	}
	d.now = func() time.Time { return now }
	if err := d.MarkBackfillDone("run", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PruneObservationsTo(now.Add(-24*time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{"old": false, "new": true} {
		if done, err := d.BackfillDone("run", k); err != nil || done != want {
			t.Errorf("backfill mark %s after pruning: %v %v, want %v", k, done, err, want)
		}
	}
}
