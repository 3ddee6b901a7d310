package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/daemon"
	"github.com/stackprint/stackprint/internal/lab"
	"github.com/stackprint/stackprint/probe"
)

// The daemon's own contracts, in process: it judges what its input says
// against the DB, resumes after a stop where it left off (no connection
// judged twice, none lost), and a SIGHUP reload refuses a bad file while
// the running config keeps working, then applies a good one live.
func TestDaemonJudgesReloadsAndResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	servers, dbPath := demoLab(ctx, t, dir)
	c2, other := servers[1], servers[2]

	logPath := filepath.Join(dir, "ssl.log")
	alertsPath := filepath.Join(dir, "alerts.ndjson")
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	goodConfig := func(deny string) string {
		return fmt.Sprintf(`db:
  path: %s
inputs:
  - name: ssl
    path: %s
    format: zeek
scope:
  allow: [127.0.0.0/8]
  deny: [%s]
scheduler:
  probes_per_second: 50
  burst: 10
probe:
  io_timeout: 2s
outputs:
  alerts: %s
  fingerprints: %s
metrics:
  listen: ""
log:
  level: warn
`, dbPath, logPath, deny, alertsPath, filepath.Join(dir, "stackprint.log"))
	}
	writeFile(t, cfgPath, goodConfig(""))

	// Each connection from a client of its own: the rules suppress repeats
	// per (client, server, rule) for an hour.
	conn := func(uid string, s netip.AddrPort, port int) lab.Conn {
		return lab.Conn{UID: uid, Orig: fmt.Sprintf("127.0.1.%d:%d", port-50000, port), Resp: s, SNI: "x.demo.test"}
	}
	if err := lab.WriteZeekSSL(logPath, []lab.Conn{
		conn("Cfirst1", c2.Addr, 50001), conn("Cfirst2", servers[0].Addr, 50002),
	}, true); err != nil {
		t.Fatal(err)
	}

	// First run: two connections, one to the C2.
	r := start(ctx, t, cfgPath)
	r.waitEvents(ctx, t, 2)
	if got := r.dbMatches(c2.Addr); strings.Join(got, ",") != "Cfirst1" {
		t.Fatalf("first run: db_match alerts for the C2 name %v, want [Cfirst1]", got)
	}

	// A bad file on SIGHUP is refused; the running config goes on.
	writeFile(t, cfgPath, "scope:\n  allow: [127.0.0.0/8\n")
	r.d.Reload()
	if n := counter(t, r.d, "stackprint_config_reloads_total", "error"); n != 1 {
		t.Fatalf("reloads with result error = %v, want 1", n)
	}
	// A good one applies live: the other server is now denied.
	writeFile(t, cfgPath, goodConfig(other.Addr.Addr().String()+"/32"))
	r.d.Reload()
	if n := counter(t, r.d, "stackprint_config_reloads_total", "ok"); n != 1 {
		t.Fatalf("reloads with result ok = %v, want 1", n)
	}
	before := r.d.Stats().OutOfScope
	appendConns(t, logPath, conn("Cdenied", other.Addr, 50003), conn("Csecond", c2.Addr, 50004))
	r.waitEvents(ctx, t, 4)
	if got := r.d.Stats().OutOfScope - before; got != 1 {
		t.Fatalf("after the reload denying %s: %d more events out of scope, want 1", other.Addr, got)
	}
	if got := r.dbMatches(c2.Addr); strings.Join(got, ",") != "Cfirst1,Csecond" {
		t.Fatalf("after the reloads: db_match alerts %v, want [Cfirst1 Csecond]", got)
	}
	r.stop(t)

	// Lines written while the daemon is down are read after the restart,
	// from the committed position: nothing judged twice, nothing lost.
	appendConns(t, logPath, conn("Cwhiledown", c2.Addr, 50005))
	r = start(ctx, t, cfgPath)
	r.waitEvents(ctx, t, 1)
	appendConns(t, logPath, conn("Cafter", c2.Addr, 50006))
	r.waitEvents(ctx, t, 2)
	if got := r.dbMatches(c2.Addr); strings.Join(got, ",") != "Cwhiledown,Cafter" {
		t.Fatalf("second run: db_match alerts %v, want [Cwhiledown Cafter] (a replayed line would repeat Cfirst1 or Csecond)", got)
	}
	r.stop(t)

	// The alert file holds each connection's db_match alert exactly once.
	var uids []string
	for _, line := range readLines(t, alertsPath) {
		var a struct {
			Rule string `json:"rule"`
			UID  string `json:"uid"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("%s: %v: %s", alertsPath, err, line)
		}
		if a.Rule == "db_match" {
			uids = append(uids, a.UID)
		}
	}
	if got := strings.Join(uids, ","); got != "Cfirst1,Csecond,Cwhiledown,Cafter" {
		t.Fatalf("%s: db_match alerts for %s, want Cfirst1,Csecond,Cwhiledown,Cafter once each", alertsPath, got)
	}
}

// demoLab starts the demo's TLS servers (servers[1] is the C2) and seeds
// a DB in dir with the C2's JARM; the servers stop with the test.
func demoLab(ctx context.Context, t *testing.T, dir string) (servers []*lab.Server, dbPath string) {
	t.Helper()
	servers, err := lab.StartDemoServers(ctx, dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Close()
		}
	})
	c2 := servers[1]
	dbPath = filepath.Join(dir, "stackprint.db")
	seed := probe.NewJARM(probe.JARMConfig{IOTimeout: 3 * time.Second, Deadline: 10 * time.Second}).
		Probe(ctx, stackprint.Target{IP: c2.Addr.Addr(), Port: c2.Addr.Port()}, c2.Addr.Addr().String())
	if !seed.HasJARM() {
		t.Fatalf("seed probe of %s: %s %s", c2.Addr, seed.Status, seed.Error)
	}
	if err := lab.SeedDemoDB(dbPath, seed.JARM); err != nil {
		t.Fatal(err)
	}
	return servers, dbPath
}

// run is one daemon between start and stop, with the alerts it raised.
type run struct {
	d       *daemon.Daemon
	stopRun context.CancelFunc
	done    chan error
	mu      sync.Mutex
	all     []stackprint.Alert
}

func start(ctx context.Context, t *testing.T, cfgPath string) *run {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r.d, err = daemon.New(cfg, log, daemon.Options{ConfigPath: cfgPath, OnAlert: func(a stackprint.Alert) {
		r.mu.Lock()
		r.all = append(r.all, a)
		r.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	r.stopRun = stop
	go func() { r.done <- r.d.Run(runCtx) }()
	return r
}

// waitEvents waits until the daemon has read n events and judged them all.
func (r *run) waitEvents(ctx context.Context, t *testing.T, n uint64) {
	t.Helper()
	for r.d.Stats().Events < n {
		select {
		case err := <-r.done:
			t.Fatalf("daemon stopped while waiting for %d events: %v", n, err)
		case <-ctx.Done():
			t.Fatalf("%d of %d events read: %v", r.d.Stats().Events, n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := r.d.WaitIdle(ctx); err != nil {
		t.Fatalf("events not judged: %v", err)
	}
}

func (r *run) stop(t *testing.T) {
	t.Helper()
	r.stopRun()
	if err := <-r.done; err != nil {
		t.Fatalf("daemon run: %v", err)
	}
}

// dbMatches are the client uids of the db_match alerts on server s.
func (r *run) dbMatches(s netip.AddrPort) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var uids []string
	for _, a := range r.all {
		if a.Rule == "db_match" && a.Event.Resp == s {
			uids = append(uids, a.Event.UID)
		}
	}
	return uids
}

func counter(t *testing.T, d *daemon.Daemon, name, result string) float64 {
	t.Helper()
	mfs, err := d.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{result=%q} not exported", name, result)
	return 0
}

func appendConns(t *testing.T, path string, conns ...lab.Conn) {
	t.Helper()
	if err := lab.WriteZeekSSL(path, conns, false); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// testWriter sends the daemon's log to the test's output.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
