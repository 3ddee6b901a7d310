package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procKB reads a VmRSS/VmHWM-style line of /proc/PID/status, in bytes.
func procKB(t *testing.T, pid int, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key+":") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc status", key)
	return 0
}

// zeros is an endless body that costs the sender no memory.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// TestAdminOversizedRequestMemory sends the real daemon binary 100 MB
// admin requests (one announced, one chunked): they get 413 and 411, and the
// daemon's peak RSS grows by far less than what was sent (it was 20 →
// 512 MB with the JSON-lines protocol, which read the line whole).
func TestAdminOversizedRequestMemory(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _, _ := labConfig(t, dir)
	cmd, _ := startDaemon(t, cfgPath)
	sock := filepath.Join(dir, "admin.sock")
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	waitFor(t, "the admin socket", 15*time.Second, func() bool {
		resp, err := hc.Get("http://stackprint/v1/ping")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	pid := cmd.Process.Pid
	rss0, hwm0 := procKB(t, pid, "VmRSS"), procKB(t, pid, "VmHWM")
	const size = 100 << 20
	for _, chunked := range []bool{false, true} {
		req, err := http.NewRequest("POST", "http://stackprint/v1/import?name=big", io.LimitReader(zeros{}, size))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		if chunked {
			req.ContentLength = -1
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Logf("chunked=%v: %v (the daemon closed the connection after answering)", chunked, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := http.StatusRequestEntityTooLarge
		if chunked {
			want = http.StatusLengthRequired
		}
		if resp.StatusCode != want {
			t.Errorf("chunked=%v: status %d, want %d", chunked, resp.StatusCode, want)
		}
	}
	rss1, hwm1 := procKB(t, pid, "VmRSS"), procKB(t, pid, "VmHWM")
	t.Logf("daemon RSS %d → %d MiB, peak %d → %d MiB, after two 100 MiB requests", rss0>>20, rss1>>20, hwm0>>20, hwm1>>20)
	if grew := hwm1 - hwm0; grew >= size/4 {
		t.Errorf("peak RSS grew by %d MiB for a %d MiB request refused with 413", grew>>20, size>>20)
	}
	// The daemon still answers.
	resp, err := hc.Get("http://stackprint/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("stats after the oversized requests: %d", resp.StatusCode)
	}
	stopDaemon(t, cmd)
}
