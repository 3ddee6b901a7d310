package output

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/internal/zeekread"
	"github.com/stackprint/stackprint/zeeklog"
)

func TestSinkWritesEveryOutput(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, "out", name) }
	cfg := SinkConfig{
		Alerts: p("alerts.ecs.ndjson"), AlertsFormat: "ecs",
		Fingerprints: p("stackprint.log"), AlertLog: p("stackprint_alert.log"), ZeekFormat: "json",
		EVE: p("eve.json"), ZeekIntel: p("stackprint.intel"), SuricataDataset: p("stackprint.lst"),
		RotateInterval: time.Hour,
	}
	var alerts, records int
	s, err := OpenSink(cfg, SinkHooks{
		OnAlert:  func(stackprint.Alert) { alerts++ },
		OnRecord: func(stackprint.Event, stackprint.Result, []stackprint.Match) { records++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := stackprint.Event{TS: time.Now(), UID: "Csink1", Orig: netip.MustParseAddrPort("10.0.0.5:40000"), Resp: netip.MustParseAddrPort("203.0.113.7:443"), SNI: "evil.example", Source: "zeek-ssl"}
	r := stackprint.Result{Target: ev.Target(), Started: time.Now(), Status: stackprint.StatusOK, JARM: strings.Repeat("2ad", 20) + "aa", Conns: 10}
	m := stackprint.Match{Kind: "jarm", Value: r.JARM, Label: "c2", Confidence: "high"}
	if err := s.Record(ev, r, []stackprint.Match{m}); err != nil {
		t.Fatal(err)
	}
	v := stackprint.Verdict{Rule: "db_match", Severity: "high", Match: m, RuleName: "DB", SignatureID: 1900001}
	if err := s.Alert(stackprint.NewAlert(v, ev, r, time.Now())); err != nil {
		t.Fatal(err)
	}
	// A simulated alert on another server: written, but not fed to the sensor.
	ev2 := ev
	ev2.Resp = netip.MustParseAddrPort("198.51.100.9:443")
	v.Simulated = true
	if err := s.Alert(stackprint.NewAlert(v, ev2, r, time.Now())); err != nil {
		t.Fatal(err)
	}
	// Everything is on disk before Close: each call flushed and synced.
	read := func(name string) string {
		b, err := os.ReadFile(p(name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for name, wants := range map[string][]string{
		"alerts.ecs.ndjson":    {`"event":{"id":`, `"kind":"alert"`, `"simulated":true`},
		"stackprint.log":       {`"uid":"Csink1"`, `"match_label":"c2"`},
		"stackprint_alert.log": {`"rule":"db_match"`, `"simulated":true`},
		"eve.json":             {`"event_type":"alert"`, `"signature_id":1900001`},
		"stackprint.intel":     {"203.0.113.7\tIntel::ADDR\tstackprint\t"},
		"stackprint.lst":       {"203.0.113.7\n"},
	} {
		got := read(name)
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, got)
			}
		}
		if strings.Contains(got, "198.51.100.9") && (name == "stackprint.intel" || name == "stackprint.lst") {
			t.Errorf("%s lists the server of a simulated alert", name)
		}
	}
	if alerts != 2 || records != 1 {
		t.Errorf("hooks saw %d alerts, %d records", alerts, records)
	}
	// logrotate moved the alert files; SIGHUP reopens them.
	for _, n := range []string{"alerts.ecs.ndjson", "eve.json"} {
		if err := os.Rename(p(n), p(n)+".1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	v.Simulated = false
	if err := s.Alert(stackprint.NewAlert(v, ev2, r, time.Now())); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(read("eve.json"), "198.51.100.9") || !strings.Contains(read("stackprint.intel"), "198.51.100.9") {
		t.Error("alert after reopen not written")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The Zeek TSV/JSON readers see the records written.
	f, _ := os.Open(p("stackprint_alert.log"))
	defer f.Close()
	recs, err := zeekread.ReadJSON(f, zeeklog.Schema{})
	if err != nil || len(recs) != 3 {
		t.Fatalf("alert log: %d records, %v", len(recs), err)
	}
}

func TestSinkOutputsOff(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSink(SinkConfig{EVE: filepath.Join(dir, "eve.json")}, SinkHooks{})
	if err != nil {
		t.Fatal(err)
	}
	ev := stackprint.Event{Resp: netip.MustParseAddrPort("203.0.113.7:443")}
	if err := s.Record(ev, stackprint.Result{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Alert(stackprint.Alert{Event: ev, Rule: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d files written, want only eve.json", len(ents))
	}
}
