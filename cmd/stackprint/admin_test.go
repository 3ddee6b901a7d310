package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/admin"
	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/daemon"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/internal/lab"
)

// TestDBCommandsThroughTheAdminSocket runs the real daemon binary and the
// real CLI: while the daemon owns the file every db command goes through
// its socket and applies at once; after it stops, the socket is gone and
// the CLI opens the file directly.
func TestDBCommandsThroughTheAdminSocket(t *testing.T) {
	dir := t.TempDir()
	c2 := mustServer(t, "adm-c2", "127.0.5.1", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}, MaxVersion: tls.VersionTLS12})
	c2JARM := jarmOf(t, c2)
	cfgPath, sslLog, alerts := labConfig(t, dir, "allow: []", "allow: [127.0.0.0/8]")
	dbPath, sock := filepath.Join(dir, "stackprint.db"), filepath.Join(dir, "admin.sock")

	cmd, stderr := startDaemon(t, cfgPath)
	waitFor(t, "the admin socket", 10*time.Second, func() bool {
		fi, err := os.Lstat(sock)
		return err == nil && fi.Mode()&fs.ModeSocket != 0
	})
	fi, _ := os.Lstat(sock)
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %v, want 0600", perm)
	}

	// add via the socket: the daemon applies it at once, so the first
	// connection to the server alerts.
	out, errOut, err := runBin(t, "db", "add", "-c", cfgPath, "--kind", "jarm", "--value", c2JARM, "--label", "adm-c2", "--source", "admin-test", "--confidence", "high")
	if err != nil || !strings.Contains(out, "via the running daemon") || !strings.Contains(out, "retro-hunt: 0") {
		t.Fatalf("db add via socket: %v\n%s%s", err, out, errOut)
	}
	writeZeekSSLT(t, sslLog, []lab.Conn{{UID: "CAdm1", Orig: "127.0.0.1:41001", Resp: c2.Addr, SNI: "adm.test"}}, true)
	waitFor(t, "the alert for an entry added through the socket", 20*time.Second, func() bool {
		return alertFor(readAlerts(t, alerts), "uid", "CAdm1") != nil
	})

	// list, import, stats, export, rm through the socket; --db finds the
	// socket next to the file.
	out, _, err = runBin(t, "db", "list", "--db", dbPath)
	if err != nil || !strings.Contains(out, "adm-c2") || !strings.Contains(out, "admin-test") {
		t.Fatalf("db list: %v\n%s", err, out)
	}
	list := filepath.Join(dir, "jarms.txt")
	const other = "07d19d12d21d21d07c07d19d07d21da5a8ab90bcc6bf8bbc6fbec4bcaa8219"
	if err := os.WriteFile(list, []byte("# test list\n"+other+",get2,cedowens\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = runBin(t, "db", "import", "--db", dbPath, list)
	if err != nil || !strings.Contains(out, "imported 1 entries") || !strings.Contains(out, "(jarm)") || !strings.Contains(out, "running daemon") {
		t.Fatalf("db import via socket: %v\n%s%s", err, out, errOut)
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte(other+",dup\n"+strings.Repeat("0", 62)+",zero\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = runBin(t, "db", "import", "--db", dbPath, "--format", "jarm", bad)
	if err == nil || !strings.Contains(errOut, "bad.txt:2: rejected:") || !strings.Contains(errOut, "all-zero JARM") {
		t.Fatalf("bad import via socket: %v\n%s", err, errOut)
	}
	out, _, err = runBin(t, "db", "stats", "--db", dbPath, "--json")
	var st db.Stats
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Fingerprints != 2 || st.ByKind["jarm"] != 2 ||
		st.BySource["admin-test"] != 1 || st.LastImport == nil || st.LastImport.Name != list || st.FileSize <= 0 {
		t.Fatalf("db stats: %v\n%s", err, out)
	}
	exp := filepath.Join(dir, "export.jsonl")
	if _, errOut, err := runBin(t, "db", "export", "--db", dbPath, "--format", "jsonl", "-o", exp); err != nil {
		t.Fatalf("db export: %v %s", err, errOut)
	}
	if b := string(mustRead(t, exp)); strings.Count(b, "\n") != 2 || !strings.Contains(b, c2JARM) {
		t.Fatalf("export:\n%s", b)
	}
	if _, errOut, err := runBin(t, "db", "rm", "--db", dbPath, "--kind", "jarm", "--value", other); err != nil {
		t.Fatalf("db rm: %v %s", err, errOut)
	}
	_, errOut, err = runBin(t, "db", "add", "--db", dbPath, "--kind", "jarm", "--value", "abc", "--label", "x")
	if err == nil || !strings.Contains(errOut, "62 hex characters") {
		t.Fatalf("bad add: %v %s", err, errOut)
	}

	stopDaemon(t, cmd)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind after shutdown: %v", err)
	}
	if !strings.Contains(stderr.String(), "admin: fingerprint added") {
		t.Errorf("daemon did not log the add:\n%s", stderr.String())
	}
	// Stopped: the CLI opens the file itself and sees what the daemon wrote.
	out, _, err = runBin(t, "db", "list", "--db", dbPath, "--json")
	if err != nil || !strings.Contains(out, c2JARM) || strings.Contains(out, other) {
		t.Fatalf("db list after the daemon stopped: %v\n%s", err, out)
	}
	// The daemon recorded observations; exports of matched servers work
	// offline too. (Observations are recorded once the sink calls
	// RecordObservation; until then the export is just the header.)
	out, _, err = runBin(t, "db", "export", "--db", dbPath, "--format", "zeek-intel")
	if err != nil || !strings.HasPrefix(out, "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\n") {
		t.Fatalf("zeek-intel export: %v\n%s", err, out)
	}
}

// TestDBCommandLockTimeoutWithoutDaemon holds the file the way a daemon
// without a socket would: the CLI gives up after db.lock_timeout with a
// message naming the lock and the socket, never hangs.
func TestDBCommandLockTimeoutWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "held.db")
	held, err := db.Open(dbPath, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, args := range [][]string{
		{"db", "list", "--db", dbPath},
		{"db", "add", "--db", dbPath, "--kind", "jarm", "--value", "07d19d12d21d21d07c07d19d07d21da5a8ab90bcc6bf8bbc6fbec4bcaa8219", "--label", "x"},
	} {
		t0 := time.Now()
		_, errOut, err := runBin(t, args...)
		if err == nil || !strings.Contains(errOut, "locked by another process") || !strings.Contains(errOut, "no daemon answered on the admin socket "+filepath.Join(dir, "admin.sock")) {
			t.Fatalf("%v: err=%v stderr=%q", args, err, errOut)
		}
		if d := time.Since(t0); d > 15*time.Second {
			t.Fatalf("%v took %s", args, d)
		}
	}
	// Reading a DB that does not exist is an error, not an empty file.
	_, errOut, err := runBin(t, "db", "list", "--db", filepath.Join(dir, "none.db"))
	if err == nil || !strings.Contains(errOut, "no fingerprint DB at") {
		t.Fatalf("list of a missing DB: %v %s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); !os.IsNotExist(err) {
		t.Errorf("list created the DB file")
	}
}

// inProcessDaemon runs a daemon in this process with its alerts captured.
type inProcessDaemon struct {
	d      *daemon.Daemon
	sock   string
	mu     sync.Mutex
	alerts []stackprint.Alert
}

func (p *inProcessDaemon) Alerts() []stackprint.Alert {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]stackprint.Alert(nil), p.alerts...)
}

func startInProcess(t *testing.T, dir string, edits ...string) *inProcessDaemon {
	t.Helper()
	cfgPath, _, _ := labConfig(t, dir, edits...)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &inProcessDaemon{sock: cfg.DB.AdminSocketPath()}
	p.d, err = daemon.New(cfg, slog.New(slog.DiscardHandler), daemon.Options{
		OnAlert: func(a stackprint.Alert) { p.mu.Lock(); p.alerts = append(p.alerts, a); p.mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("daemon did not stop")
		}
		if _, err := os.Lstat(p.sock); !os.IsNotExist(err) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	waitFor(t, "the admin socket", 10*time.Second, func() bool {
		c, err := admin.Dial(context.Background(), p.sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// TestRetroHunt adds a fingerprint online: targets that carried it inside
// db.retro_window get retroactive alerts through the sink, once per
// target; targets outside the window or with other fingerprints do not.
func TestRetroHunt(t *testing.T) {
	dir := t.TempDir()
	p := startInProcess(t, dir, "retro_window: 168h", "retro_window: 1h")
	const (
		bad   = "07d19d12d21d21d07c07d19d07d21da5a8ab90bcc6bf8bbc6fbec4bcaa8219"
		other = "22b22b09b22b22b22b22b22b22b22b352842cd5d6b0278445702035e06875c"
	)
	now := time.Now()
	obs := []stackprint.Result{
		{Target: stackprint.Target{IP: netip.MustParseAddr("203.0.113.10"), Port: 443, SNI: "a.example"}, Started: now.Add(-10 * time.Minute), Status: stackprint.StatusOK, JARM: bad},
		{Target: stackprint.Target{IP: netip.MustParseAddr("203.0.113.11"), Port: 8443}, Started: now.Add(-3 * time.Hour), Status: stackprint.StatusOK, JARM: bad}, // outside the window
		{Target: stackprint.Target{IP: netip.MustParseAddr("203.0.113.12"), Port: 443}, Started: now.Add(-5 * time.Minute), Status: stackprint.StatusOK, JARM: other},
		// Carried it 20 minutes ago, changed since: still inside the window.
		{Target: stackprint.Target{IP: netip.MustParseAddr("203.0.113.13"), Port: 443}, Started: now.Add(-20 * time.Minute), Status: stackprint.StatusOK, JARM: bad},
		{Target: stackprint.Target{IP: netip.MustParseAddr("203.0.113.13"), Port: 443}, Started: now.Add(-2 * time.Minute), Status: stackprint.StatusOK, JARM: other},
	}
	for _, r := range obs {
		if err := p.d.DB().RecordObservation(r); err != nil {
			t.Fatal(err)
		}
	}
	c, err := admin.Dial(context.Background(), p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec, retro, err := c.Add(context.Background(), db.Record{Kind: "jarm", Value: bad, Label: "get2", Source: "retro-test", Confidence: "high"})
	if err != nil || rec.Label != "get2" {
		t.Fatalf("add: %+v %v", rec, err)
	}
	if retro != 2 {
		t.Fatalf("retro alerts = %d, want 2 (.10 and .13)", retro)
	}
	alerts := p.Alerts()
	if len(alerts) != 2 {
		t.Fatalf("alerts through the sink: %+v", alerts)
	}
	got := map[string]stackprint.Alert{}
	for _, a := range alerts {
		got[a.Event.Resp.Addr().String()] = a
		if !a.Retro || a.Event.Source != "retro-hunt" || a.Match.Value != bad || a.Match.Label != "get2" || a.Severity != "high" || a.Result.JARM != bad || a.ID == "" {
			t.Errorf("retro alert = %+v", a)
		}
	}
	if a, ok := got["203.0.113.10"]; !ok || a.Event.SNI != "a.example" || a.Event.Resp.Port() != 443 {
		t.Errorf("alert for .10: %+v", a)
	}
	if _, ok := got["203.0.113.13"]; !ok {
		t.Errorf("no alert for the target that carried it before changing: %v", got)
	}
	// Editing the entry (same fingerprint, new label) does not alert the
	// same targets again.
	if _, retroEdit, err := c.Add(context.Background(), db.Record{Kind: "jarm", Value: bad, Label: "get2-renamed", Source: "retro-test", Confidence: "high"}); err != nil || retroEdit != 0 {
		t.Fatalf("edit: %d retro alerts, %v; want none", retroEdit, err)
	}
	// Removed and added again, the same hunt yields the same alert ids
	// (SIEM dedup).
	if _, err := c.Remove(context.Background(), "jarm", bad); err != nil {
		t.Fatal(err)
	}
	_, retro2, err := c.Add(context.Background(), db.Record{Kind: "jarm", Value: bad, Label: "get2", Source: "retro-test", Confidence: "high"})
	if err != nil || retro2 != 2 {
		t.Fatalf("second add: %d %v", retro2, err)
	}
	again := p.Alerts()[2:]
	for _, a := range again {
		if got[a.Event.Resp.Addr().String()].ID != a.ID {
			t.Errorf("retro alert id not deterministic: %s vs %s", got[a.Event.Resp.Addr().String()].ID, a.ID)
		}
	}
	// An import runs the hunt for every fingerprint it writes.
	data := []byte(other + ",trickbot\n")
	rep, retro3, err := c.Import(context.Background(), "list.txt", data, db.ImportOptions{})
	if err != nil || rep.Accepted != 1 || retro3 != 2 { // .12 now, .13 since 2 minutes
		t.Fatalf("import: %+v retro %d %v", rep, retro3, err)
	}
	// Retro-hunt alerts count in stackprint_alerts_total like the others
	// (they were written and not counted).
	var counted float64
	mfs, err := p.d.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "stackprint_alerts_total" {
			for _, m := range mf.GetMetric() {
				counted += m.GetCounter().GetValue()
			}
		}
	}
	if written := len(p.Alerts()); counted != float64(written) {
		t.Errorf("stackprint_alerts_total = %v, %d alerts written", counted, written)
	}
}
