package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
)

// explain on a stopped DB file: text and --json, and db list's filters.
func TestExplainStoppedDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stackprint.db")
	d, err := db.Open(path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const jarm = "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"
	if err := d.Add(db.Record{Kind: "jarm", Value: jarm, Label: "cobalt-strike", Category: "c2", Confidence: "high"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(db.Record{Kind: "jarm", Value: strings.Repeat("1", 62), Label: "other", Category: "stack"}); err != nil {
		t.Fatal(err)
	}
	ev := stackprint.Event{TS: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), UID: "Cx1", Orig: netip.MustParseAddrPort("10.0.0.5:5000"),
		Resp: netip.MustParseAddrPort("192.0.2.10:443"), Source: "zeek-ssl"}
	if err := d.RecordObservationOf(ev, stackprint.Result{Target: ev.Target(), Started: ev.TS, Status: stackprint.StatusOK, JARM: jarm}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	run1 := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}
	out := run1("explain", "--db", path, "192.0.2.10")
	for _, want := range []string{"server 192.0.2.10:443", "cobalt-strike", "10.0.0.5:5000 uid Cx1 (zeek-ssl)"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	out = run1("explain", "--db", path, "--json", "192.0.2.77:443")
	var rep struct {
		Kind    string `json:"kind"`
		Servers []struct {
			Observed bool `json:"observed"`
		} `json:"servers"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Kind != "target" || len(rep.Servers) != 1 || rep.Servers[0].Observed {
		t.Errorf("explain --json of a never-seen server: %v %s", err, out)
	}
	out = run1("db", "list", "--db", path, "--category", "C2", "--value", "07D1")
	if !strings.Contains(out, "cobalt-strike") || strings.Contains(out, "other") {
		t.Errorf("db list --category --value:\n%s", out)
	}
}
