package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/internal/lab"
	"github.com/stackprint/stackprint/probe"
)

// binPath is the stackprint binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stackprint-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "stackprint")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build stackprint:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runBin(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func mustServer(t testing.TB, name, ip string, cfg *tls.Config) *lab.Server {
	t.Helper()
	s, err := lab.StartGoTLS(name, ip, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func mustCert(t testing.TB, kind string) tls.Certificate {
	t.Helper()
	c, err := lab.SelfSigned(kind, "e2e.test")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func jarmOf(t testing.TB, s *lab.Server) string {
	t.Helper()
	r := probe.NewJARM(probe.JARMConfig{IOTimeout: 3 * time.Second, Deadline: 10 * time.Second}).
		Probe(context.Background(), stackprint.Target{IP: s.Addr.Addr(), Port: s.Addr.Port()}, s.Addr.Addr().String())
	if !r.HasJARM() {
		t.Fatalf("no JARM for %s: %s %s", s.Addr, r.Status, r.Error)
	}
	return r.JARM
}

// readAlerts returns the NDJSON alert objects in path (missing file = none).
func readAlerts(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber() // flow_id is a uint64
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("alert line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func alertFor(alerts []map[string]any, key, value string) map[string]any {
	for _, a := range alerts {
		if fmt.Sprint(a[key]) == value {
			return a
		}
	}
	return nil
}

func TestEndToEndDaemon(t *testing.T) {
	dir := t.TempDir()
	c2 := mustServer(t, "c2", "127.0.0.61", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}, MaxVersion: tls.VersionTLS12})
	benign := mustServer(t, "benign", "127.0.0.62", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "ecdsa")}, NextProtos: []string{"h2"}})
	c2JARM := jarmOf(t, c2)
	if b := jarmOf(t, benign); b == c2JARM {
		t.Fatalf("test servers share JARM %s; pick different configs", b)
	}

	dbPath := filepath.Join(dir, "state", "stackprint.db")
	if out, errOut, err := runBin(t, "db", "add", "--db", dbPath, "--kind", "jarm", "--value", c2JARM,
		"--label", "e2e-c2", "--source", "e2e-test", "--confidence", "high"); err != nil {
		t.Fatalf("db add: %v\n%s%s", err, out, errOut)
	}

	sslLog, eveLog := filepath.Join(dir, "zeek", "ssl.log"), filepath.Join(dir, "eve.json")
	if err := os.MkdirAll(filepath.Dir(sslLog), 0o755); err != nil {
		t.Fatal(err)
	}
	alertsPath, fpPath := filepath.Join(dir, "out", "alerts.ndjson"), filepath.Join(dir, "out", "stackprint.log")
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	cfg := configText(t, labPaths{DB: dbPath, SSL: sslLog, Conn: filepath.Join(dir, "zeek", "conn.log"), Eve: eveLog,
		Alerts: alertsPath, Fingerprints: fpPath}, "allow: []", "allow: [127.0.0.0/8]")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	daemon := exec.Command(binPath, "run", "-c", cfgPath)
	stderr := &syncBuffer{}
	daemon.Stderr = stderr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	t.Cleanup(func() {
		if daemon.ProcessState == nil {
			_ = daemon.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", stderr.String())
		}
	})
	time.Sleep(300 * time.Millisecond) // the logs do not exist yet: lazily created, as Zeek does

	// While the daemon owns the DB, the CLI goes through its admin socket
	// (admin_test.go covers it and the lock timeout without a daemon).
	t0 := time.Now()
	out, errOut, err := runBin(t, "db", "list", "--db", dbPath)
	if err != nil || !strings.Contains(out, "e2e-c2") {
		t.Fatalf("db list while the daemon runs: err=%v stdout=%q stderr=%q, want the entry via the admin socket", err, out, errOut)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("db list took %s while the daemon runs", d)
	}

	writeZeekSSLT(t, sslLog, []lab.Conn{
		{UID: "CE2Ea1", Orig: "127.0.0.1:40001", Resp: c2.Addr, SNI: "evil.e2e.test"},
		{UID: "CE2Eb1", Orig: "127.0.0.1:40002", Resp: benign.Addr, SNI: "good.e2e.test"},
		{UID: "CE2Eo1", Orig: "127.0.0.1:40003", Resp: netip.MustParseAddrPort("169.254.169.254:443"), SNI: ""},
	}, true)
	waitFor(t, "alert for uid CE2Ea1", 20*time.Second, func() bool { return alertFor(readAlerts(t, alertsPath), "uid", "CE2Ea1") != nil })
	a := alertFor(readAlerts(t, alertsPath), "uid", "CE2Ea1")
	match, _ := a["match"].(map[string]any)
	if fmt.Sprint(a["schema_version"]) != "1" || a["jarm"] != c2JARM || a["resp"] != c2.Addr.String() ||
		a["orig"] != "127.0.0.1:40001" || a["sni"] != "evil.e2e.test" || a["rule"] != "db_match" ||
		a["severity"] != "high" || match["label"] != "e2e-c2" || match["source"] != "e2e-test" ||
		match["confidence"] != "high" || len(fmt.Sprint(a["alert_id"])) < 16 || a["ts"] == nil {
		t.Fatalf("alert has wrong fields: %v", a)
	}

	// Rotation by rename + create: a new connection to the C2 in the new file.
	if err := os.Rename(sslLog, sslLog+".1"); err != nil {
		t.Fatal(err)
	}
	writeZeekSSLT(t, sslLog, []lab.Conn{{UID: "CE2Ea2", Orig: "127.0.0.1:40004", Resp: c2.Addr, SNI: "evil.e2e.test"}}, true)
	// Suricata eve: a tls event to the C2 (a cached verdict by now).
	eve := fmt.Sprintf(`{"timestamp":"2026-11-27T08:00:00.000000+0000","flow_id":1234567890123456789,"event_type":"tls","src_ip":"127.0.0.1","src_port":40005,"dest_ip":"%s","dest_port":%d,"proto":"TCP","tls":{"sni":"evil.e2e.test.","version":"TLS 1.2"}}`+"\n", c2.Addr.Addr(), c2.Addr.Port())
	if err := os.WriteFile(eveLog, []byte(eve), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alerts after rotation and from eve", 20*time.Second, func() bool {
		as := readAlerts(t, alertsPath)
		return alertFor(as, "uid", "CE2Ea2") != nil && alertFor(as, "flow_id", "1234567890123456789") != nil
	})
	for _, a := range readAlerts(t, alertsPath) {
		if a["resp"] != c2.Addr.String() {
			t.Fatalf("alert for a server not in the DB: %v", a)
		}
	}
	fp := string(mustRead(t, fpPath))
	for _, want := range []string{"#path\tstackprint", "#fields\t", "#types\t", c2JARM, benign.Addr.Addr().String(), "out_of_scope"} {
		if !strings.Contains(fp, want) {
			t.Errorf("stackprint.log lacks %q:\n%s", want, fp)
		}
	}

	checkMetrics(t, stderr, c2JARM)

	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not stop within 15s of SIGTERM")
	}
	if !strings.Contains(string(mustRead(t, fpPath)), "#close\t") {
		t.Errorf("stackprint.log has no #close after shutdown")
	}
}

func TestProbeCommandJSON(t *testing.T) {
	s := mustServer(t, "probe", "127.0.0.63", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}})
	out, errOut, err := runBin(t, "probe", "--json", s.Addr.String())
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("probe --json output %q: %v", out, err)
	}
	if got["target"] != s.Addr.String() || got["status"] != "ok" || got["sni"] != "127.0.0.63" || len(fmt.Sprint(got["jarm"])) != 62 {
		t.Fatalf("probe --json = %v", got)
	}
	if want := jarmOf(t, s); got["jarm"] != want {
		t.Fatalf("CLI jarm %v != library jarm %s", got["jarm"], want)
	}
	// A closed port is a status, not a fingerprint.
	out, _, err = runBin(t, "probe", "127.0.0.63:1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"status":"refused"`) || !strings.Contains(out, stackprint.ZeroJARM) {
		t.Fatalf("closed port: %s", out)
	}
}

func TestDemoCommand(t *testing.T) {
	t0 := time.Now()
	out, errOut, err := runBin(t, "demo")
	if err != nil {
		t.Fatalf("demo failed: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	for _, want := range []string{"demo-c2 (test C2)", "out_of_scope", "169.254.169.254", "alerts"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if d := time.Since(t0); d > 30*time.Second {
		t.Errorf("demo took %s, want < 30s", d)
	}
	t.Logf("demo output:\n%s", out)
}

func TestDBCommands(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "fp.db")
	const j = "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"
	csv := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(csv, []byte("kind,value,label,source,confidence\njarm,"+j+",cs-test,unit,low\njarm,3fd3fd0003fd3fd0003fd3fd3fd3fdc354372cf4e0f164e5808b722db3fafd,go-test,unit,medium\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := runBin(t, "db", "import", "--db", dbPath, csv); err != nil || !strings.Contains(out, "imported 2") {
		t.Fatalf("import: %v %s %s", err, out, errOut)
	}
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("kind,value,label,source,confidence\njarm,"+stackprint.ZeroJARM+",zero,unit,low\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runBin(t, "db", "import", "--db", dbPath, bad); err == nil || !strings.Contains(errOut, "bad.csv:2") {
		t.Fatalf("bad import accepted or unclear: %v %s", err, errOut)
	}
	out, _, err := runBin(t, "db", "list", "--db", dbPath)
	if err != nil || !strings.Contains(out, "cs-test") || !strings.Contains(out, "go-test") || strings.Contains(out, "zero") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, _, err := runBin(t, "db", "rm", "--db", dbPath, "--kind", "jarm", "--value", j); err != nil {
		t.Fatal(err)
	}
	out, _, _ = runBin(t, "db", "list", "--db", dbPath, "--json")
	if strings.Contains(out, "cs-test") || !strings.Contains(out, "go-test") {
		t.Fatalf("after rm: %s", out)
	}
	if _, errOut, err := runBin(t, "db", "add", "--db", dbPath, "--kind", "jarm", "--value", "xyz", "--label", "x"); err == nil || !strings.Contains(errOut, "value") {
		t.Fatalf("bad value accepted or unclear: %v %s", err, errOut)
	}
}

func writeZeekSSLT(t *testing.T, path string, conns []lab.Conn, header bool) {
	t.Helper()
	if err := lab.WriteZeekSSL(path, conns, header); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// syncBuffer is a bytes.Buffer safe for a child's writes and our reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkMetrics finds the metrics address in the daemon's log and checks
// /metrics, /healthz and /readyz.
func checkMetrics(t *testing.T, stderr *syncBuffer, jarm string) {
	t.Helper()
	re := regexp.MustCompile(`metrics and health listening" addr=(\S+)`)
	var addr string
	waitFor(t, "metrics listener in the log", 10*time.Second, func() bool {
		m := re.FindStringSubmatch(stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`stackprint_lines_read_total{input="zeek-ssl"}`,
		`stackprint_events_total{outcome="out_of_scope"} 1`,
		`stackprint_probes_total{status="ok"}`,
		`stackprint_alerts_total{rule="db_match",severity="high"}`,
		`stackprint_matches_total{confidence="high",kind="jarm"}`,
		`stackprint_input_last_event_timestamp_seconds{input="zeek-ssl"}`,
		`stackprint_config_last_reload_successful 1`,
		`stackprint_config_last_reload_success_timestamp_seconds`,
		`stackprint_pipeline_sink_errors_total 0`,
		`stackprint_output_degraded 0`,
		`stackprint_output_write_errors_total{output="alerts"} 0`,
		`stackprint_probe_duration_seconds_bucket`,
		`stackprint_dedup_cache_size`,
		`stackprint_checkpoint_lag_bytes{input="zeek-ssl"}`,
		`stackprint_db_size_bytes`,
		`stackprint_build_info{branch=`,
		`revision="`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Unbounded or derived series are gone: a label per imported entry,
	// a ratio that belongs in PromQL, build_info's non-standard commit.
	for _, gone := range []string{`label="e2e-c2"`, "stackprint_dedup_cache_hit_ratio", `commit="`} {
		if strings.Contains(body, gone) {
			t.Errorf("/metrics still has %s", gone)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
