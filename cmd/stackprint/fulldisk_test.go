package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint/internal/lab"
)

// mountTmpfs mounts a tmpfs of size bytes on dir for the test: a real
// filesystem that fills up. The CI runs as root; without the mount the test
// fails, it does not skip.
func mountTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount a %d-byte tmpfs on %s for a real full disk (the test needs root): %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// fillDisk writes path until the filesystem is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1024)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}

// wholeLines checks that b is made of complete lines that each parse with
// ok, and returns them.
func wholeLines(t *testing.T, name string, b []byte, ok func(string) bool) []string {
	t.Helper()
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("%s ends with a partial line: %q", name, b[max(0, len(b)-80):])
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if !ok(line) {
			t.Errorf("%s: torn or bad line %q", name, line)
		}
		out = append(out, line)
	}
	return out
}

// The adversarial pass's reproduction: with the output directory full the
// daemon exited 1 and left a partial JSON line in alerts.ndjson. Now it
// keeps running (degraded in /readyz and /metrics, no checkpoint commits),
// retries, and after space is freed every alert is there exactly once and
// every file holds whole records only.
func TestFullDiskKeepsRunningAndWritesWholeRecords(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	mountTmpfs(t, out, 128<<10)
	c2 := mustServer(t, "full-c2", "127.0.5.9", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}, MaxVersion: tls.VersionTLS12})
	p := flatLab(dir)
	p.Alerts, p.Fingerprints = filepath.Join(out, "alerts.ndjson"), filepath.Join(out, "stackprint.log")
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	writeConfig(t, cfgPath, configText(t, p, "allow: []", "allow: [127.0.0.0/8]"))
	if _, errOut, err := runBin(t, "db", "add", "-c", cfgPath, "--kind", "jarm", "--value", jarmOf(t, c2), "--label", "full-c2", "--confidence", "high"); err != nil {
		t.Fatalf("db add: %v\n%s", err, errOut)
	}
	cmd, stderr := startDaemon(t, cfgPath)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	conn := func(i int) lab.Conn {
		return lab.Conn{UID: fmt.Sprintf("CFull%02d", i), Orig: fmt.Sprintf("127.0.0.1:%d", 42000+i), Resp: c2.Addr, SNI: "full.test"}
	}
	writeZeekSSLT(t, p.SSL, []lab.Conn{conn(0)}, true)
	waitFor(t, "the first alert", 20*time.Second, func() bool { return len(readAlerts(t, p.Alerts)) == 1 })

	fillDisk(t, filepath.Join(out, "filler"))
	const n = 20
	var conns []lab.Conn
	for i := 1; i <= n; i++ {
		conns = append(conns, conn(i))
	}
	writeZeekSSLT(t, p.SSL, conns, false)

	addr := metricsAddrOf(t, stderr)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "the daemon to report the failing output", 20*time.Second, func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, "\nstackprint_output_degraded 1\n") // the sample, not the HELP line ("… 1 while …")
	})
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "degraded") {
		t.Errorf("/readyz while the disk is full = %d %q", code, body)
	}
	time.Sleep(time.Second) // a few retries and commit intervals on a full disk
	select {
	case err := <-exited:
		t.Fatalf("the daemon exited on a full disk: %v\n%s", err, stderr)
	default:
	}
	// Even now, on the full disk, the files hold whole records only.
	isJSON := func(l string) bool { return strings.HasPrefix(l, "{") && strings.HasSuffix(l, "}") }
	wholeLines(t, "alerts.ndjson (disk full)", mustRead(t, p.Alerts), isJSON)

	if err := os.Remove(filepath.Join(out, "filler")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every alert after space was freed", 30*time.Second, func() bool { return len(readAlerts(t, p.Alerts)) >= n+1 })
	waitFor(t, "the daemon to report recovery", 10*time.Second, func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, "\nstackprint_output_degraded 0\n")
	})
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after recovery = %d %q", code, body)
	}
	_, body := get("/metrics")
	if !regexp.MustCompile(`stackprint_output_write_errors_total\{output="(alerts|fingerprints)"\} [1-9]`).MatchString(body) {
		t.Errorf("/metrics counts no output write error:\n%s", grepLines(body, "stackprint_output"))
	}

	lines := wholeLines(t, "alerts.ndjson", mustRead(t, p.Alerts), isJSON)
	uids := map[string]int{}
	for _, a := range readAlerts(t, p.Alerts) {
		uids[fmt.Sprint(a["uid"])]++
	}
	for i := 0; i <= n; i++ {
		if c := uids[conn(i).UID]; c != 1 {
			t.Errorf("alert for %s written %d times", conn(i).UID, c)
		}
	}
	if len(lines) != n+1 {
		t.Errorf("%d alert lines, want %d", len(lines), n+1)
	}
	fields := -1
	wholeLines(t, "stackprint.log", mustRead(t, p.Fingerprints), func(l string) bool {
		if strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "#fields") {
				fields = strings.Count(l, "\t") - 1 // "#fields" is one more column
			}
			return true
		}
		return strings.Count(l, "\t") == fields
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !bytes.Contains([]byte(stderr.String()), []byte("output writes recovered")) {
		t.Errorf("no recovery in the log:\n%s", stderr)
	}
}

func metricsAddrOf(t *testing.T, stderr *syncBuffer) string {
	t.Helper()
	re := regexp.MustCompile(`metrics and health listening" addr=(\S+)`)
	var addr string
	waitFor(t, "metrics listener in the log", 10*time.Second, func() bool {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	return addr
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
