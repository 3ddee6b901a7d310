package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint/internal/lab"
)

// BenchmarkAlertLatency measures, on the built daemon, how long after a
// line naming an already-fingerprinted malicious server is appended to
// ssl.log its alert is in the alerts file: fsnotify wake-up, parse, cached
// verdict, alert write and fsync. Run with bench/latency.sh.
func BenchmarkAlertLatency(b *testing.B) {
	dir := b.TempDir()
	srv, err := lab.StartGoTLS("c2", "127.0.0.95", &tls.Config{Certificates: []tls.Certificate{mustCert(b, "rsa")}, MaxVersion: tls.VersionTLS12})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	sslLog, alerts := filepath.Join(dir, "ssl.log"), filepath.Join(dir, "alerts.ndjson")
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	p := flatLab(dir)
	p.SSL, p.Alerts = sslLog, alerts
	cfg := configText(b, p, "allow: []", "allow: [127.0.0.0/8]")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	jarm := jarmOf(b, srv)
	if out, errOut, err := runBin(b, "db", "add", "-c", cfgPath, "--kind", "jarm", "--value", jarm, "--label", "latency-c2"); err != nil {
		b.Fatalf("db add: %v %s %s", err, out, errOut)
	}
	daemon := exec.Command(binPath, "run", "-c", cfgPath)
	if err := daemon.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = daemon.Process.Signal(syscall.SIGTERM); _ = daemon.Wait() }()

	// Warm the cache: the first connection triggers the probe.
	if err := lab.WriteZeekSSL(sslLog, []lab.Conn{{UID: "CLat0", Orig: "127.0.0.1:40000", Resp: srv.Addr, SNI: "lat.test"}}, true); err != nil {
		b.Fatal(err)
	}
	waitAlert(b, alerts, "CLat0", 30*time.Second)

	n := max(b.N, 300)
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := 1; i <= n; i++ {
		uid := fmt.Sprintf("CLat%d", i)
		t0 := time.Now()
		if err := lab.WriteZeekSSL(sslLog, []lab.Conn{{UID: uid, Orig: fmt.Sprintf("127.0.0.1:%d", 40000+i), Resp: srv.Addr, SNI: "lat.test"}}, false); err != nil {
			b.Fatal(err)
		}
		waitAlert(b, alerts, uid, 10*time.Second)
		lat = append(lat, time.Since(t0))
		time.Sleep(5 * time.Millisecond) // one connection at a time, like a quiet sensor
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.Logf("%d alerts: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", len(lat), q(0.5), q(0.9), q(0.99), q(1))
}

// waitAlert polls the alerts file for uid every 200 µs.
func waitAlert(b *testing.B, path, uid string, timeout time.Duration) {
	b.Helper()
	needle := []byte(`"uid":"` + uid + `"`)
	deadline := time.Now().Add(timeout)
	for {
		if data, err := os.ReadFile(path); err == nil && bytes.Contains(data, needle) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("no alert for %s within %s", uid, timeout)
		}
		time.Sleep(200 * time.Microsecond)
	}
}
