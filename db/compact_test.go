package db

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// TestCompactShrinksAfterAPrune: 3,000 observations pruned to 100 leave
// the file at its high-water mark; Compact gives a file a fraction of
// it that opens with every kept record, and refuses a file in use.
func TestCompactShrinksAfterAPrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(Record{Kind: "jarm", Value: jarmA, Label: "kept", Confidence: "high"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 3000 {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255)
		if err := d.RecordObservation(result(ip, 443, strings.Repeat("n", 40), jarmB, stackprint.StatusOK, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := d.PruneObservationsOver(100); err != nil || n != 2900 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	if _, err := Compact(path, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("Compact of a file in use: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Compact(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d → %d bytes", rep.Before, rep.After)
	if rep.After <= 0 || rep.After*3 > rep.Before {
		t.Fatalf("%d → %d bytes: not a third of it", rep.Before, rep.After)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != rep.After {
		t.Fatalf("file %v, %v; want %d bytes", fi, err, rep.After)
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("the copy is left beside it: %v", err)
	}
	d, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n := d.Observations(); n != 100 {
		t.Fatalf("%d observations after compaction, want 100", n)
	}
	newest := netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", 2999>>8, 2999&255))
	if o, ok, err := d.Observation(stackprint.Target{IP: newest, Port: 443, SNI: strings.Repeat("n", 40)}); err != nil || !ok || o.Fingerprints.JARM != jarmB {
		t.Fatalf("newest observation: %+v %v %v", o, ok, err)
	}
	if r, ok, err := d.Get("jarm", jarmA); err != nil || !ok || r.Label != "kept" {
		t.Fatalf("fingerprint record: %+v %v %v", r, ok, err)
	}
	if errs := d.Check(); len(errs) > 0 {
		t.Fatalf("check after compaction: %v", errs)
	}
}
