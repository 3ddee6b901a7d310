package db

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// The age prune of alerts, probe log entries and backfill marks deletes
// what is older than the cutoff over several transactions (more alerts
// than one batch takes) and keeps the rest, alert index included.
func TestPruneAlertsAndLogInBatches(t *testing.T) {
	d, c := openTest(t)
	t0 := c.t
	old, cutoff := t0.Add(-48*time.Hour), t0.Add(-24*time.Hour)
	tgt := stackprint.Target{IP: netip.MustParseAddr("192.0.2.7"), Port: 443}
	alert := func(i int, at time.Time) stackprint.Alert {
		return stackprint.Alert{ID: fmt.Sprintf("a%05d", i), TS: at, Rule: "db_match",
			Event: stackprint.Event{Resp: tgt.Addr()}, Result: stackprint.Result{Target: tgt, Started: at}}
	}
	var as []stackprint.Alert
	for i := range 3*pruneBatch + 7 {
		as = append(as, alert(i, old.Add(time.Duration(i)*time.Second)))
	}
	for i := range 5 {
		as = append(as, alert(100000+i, t0.Add(time.Duration(i)*time.Second)))
	}
	if err := d.RecordAlerts(as); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{old, old.Add(time.Minute), t0} {
		if err := d.RecordObservation(result("192.0.2.7", 443, "", jarmA, stackprint.StatusOK, at)); err != nil {
			t.Fatal(err)
		}
	}
	c.t = old
	if err := d.MarkBackfillDone("run-old", "192.0.2.7:443"); err != nil {
		t.Fatal(err)
	}
	c.t = t0
	if err := d.MarkBackfillDone("run-new", "192.0.2.7:443"); err != nil {
		t.Fatal(err)
	}

	if err := d.pruneAlertsAndLog(cutoff); err != nil {
		t.Fatal(err)
	}
	kept, err := d.AlertsOf(tgt)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 5 {
		t.Fatalf("%d alerts of %s kept, want the 5 newer than the cutoff", len(kept), tgt)
	}
	for _, a := range kept {
		if a.TS.Before(cutoff) {
			t.Fatalf("alert %s at %s kept, older than the cutoff", a.ID, a.TS)
		}
	}
	var alerts, index int
	_ = d.view(func(tx *bolt.Tx) error {
		alerts = tx.Bucket([]byte(bucketAlerts)).Stats().KeyN
		index = tx.Bucket([]byte(bucketAlertIndex)).Stats().KeyN
		return nil
	})
	if alerts != 5 || index != 5 {
		t.Fatalf("%d alerts and %d alert index entries left, want 5 and 5", alerts, index)
	}
	log, err := d.ProbeLog(tgt)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 1 {
		t.Fatalf("probe log of %s has %d entries after the prune, want the 1 newer than the cutoff", tgt, len(log))
	}
	for run, want := range map[string]bool{"run-old": false, "run-new": true} {
		if done, err := d.BackfillDone(run, "192.0.2.7:443"); err != nil || done != want {
			t.Fatalf("BackfillDone(%s) = %v, %v; want %v", run, done, err, want)
		}
	}
}
