package main

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint/internal/lab"
)

// labPaths are the files of a test daemon.
type labPaths struct{ DB, SSL, Conn, Eve, Alerts, Fingerprints string }

// flatLab puts every file of a test daemon directly in dir.
func flatLab(dir string) labPaths {
	return labPaths{
		DB: filepath.Join(dir, "stackprint.db"), SSL: filepath.Join(dir, "ssl.log"), Conn: filepath.Join(dir, "conn.log"),
		Eve: filepath.Join(dir, "eve.json"), Alerts: filepath.Join(dir, "alerts.ndjson"), Fingerprints: filepath.Join(dir, "stackprint.log"),
	}
}

// configText is the default config with the files of p, a fast poll, an
// ephemeral metrics port and no suppression window (one alert per
// connection), then the extra old/new replacements.
func configText(tb testing.TB, p labPaths, extra ...string) string {
	tb.Helper()
	pairs := append([]string{
		"/var/lib/stackprint/stackprint.db", p.DB,
		"/opt/zeek/logs/current/ssl.log", p.SSL,
		"/opt/zeek/logs/current/conn.log", p.Conn,
		"/var/log/suricata/eve.json", p.Eve,
		"/var/log/stackprint/alerts.ndjson", p.Alerts,
		"/var/log/stackprint/stackprint.log", p.Fingerprints,
		"poll_interval: 250ms", "poll_interval: 50ms",
		"listen: 127.0.0.1:9464", "listen: 127.0.0.1:0",
		"  suppress: {}", `  suppress: {"*": 0s}`,
	}, extra...)
	return strings.NewReplacer(pairs...).Replace(string(mustRead(tb, "../../configs/stackprint.yaml")))
}

// labConfig writes a config for a daemon with its files in dir.
func labConfig(t testing.TB, dir string, extra ...string) (cfgPath, sslLog, alerts string) {
	t.Helper()
	p := flatLab(dir)
	cfgPath = filepath.Join(dir, "stackprint.yaml")
	writeConfig(t, cfgPath, configText(t, p, extra...))
	return cfgPath, p.SSL, p.Alerts
}

func writeConfig(t testing.TB, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func startDaemon(t *testing.T, cfgPath string, env ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binPath, "run", "-c", cfgPath)
	cmd.Env = append(os.Environ(), env...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", tail(stderr.String(), 4000))
		}
	})
	return cmd, stderr
}

func stopDaemon(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20s of SIGTERM")
	}
}

func TestSIGHUPReloadsScopeAndRefusesABadConfig(t *testing.T) {
	dir := t.TempDir()
	c2 := mustServer(t, "c2", "127.0.0.81", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}, MaxVersion: tls.VersionTLS12})
	cfgPath, sslLog, alerts := labConfig(t, dir) // no allow-list: loopback is out of scope
	if _, errOut, err := runBin(t, "db", "add", "--db", filepath.Join(dir, "stackprint.db"), "--kind", "jarm",
		"--value", jarmOf(t, c2), "--label", "hup-c2"); err != nil {
		t.Fatal(err, errOut)
	}
	cmd, stderr := startDaemon(t, cfgPath)
	writeZeekSSLT(t, sslLog, []lab.Conn{{UID: "CHup1", Orig: "127.0.0.1:30001", Resp: c2.Addr, SNI: "hup.test"}}, true)
	waitFor(t, "the first event judged out of scope", 10*time.Second, func() bool {
		return strings.Contains(string(mustReadOK(filepath.Join(dir, "stackprint.log"))), "out_of_scope")
	})

	// Allow loopback and reload: the same server is now probed and alerted.
	_, _, _ = labConfig(t, dir, "allow: []", "allow: [127.0.0.0/8]")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload logged", 10*time.Second, func() bool { return strings.Contains(stderr.String(), "config reloaded") })
	writeZeekSSLT(t, sslLog, []lab.Conn{{UID: "CHup2", Orig: "127.0.0.1:30002", Resp: c2.Addr, SNI: "hup.test"}}, false)
	waitFor(t, "alert after the reload", 15*time.Second, func() bool {
		return alertFor(readAlerts(t, alerts), "uid", "CHup2") != nil
	})

	// A broken file is refused; the daemon keeps running with the old one.
	writeConfig(t, cfgPath, "inputs: [\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refusal logged", 10*time.Second, func() bool { return strings.Contains(stderr.String(), "config reload refused") })
	writeZeekSSLT(t, sslLog, []lab.Conn{{UID: "CHup3", Orig: "127.0.0.1:30003", Resp: c2.Addr, SNI: "hup.test"}}, false)
	waitFor(t, "alert with the old config still running", 15*time.Second, func() bool {
		return alertFor(readAlerts(t, alerts), "uid", "CHup3") != nil
	})
	stopDaemon(t, cmd)
}

func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfgPath, _, _ := labConfig(t, dir)
	cmd, _ := startDaemon(t, cfgPath, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	got := map[string]bool{}
	read := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		buf := make([]byte, 4096)
		for !got[want] {
			_ = conn.SetReadDeadline(deadline)
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				t.Fatalf("waiting for %s: %v (got %v)", want, err, got)
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				got[l] = true
			}
		}
	}
	read("READY=1")
	read("WATCHDOG=1")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	read("STOPPING=1")
	_ = cmd.Wait()
}

func TestConfigCheckCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _, _ := labConfig(t, dir)
	if out, errOut, err := runBin(t, "config", "check", "-c", cfgPath); err != nil || !strings.Contains(out, "config ok") {
		t.Fatalf("good config: %v %s %s", err, out, errOut)
	}
	writeConfig(t, cfgPath, strings.Replace(string(mustRead(t, cfgPath)), "max_in_flight: 256", "max_in_flight: -1", 1))
	_, errOut, err := runBin(t, "config", "check", "-c", cfgPath)
	if err == nil || !strings.Contains(errOut, "scheduler.max_in_flight") {
		t.Fatalf("bad config accepted or error lacks the field path: %v %s", err, errOut)
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"run", "-h"}, {"demo", "-h"}, {"probe", "-h"}, {"db", "add", "-h"}, {"db", "list", "-h"},
		{"db", "rm", "-h"}, {"db", "import", "-h"}, {"db", "export", "-h"}, {"db", "stats", "-h"}, {"db", "learn", "-h"},
		{"config", "check", "-h"}, {"scan", "-h"}, {"rules", "check", "-h"}, {"help", "db", "add"},
	} {
		out, errOut, err := runBin(t, args...)
		if err != nil || !strings.Contains(out, "Usage") || !strings.Contains(out, "Example") {
			t.Errorf("stackprint %s: want usage with examples on stdout and exit 0: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
	}
	out, _, err := runBin(t, "version")
	if err != nil || !strings.Contains(out, "stackprint") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version: %v %q", err, out)
	}
}

func TestStaticBinaryBuilds(t *testing.T) {
	out := filepath.Join(t.TempDir(), "stackprint-static")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 build: %v\n%s", err, b)
	}
	v, err := exec.Command(out, "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "stackprint ") {
		t.Fatalf("static binary version: %v %q", err, v)
	}
	// A static binary has no program interpreter.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b[:min(len(b), 4096)]), "ld-linux") {
		t.Fatal("binary built with CGO_ENABLED=0 still names a dynamic loader")
	}
}

func mustReadOK(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func TestSecondSIGTERMAbortsAtOnce(t *testing.T) {
	dir := t.TempDir()
	counter := &loadCounter{first: map[string]time.Time{}, accepts: map[string][]time.Time{}}
	tarpit := startTarpit(t, "127.0.0.85", counter)
	cfgPath, sslLog, _ := labConfig(t, dir, "allow: []", "allow: [127.0.0.0/8]",
		"shutdown_timeout: 10s", "shutdown_timeout: 60s", "deadline: 15s", "deadline: 60s", "io_timeout: 5s", "io_timeout: 60s")
	cmd, stderr := startDaemon(t, cfgPath)
	writeZeekSSLT(t, sslLog, []lab.Conn{{UID: "CAbort1", Orig: "127.0.0.1:32001", Resp: tarpit, SNI: "abort.test"}}, true)
	waitFor(t, "the tarpit probe connected", 10*time.Second, func() bool {
		counter.mu.Lock()
		defer counter.mu.Unlock()
		return len(counter.accepts["127.0.0.85"]) > 0
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The first SIGTERM waits up to shutdown_timeout (60s) for the probe.
	select {
	case err := <-exited:
		t.Fatalf("exited (%v) before the drain timeout with a probe in flight", err)
	case <-time.After(500 * time.Millisecond):
	}
	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("second SIGTERM did not end the process within 5s")
	}
	t.Logf("ended %s after the second SIGTERM", time.Since(t0).Round(time.Millisecond))
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit after the second SIGTERM: %v, want status 130\n%s", err, tail(stderr.String(), 2000))
	}
}

func TestStartupErrorsAreReportedNotPanics(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _, _ := labConfig(t, dir)
	first, _ := startDaemon(t, cfgPath)
	defer stopDaemon(t, first)
	waitFor(t, "the first daemon's DB", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "stackprint.db"))
		return err == nil
	})
	// A second daemon on the same DB gives up after the lock timeout.
	_, errOut, err := runBin(t, "run", "-c", cfgPath)
	if err == nil || !strings.Contains(errOut, "locked") || strings.Contains(errOut, "panic") {
		t.Fatalf("second daemon: err=%v stderr:\n%s", err, errOut)
	}
	// An output that cannot be created.
	if err := os.MkdirAll(filepath.Join(dir, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	bad, _, _ := labConfig(t, filepath.Join(dir, "b"))
	writeConfig(t, bad, strings.Replace(string(mustRead(t, bad)), filepath.Join(dir, "b", "alerts.ndjson"), "/proc/stackprint-test/alerts.ndjson", 1))
	_, errOut, err = runBin(t, "run", "-c", bad)
	if err == nil || strings.Contains(errOut, "panic") || !strings.Contains(errOut, "alerts") {
		t.Fatalf("unwritable output: err=%v stderr:\n%s", err, errOut)
	}
}
