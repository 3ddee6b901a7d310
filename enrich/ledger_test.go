package enrich_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
)

func offsetPos(ev stackprint.Event) ([]byte, error) {
	return json.Marshal(map[string]any{"file": ev.File, "offset": ev.Offset})
}

func checkpointOffset(t *testing.T, d *db.DB, src string) int64 {
	t.Helper()
	b, ok, err := d.Checkpoint(enrich.CheckpointKey(src, map[string]string{"zeek": "ssl.log", "eve": "eve.json"}[src]))
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return -1
	}
	var p struct{ Offset int64 }
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p.Offset
}

func TestLedgerCommitsOnlyPastSettledOrParked(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "s.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l := enrich.NewLedger(d, offsetPos, nil)
	var evs []stackprint.Event
	for i, off := range []int64{100, 200, 300} {
		evs = append(evs, l.Track(stackprint.Event{Source: "zeek", File: "ssl.log", Offset: off, UID: string(rune('A' + i))}))
	}
	other := l.Track(stackprint.Event{Source: "eve", File: "eve.json", Offset: 50})
	l.Settled(evs[0])
	l.Settled(evs[2])
	l.Settled(other)

	// First commit: #2 (offset 200) is unsettled, so zeek stops at 100.
	if err := l.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := checkpointOffset(t, d, "zeek"); got != 100 {
		t.Fatalf("zeek checkpoint %d, want 100", got)
	}
	if got := checkpointOffset(t, d, "eve"); got != 50 {
		t.Fatalf("eve checkpoint %d, want 50", got)
	}
	if p, _ := d.Pending(); len(p) != 0 {
		t.Fatalf("parked too early: %+v", p)
	}
	// Second commit: #2 has waited a whole interval, so it is parked and
	// the checkpoint moves past it.
	if err := l.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := checkpointOffset(t, d, "zeek"); got != 300 {
		t.Fatalf("zeek checkpoint %d, want 300", got)
	}
	p, _ := d.Pending()
	if len(p) != 1 || p[0].Event.UID != "B" {
		t.Fatalf("pending %+v, want event B", p)
	}
	if l.Unsettled() != 0 {
		t.Fatalf("unsettled %d", l.Unsettled())
	}
	// Its probe finishes: the next commit removes it from the store.
	l.Settled(evs[1])
	if err := l.Commit(); err != nil {
		t.Fatal(err)
	}
	if p, _ := d.Pending(); len(p) != 0 {
		t.Fatalf("settled event still pending: %+v", p)
	}
}

func TestLedgerResumedEventsAreUnparkedWhenSettled(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "s.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	keys, err := d.CommitState(nil, []stackprint.Event{{Source: "zeek", UID: "P1"}, {Source: "zeek", UID: "P2"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A restarted daemon loads them and re-probes.
	l := enrich.NewLedger(d, offsetPos, nil)
	pend, err := d.Pending()
	if err != nil || len(pend) != 2 {
		t.Fatalf("pending %v %v", pend, err)
	}
	resumed := l.Resume(pend[0].Event, pend[0].Key)
	l.Resume(pend[1].Event, pend[1].Key)
	l.Settled(resumed)
	if err := l.Commit(); err != nil {
		t.Fatal(err)
	}
	p, _ := d.Pending()
	if len(p) != 1 || p[0].Key != keys[1] {
		t.Fatalf("pending after settling P1: %+v", p)
	}
}

func TestLedgerParksEverySlowEventAfterOneInterval(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "s.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l := enrich.NewLedger(d, offsetPos, nil)
	for i := range 10 {
		l.Track(stackprint.Event{Source: "zeek", File: "ssl.log", Offset: int64(100 * (i + 1))})
	}
	if err := l.Commit(); err != nil { // first sight of all ten
		t.Fatal(err)
	}
	if got := checkpointOffset(t, d, "zeek"); got != -1 {
		t.Fatalf("checkpoint %d after the first commit, want none", got)
	}
	if err := l.Commit(); err != nil { // one interval later: all ten are parked at once
		t.Fatal(err)
	}
	if got := checkpointOffset(t, d, "zeek"); got != 1000 {
		t.Fatalf("checkpoint %d after the second commit, want 1000 (all slow events parked)", got)
	}
	if p, _ := d.Pending(); len(p) != 10 {
		t.Fatalf("%d parked, want 10", len(p))
	}
}

func TestLedgerNeverCommitsAfterAFailedSync(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "s.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l := enrich.NewLedger(d, offsetPos, nil)
	fail := true
	l.BeforeCommit = func() error {
		if fail {
			return errors.New("fsync: input/output error")
		}
		return nil
	}
	l.Settled(l.Track(stackprint.Event{Source: "zeek", File: "ssl.log", Offset: 100}))
	if err := l.Commit(); err == nil {
		t.Fatal("commit succeeded although the outputs could not be synced")
	}
	fail = false // a later fsync may succeed after the kernel dropped data
	if err := l.CommitFinal(); err == nil {
		t.Fatal("final commit succeeded after a failed sync")
	}
	if got := checkpointOffset(t, d, "zeek"); got != -1 {
		t.Fatalf("checkpoint %d written after a failed sync", got)
	}
}
