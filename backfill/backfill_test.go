package backfill

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/output"
	"github.com/stackprint/stackprint/probe"
	"github.com/stackprint/stackprint/rules"
)

const jarm = "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"

// A server with a fresh observation is judged from it: no connection is
// made (the prober's target refuses, which would show as a failed probe),
// its connections are alerted, marked backfill; one out of scope is left
// alone; a stale observation is probed again.
func TestBackfillCachedAndScope(t *testing.T) {
	dir := t.TempDir()
	d, err := db.Open(filepath.Join(dir, "s.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Add(db.Record{Kind: "jarm", Value: jarm, Label: "c2", Confidence: "high"}); err != nil {
		t.Fatal(err)
	}
	// A closed loopback port: a probe there is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	now := time.Now()
	fresh := stackprint.Event{TS: now.Add(-time.Minute), UID: "CFresh", Orig: netip.MustParseAddrPort("10.0.0.5:5000"), Resp: closed}
	if err := d.RecordObservationOf(fresh, stackprint.Result{Target: fresh.Target(), Started: now.Add(-time.Minute), Status: stackprint.StatusOK, JARM: jarm}); err != nil {
		t.Fatal(err)
	}
	staleAP := netip.AddrPortFrom(closed.Addr(), closed.Port()+1)
	stale := stackprint.Event{TS: now.Add(-48 * time.Hour), UID: "CStale", Orig: netip.MustParseAddrPort("10.0.0.6:5000"), Resp: staleAP}
	if err := d.RecordObservationOf(stale, stackprint.Result{Target: stale.Target(), Started: now.Add(-48 * time.Hour), Status: stackprint.StatusOK, JARM: jarm}); err != nil {
		t.Fatal(err)
	}

	sink, err := output.OpenSink(output.SinkConfig{Alerts: filepath.Join(dir, "alerts.ndjson"), Fingerprints: filepath.Join(dir, "stackprint.log")}, output.SinkHooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	eng, err := probe.NewEngine(probe.EngineConfig{Kinds: []string{"jarm"}, IOTimeout: time.Second, Deadline: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	judge, err := rules.New(rules.Options{Suppress: map[string]time.Duration{"*": 0}})
	if err != nil {
		t.Fatal(err)
	}
	scope := enrich.NewScope([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil, nil)
	b := New(Config{Scope: scope, Fresh: time.Hour}, d, EngineProber{Engine: eng, Deadline: 5 * time.Second}, judge, sink)
	for _, ev := range []stackprint.Event{
		fresh,
		{TS: now, UID: "CFresh2", Orig: netip.MustParseAddrPort("10.0.0.7:5001"), Resp: closed},
		stale,
		{TS: now, UID: "COut", Orig: netip.MustParseAddrPort("10.0.0.8:5002"), Resp: netip.MustParseAddrPort("192.0.2.1:443")},
	} {
		if err := b.Add(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := b.Run(context.Background(), "test-run")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Servers != 2 || sum.OutOfScope != 1 || sum.Cached != 1 || sum.Probed != 1 || sum.ProbeOK != 0 || sum.Alerts != 2 {
		t.Fatalf("summary %+v: want 2 servers (1 cached, 1 probed and refused), 1 out of scope, 2 alerts", sum)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "alerts.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"CFresh", "CFresh2"} {
		if !strings.Contains(string(raw), `"uid":"`+uid+`"`) {
			t.Errorf("no alert for %s:\n%s", uid, raw)
		}
	}
	if strings.Count(string(raw), `"backfill":true`) != 2 {
		t.Errorf("alerts not marked backfill:\n%s", raw)
	}
	// The stale server's refused probe is now its observation.
	o, _, err := d.Observation(stale.Target())
	if err != nil || o.Status != stackprint.StatusRefused {
		t.Errorf("stale server after its probe: %+v %v", o, err)
	}
}
