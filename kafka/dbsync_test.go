package kafka

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint/db"
)

func openDB(t *testing.T) *db.DB {
	t.Helper()
	d, err := db.Open(filepath.Join(t.TempDir(), "stackprint.db"), db.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// dump is a DB's fingerprints without the local storing time.
func dump(t *testing.T, d *db.DB) string {
	t.Helper()
	recs, err := d.List("")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range recs {
		r.Updated = time.Time{}
		fmt.Fprintf(&b, "%+v\n", r)
	}
	return b.String()
}

func jarmOf(i int) string { return fmt.Sprintf("%062x", 0xabc000+i) }

// Changes on any instance (add, rm, import) reach every instance's bbolt
// file; an instance joining later catches up; all end identical.
func TestDBSyncKeepsEveryDBIdentical(t *testing.T) {
	brokers := startKfake(t, 1, "fps")
	cfg := ClusterConfig{Brokers: brokers, FingerprintsTopic: "fps"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var dbs []*db.DB
	var syncs []*DBSync
	start := func(d *db.DB) *DBSync {
		s, err := NewDBSync(cfg, d, nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = s.Run(ctx) })
		t.Cleanup(s.Close)
		select {
		case <-s.Loaded():
		case <-time.After(20 * time.Second):
			t.Fatal("not loaded")
		}
		return s
	}
	// The first instance had a record before the cluster existed.
	d0 := openDB(t)
	if err := d0.Add(db.Record{Kind: "jarm", Value: jarmOf(0), Label: "before", Confidence: "low"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*db.DB{d0, openDB(t), openDB(t)} {
		dbs = append(dbs, d)
		syncs = append(syncs, start(d))
	}
	if err := dbs[1].Add(db.Record{Kind: "jarm", Value: jarmOf(1), Label: "cobalt-strike", Confidence: "high"}); err != nil {
		t.Fatal(err)
	}
	csv := "label,kind,value,source,confidence\n"
	for i := 2; i < 12; i++ {
		csv += fmt.Sprintf("imported-%d,jarm,%s,test,medium\n", i, jarmOf(i))
	}
	if _, err := dbs[2].Import(strings.NewReader(csv), "list.csv"); err != nil {
		t.Fatal(err)
	}
	same := func(n int) bool {
		want := dump(t, dbs[0])
		for _, d := range dbs[1:] {
			if dump(t, d) != want {
				return false
			}
		}
		return strings.Count(want, "\n") == n
	}
	waitFor(t, "12 records everywhere", 20*time.Second, func() bool { return same(12) })
	// A removal on one instance removes it everywhere; an update wins.
	if ok, err := dbs[0].Remove("jarm", jarmOf(5)); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := dbs[2].Add(db.Record{Kind: "jarm", Value: jarmOf(1), Label: "cobalt-strike", Confidence: "high", Notes: "seen in the wild"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !(same(11) && strings.Contains(dump(t, dbs[1]), "seen in the wild")) {
		if time.Now().After(deadline) {
			for i, d := range dbs {
				t.Logf("db %d:\n%s", i, dump(t, d))
			}
			t.Fatal("removal and update did not reach every instance")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A new instance catches up from the topic.
	dbs = append(dbs, openDB(t))
	syncs = append(syncs, start(dbs[3]))
	if !same(11) {
		t.Fatalf("late instance differs:\n%s\nvs\n%s", dump(t, dbs[3]), dump(t, dbs[0]))
	}
	// A restarted instance re-reads the topic without rewriting its DB.
	gen := dbs[1].Generation()
	syncs = append(syncs, start(dbs[1]))
	if g := dbs[1].Generation(); g != gen {
		t.Errorf("re-reading the topic wrote to an up-to-date DB (generation %d → %d)", gen, g)
	}
	// Quiet: applying never echoes back.
	time.Sleep(time.Second)
	_, p1 := syncs[0].Counts()
	time.Sleep(time.Second)
	if _, p2 := syncs[0].Counts(); p2 != p1 {
		t.Errorf("instance 0 keeps publishing: %d then %d", p1, p2)
	}
	cancel()
}
