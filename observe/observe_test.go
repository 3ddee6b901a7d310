package observe

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/output"
	"github.com/stackprint/stackprint/rules"
)

var goHellos = []string{
	"771_1301_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_-",
	"771_c02b_16.AAkIaHR0cC8xLjE-0.____",
	"771_cca9_35.-65281.-16.AAMCaDI-11.AQA-0.____<40",
	"______<120",
	"______<40",
	"771_1303_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_-",
	"769_c009_35.-65281.-16.AAMCaDI-0.____",
	"771_c02b_35.-16.AAMCaDI-0.____",
	"771_c02b_35.-11.AQA-0.____",
	"771_cca9_16.AAMCaDI-0.____",
}

// A retro-hunt of an ATSF entry that keeps its ten answers alerts on a
// target probed earlier whose answers differ on one ClientHello (the near
// rule), through the outputs, and keeps the alert for explain.
func TestRetroHuntNear(t *testing.T) {
	dir := t.TempDir()
	d, err := db.Open(filepath.Join(dir, "s.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sink, err := output.OpenSink(output.SinkConfig{Alerts: filepath.Join(dir, "alerts.ndjson")}, output.SinkHooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	eng, err := rules.New(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := New(sink, d, eng, 24*time.Hour, slog.New(slog.DiscardHandler))

	variant := slices.Clone(goHellos)
	variant[3] = "771_1301_43.AwQ-51.29_16.AAUEaW1hcA___-"
	a := &stackprint.ATSF{ID: db.ATSFID(variant), Fingerprint: strings.Join(variant, "|")}
	for i, h := range variant {
		a.Hellos = append(a.Hellos, stackprint.ATSFHello{Name: db.ATSFHelloNames()[i], Raw: h})
	}
	ev := stackprint.Event{TS: time.Now().Add(-time.Hour), UID: "CRetro1", Orig: netip.MustParseAddrPort("10.0.0.5:5000"),
		Resp: netip.MustParseAddrPort("192.0.2.20:8443"), Source: "zeek-ssl"}
	if err := st.Record(ev, stackprint.Result{Target: ev.Target(), Started: ev.TS, Status: stackprint.StatusOK, ATSF: a}, nil); err != nil {
		t.Fatal(err)
	}
	rec, err := d.AddRecord(db.Record{Kind: "atsf", Value: db.ATSFID(goHellos), Label: "lab-c2", Confidence: "high", Hellos: goHellos})
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.RetroHunt([]db.Key{rec.Key()})
	if err != nil || n != 1 {
		t.Fatalf("retro-hunt: %d alerts, %v; want the near one", n, err)
	}
	f, err := os.Open(filepath.Join(dir, "alerts.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatal("no alert written")
	}
	var got struct {
		AlertID string `json:"alert_id"`
		Rule    string `json:"rule"`
		Retro   bool   `json:"retro"`
		UID     string `json:"uid"`
		Match   struct {
			Near struct {
				Text string `json:"text"`
			} `json:"near"`
		} `json:"match"`
	}
	if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Rule != "atsf_near" || !got.Retro || got.UID != "CRetro1" || got.Match.Near.Text != "9 of 10 answers equal to lab-c2; differs on random6306: ALPN" {
		t.Errorf("alert = %+v", got)
	}
	if _, ok, err := d.Alert(got.AlertID); err != nil || !ok {
		t.Errorf("alert %s not kept for explain: %v", got.AlertID, err)
	}
}

// countingSink is the next stage for TestAlertsKeptPerSync: it counts what
// reaches it.
type countingSink struct{ alerts, syncs int }

func (c *countingSink) Record(stackprint.Event, stackprint.Result, []stackprint.Match) error {
	return nil
}
func (c *countingSink) Alert(stackprint.Alert) error { c.alerts++; return nil }
func (c *countingSink) Sync() error                  { c.syncs++; return nil }

// Alerts go downstream at once and reach the DB (for explain) at the next
// Sync, all of a group commit in one transaction, and past maxHeldAlerts
// without waiting for one.
func TestAlertsKeptPerSync(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "s.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	next := &countingSink{}
	st := New(next, d, nil, 0, slog.New(slog.DiscardHandler))
	tgt := stackprint.Target{IP: netip.MustParseAddr("192.0.2.44"), Port: 443}
	alert := func(i int) stackprint.Alert {
		ev := stackprint.Event{TS: time.Unix(1_800_000_000+int64(i), 0), Orig: netip.MustParseAddrPort("10.0.0.1:40000"),
			Resp: netip.AddrPortFrom(tgt.IP, tgt.Port), UID: "Ckept" + strconv.Itoa(i), Source: "zeek-ssl"}
		r := stackprint.Result{Target: tgt, Status: stackprint.StatusOK}
		return stackprint.NewAlert(stackprint.Verdict{Rule: "db_match", Severity: "high"}, ev, r, ev.TS)
	}
	kept := func() int {
		as, err := d.AlertsOf(tgt)
		if err != nil {
			t.Fatal(err)
		}
		return len(as)
	}
	for i := range 5 {
		if err := st.Alert(alert(i)); err != nil {
			t.Fatal(err)
		}
	}
	if next.alerts != 5 || kept() != 0 {
		t.Fatalf("before Sync: %d downstream, %d kept; want 5, 0", next.alerts, kept())
	}
	if err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	if next.syncs != 1 || kept() != 5 {
		t.Fatalf("after Sync: %d syncs, %d kept; want 1, 5", next.syncs, kept())
	}
	for i := range maxHeldAlerts {
		if err := st.Alert(alert(1000 + i)); err != nil {
			t.Fatal(err)
		}
	}
	if kept() != 5+maxHeldAlerts {
		t.Fatalf("after %d alerts without a Sync: %d kept, want %d", maxHeldAlerts, kept(), 5+maxHeldAlerts)
	}
}

// TestPruneKeepsTheCountNearItsBound: while probing goes on, the count of
// observations is brought back to max as soon as it passes max by a
// tenth, without waiting for the hourly prune.
func TestPruneKeepsTheCountNearItsBound(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "s.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st := New(&countingSink{}, d, nil, 0, slog.New(slog.DiscardHandler))
	probe := func(from, to int) {
		for i := from; i < to; i++ {
			r := stackprint.Result{Target: stackprint.Target{IP: netip.AddrFrom4([4]byte{192, 0, byte(2 + i/250), byte(1 + i%250)}), Port: 443},
				Status: stackprint.StatusOK, JARM: "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d", Started: time.Now()}
			if err := st.Record(stackprint.Event{}, r, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	probe(0, 300)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); st.prune(ctx, 24*time.Hour, 100, time.Hour, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	waitCount := func(want int) {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); d.Observations() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%d observations, want %d", d.Observations(), want)
			}
		}
	}
	waitCount(100) // the prune at start
	probe(300, 310)
	time.Sleep(100 * time.Millisecond)
	if n := d.Observations(); n != 110 {
		t.Fatalf("%d observations within a tenth past the bound, want 110 kept", n)
	}
	probe(310, 311)
	waitCount(100)
	if _, ok, err := d.Observation(stackprint.Target{IP: netip.AddrFrom4([4]byte{192, 0, 3, 61}), Port: 443}); err != nil || !ok {
		t.Fatalf("the newest observation went (%v, %v)", ok, err)
	}
}
