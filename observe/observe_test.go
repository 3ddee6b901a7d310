package observe

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/output"
	"github.com/stackprint/stackprint/rules"
)

const (
	bad   = "07d19d12d21d21d07c07d19d07d21da5a8ab90bcc6bf8bbc6fbec4bcaa8219"
	other = "22b22b09b22b22b22b22b22b22b22b352842cd5d6b0278445702035e06875c"
)

// TestRecordThenRetroHunt runs the stage over a real DB file, the
// built-in rules and the file outputs: records written through it are
// kept as observations, and a fingerprint added later raises one
// retroactive alert per target that carried it inside the window, in the
// alert file.
func TestRecordThenRetroHunt(t *testing.T) {
	dir := t.TempDir()
	d, err := db.Open(filepath.Join(dir, "stackprint.db"), db.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	alerts := filepath.Join(dir, "alerts.ndjson")
	sink, err := output.OpenSink(output.SinkConfig{Alerts: alerts, Fingerprints: filepath.Join(dir, "stackprint.log")}, output.SinkHooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	judge, err := rules.New(rules.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s := New(sink, d, judge, time.Hour, slog.New(slog.DiscardHandler))

	now := time.Now()
	for i, r := range []struct {
		ip, jarm string
		ago      time.Duration
	}{
		{"203.0.113.10", bad, 10 * time.Minute},
		{"203.0.113.11", bad, 3 * time.Hour}, // outside the window
		{"203.0.113.12", other, 5 * time.Minute},
	} {
		ev := stackprint.Event{TS: now.Add(-r.ago), UID: "Cobs" + string(rune('a'+i)), Orig: netip.MustParseAddrPort("10.0.0.5:40000"),
			Resp: netip.AddrPortFrom(netip.MustParseAddr(r.ip), 443), SNI: "x.example", Source: "zeek-ssl"}
		res := stackprint.Result{Target: ev.Target(), Started: now.Add(-r.ago), Status: stackprint.StatusOK, JARM: r.jarm}
		if err := s.Record(ev, res, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := d.ObservationsWith("jarm", bad, now.Add(-24*time.Hour)); err != nil || len(got) != 2 {
		t.Fatalf("observations carrying the JARM: %d, %v; want 2", len(got), err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "stackprint.log")); strings.Count(string(b), "203.0.113.1") != 3 {
		t.Errorf("fingerprint log does not hold the three records:\n%s", b)
	}

	rec, err := d.AddRecord(db.Record{Kind: "jarm", Value: bad, Label: "get2", Source: "test", Confidence: "high"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.RetroHunt([]db.Key{rec.Key()})
	if err != nil || n != 1 {
		t.Fatalf("retro-hunt: %d alerts, %v; want 1 (.10; .11 is outside the window)", n, err)
	}
	b, err := os.ReadFile(alerts)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		t.Fatalf("alert file: %d lines:\n%s", len(lines), b)
	}
	for _, want := range []string{`"resp":"203.0.113.10:443"`, `"source":"retro-hunt"`, `"retro":true`, `"label":"get2"`, `"uid":"Cobsa"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("retro alert lacks %s: %s", want, lines[0])
		}
	}
	if !json.Valid([]byte(lines[0])) {
		t.Errorf("alert line is not JSON: %s", lines[0])
	}
	// Off: a zero window hunts nothing.
	if n, err := New(sink, d, judge, 0, slog.New(slog.DiscardHandler)).RetroHunt([]db.Key{rec.Key()}); n != 0 || err != nil {
		t.Errorf("window 0: %d alerts, %v", n, err)
	}
}
