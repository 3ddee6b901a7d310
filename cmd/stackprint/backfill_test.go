package main

import (
	"bufio"
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/internal/lab"
)

// countingTLS is a loopback TLS server that counts the connections it
// accepts: what a backfill costs the servers it probes.
type countingTLS struct {
	addr  netip.AddrPort
	conns atomic.Int64
}

func startCountingTLS(t *testing.T, ip string, cert tls.Certificate) *countingTLS {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &countingTLS{addr: netip.MustParseAddrPort(ln.Addr().String())}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					br := bufio.NewReader(tc)
					if line, err := br.ReadString('\n'); err == nil && strings.HasPrefix(line, "GET") {
						tc.Write([]byte("HTTP/1.1 200 OK\r\nServer: backfill-lab\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
					}
				}
			})
		}
	})
	return s
}

// Backfill over a rotated set of logs (ssl.log.1.gz and ssl.log), killed
// with SIGKILL while probing, then run again: every server finished before
// the kill gets no connection at all from the second run, the one being
// probed at the kill is probed again (its probe never finished), every
// other server is probed exactly once, and each connection ends up with
// its alert, marked backfill.
func TestBackfillResumesAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	p := flatLab(dir)
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	writeConfig(t, cfgPath, configText(t, p, "allow: []", "allow: [127.0.0.0/8]", "max_in_flight: 256", "max_in_flight: 1"))

	cert := mustCert(t, "rsa")
	const nServers = 8
	var servers []*countingTLS
	for i := range nServers {
		servers = append(servers, startCountingTLS(t, fmt.Sprintf("127.0.9.%d", i+1), cert))
	}
	// The backfill judges servers in key order.
	slices.SortFunc(servers, func(a, b *countingTLS) int {
		return strings.Compare(db.TargetKey(stackprint.Target{IP: a.addr.Addr(), Port: a.addr.Port()}), db.TargetKey(stackprint.Target{IP: b.addr.Addr(), Port: b.addr.Port()}))
	})

	// One probe of the lab stack gives the DB entry every server matches.
	ref := startCountingTLS(t, "127.0.9.100", cert)
	out, errOut, err := runBin(t, "probe", "--json", "--kinds", "jarm", ref.addr.String())
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, errOut)
	}
	jarm := between(out, `"jarm":"`, `"`)
	if _, errOut, err := runBin(t, "db", "add", "-c", cfgPath, "--kind", "jarm", "--value", jarm, "--label", "backfill-c2", "--confidence", "high"); err != nil {
		t.Fatalf("db add: %v\n%s", err, errOut)
	}

	// Two clients per server, one in the rotated (gzipped) file, one in
	// the current one.
	var old, cur []lab.Conn
	for i, s := range servers {
		old = append(old, lab.Conn{UID: fmt.Sprintf("CBfOld%02d", i), Orig: fmt.Sprintf("10.1.0.%d:4%04d", i+1, i), Resp: s.addr})
		cur = append(cur, lab.Conn{UID: fmt.Sprintf("CBfNew%02d", i), Orig: fmt.Sprintf("10.2.0.%d:5%04d", i+1, i), Resp: s.addr})
	}
	rotated := filepath.Join(dir, "ssl.log.1")
	writeZeekSSLT(t, rotated, old, true)
	gzipFile(t, rotated)
	writeZeekSSLT(t, p.SSL, cur, true)
	files := []string{rotated + ".gz", p.SSL}

	// First run, killed once the third server is being probed: with one
	// probe at a time the first two are finished (recorded, alerted,
	// marked) by then.
	cmd := exec.Command(binPath, append([]string{"scan", "-c", cfgPath}, files...)...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for servers[2].conns.Load() == 0 {
		select {
		case <-exited:
			t.Fatalf("scan ended before the third server was probed\n%s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the third server was never probed\n%s", stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	atKill := make([]int64, nServers)
	for i, s := range servers {
		atKill[i] = s.conns.Load()
	}
	perProbe := atKill[0]
	if perProbe == 0 || atKill[1] != perProbe {
		t.Fatalf("connections at the kill %v: the first two servers should have one whole probe each", atKill)
	}

	// Second run: resumes.
	out, errOut, err = runBin(t, append([]string{"scan", "-c", cfgPath}, files...)...)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, errOut)
	}
	t.Logf("first run killed with connections %v; resume: %s", atKill, strings.TrimSpace(out))
	for i, s := range servers {
		n := s.conns.Load()
		switch {
		case i < 2 && n != atKill[i]:
			t.Errorf("server %d (%s), finished before the kill: %d connections after the resume, %d before: probed twice", i, s.addr, n, atKill[i])
		case i > 2 && n != perProbe:
			t.Errorf("server %d (%s): %d connections, want one probe's %d", i, s.addr, n, perProbe)
		case i == 2 && n > atKill[2]+perProbe:
			t.Errorf("server 2 (%s), probed at the kill: %d connections, more than its interrupted probe (%d) and one more", s.addr, n, atKill[2])
		}
	}
	if !strings.Contains(out, fmt.Sprintf("servers=%d", nServers)) || !strings.Contains(out, "resumed=2") {
		t.Errorf("resume summary: %s", out)
	}
	// Every connection has its alert, marked backfill; a replay of the
	// server in flight repeats its alert ids, never adds new ones.
	ids := map[string]bool{}
	uids := map[string]bool{}
	for _, a := range readAlerts(t, p.Alerts) {
		if a["backfill"] != true || a["rule"] != "db_match" {
			t.Errorf("alert not marked backfill: %v", a)
		}
		ids[fmt.Sprint(a["alert_id"])] = true
		uids[fmt.Sprint(a["uid"])] = true
	}
	if len(ids) != 2*nServers || len(uids) != 2*nServers {
		t.Errorf("%d distinct alert ids for %d connections (uids %d)", len(ids), 2*nServers, len(uids))
	}

	// A third run over the same files finds everything finished.
	out, errOut, err = runBin(t, append([]string{"scan", "-c", cfgPath}, files...)...)
	if err != nil || !strings.Contains(out, fmt.Sprintf("resumed=%d", nServers)) || !strings.Contains(out, "probed=0") {
		t.Errorf("third run: %v %s %s", err, out, errOut)
	}
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}

func gzipFile(t *testing.T, path string) {
	t.Helper()
	data := mustRead(t, path)
	f, err := os.Create(path + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
}

// While a daemon runs (and holds the DB), a backfill says so instead of
// waiting for the lock.
func TestBackfillRefusesWhileDaemonRuns(t *testing.T) {
	dir := t.TempDir()
	cfgPath, sslLog, _ := labConfig(t, dir)
	writeZeekSSLT(t, sslLog, nil, true)
	cmd, stderr := startDaemon(t, cfgPath)
	waitFor(t, "the admin socket", 20*time.Second, func() bool { return strings.Contains(stderr.String(), "admin socket listening") })
	_, errOut, err := runBin(t, "scan", "-c", cfgPath, sslLog)
	if err == nil || !strings.Contains(errOut, "a daemon runs") {
		t.Errorf("scan while the daemon runs: %v\n%s", err, errOut)
	}
	stopDaemon(t, cmd)
}
