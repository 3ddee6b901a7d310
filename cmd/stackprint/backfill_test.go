package main

import (
	"bufio"
	"compress/gzip"
	"context"
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
	"github.com/stackprint/stackprint/admin"
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

	const nServers = 8
	servers := backfillServers(t, cfgPath, "127.0.9", nServers)

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
	scanKilledAtThirdServer(t, cfgPath, files, servers)
	atKill := make([]int64, nServers)
	for i, s := range servers {
		atKill[i] = s.conns.Load()
	}
	perProbe := atKill[0]
	if perProbe == 0 || atKill[1] != perProbe {
		t.Fatalf("connections at the kill %v: the first two servers should have one whole probe each", atKill)
	}

	// Second run: resumes.
	out, errOut, err := runBin(t, append([]string{"scan", "-c", cfgPath}, files...)...)
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

// While a daemon runs (and holds the DB), `scan` reads the rotated logs and
// the daemon judges their servers through its scheduler and outputs. The
// scan client is SIGKILLed while the third server is being probed: the
// daemon cancels the job at once (the probe in flight is dropped), a second
// scan resumes and no server probed in full is probed again (connection
// counts of the servers), and every connection has its alert in the
// daemon's alert file, marked backfill.
func TestBackfillThroughDaemonResumesAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	p := flatLab(dir)
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	// One probe slot: backfill jobs judge one server at a time
	// (a quarter of max_in_flight, at least one).
	writeConfig(t, cfgPath, configText(t, p, "allow: []", "allow: [127.0.0.0/8]", "max_in_flight: 256", "max_in_flight: 1"))
	writeZeekSSLT(t, p.SSL, nil, true) // the daemon's live input: empty

	const nServers = 12
	servers := backfillServers(t, cfgPath, "127.0.10", nServers)

	// The old logs, not the daemon's input: ssl.log.2.gz and ssl.log.1.
	old := filepath.Join(dir, "archive")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	var gen2, gen1 []lab.Conn
	for i, s := range servers {
		gen2 = append(gen2, lab.Conn{UID: fmt.Sprintf("CDmOld%02d", i), Orig: fmt.Sprintf("10.3.0.%d:4%04d", i+1, i), Resp: s.addr})
		gen1 = append(gen1, lab.Conn{UID: fmt.Sprintf("CDmNew%02d", i), Orig: fmt.Sprintf("10.4.0.%d:5%04d", i+1, i), Resp: s.addr})
	}
	writeZeekSSLT(t, filepath.Join(old, "ssl.log.2"), gen2, true)
	gzipFile(t, filepath.Join(old, "ssl.log.2"))
	writeZeekSSLT(t, filepath.Join(old, "ssl.log.1"), gen1, true)
	files := []string{filepath.Join(old, "ssl.log.2.gz"), filepath.Join(old, "ssl.log.1")}

	daemon, dstderr := startDaemon(t, cfgPath)
	waitFor(t, "the admin socket", 20*time.Second, func() bool { return strings.Contains(dstderr.String(), "admin socket listening") })
	client, err := admin.Dial(context.Background(), filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	scanKilledAtThirdServer(t, cfgPath, files, servers)
	// The daemon sees the upload break and cancels the job.
	var job admin.BackfillJob
	waitFor(t, "the job to end", 30*time.Second, func() bool {
		jobs, err := client.BackfillJobs(context.Background())
		if err != nil || len(jobs) != 1 {
			return false
		}
		job = jobs[0]
		return job.State != admin.JobRunning
	})
	if job.State != admin.JobCancelled || job.Progress.Summary.Servers < 2 {
		t.Errorf("job after the client's kill: %+v", job)
	}
	time.Sleep(200 * time.Millisecond) // a dropped probe's last connection
	atEnd := make([]int64, nServers)
	for i, s := range servers {
		atEnd[i] = s.conns.Load()
	}
	perProbe := atEnd[0]
	if perProbe == 0 || atEnd[1] != perProbe {
		t.Fatalf("connections when the job ended %v: the first two servers should have one whole probe each", atEnd)
	}

	// Second run, the daemon SIGKILLed while it probes the server after
	// the next one, then started again.
	next := slices.IndexFunc(atEnd, func(n int64) bool { return n < perProbe })
	if next < 0 || next+1 >= nServers {
		t.Fatalf("connections when the job ended %v: nothing left for a second interruption", atEnd)
	}
	cmd := exec.Command(binPath, append([]string{"scan", "-c", cfgPath}, files...)...)
	var out2 syncBuffer
	cmd.Stdout, cmd.Stderr = &out2, &out2
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second run to probe", 60*time.Second, func() bool { return servers[next+1].conns.Load() > atEnd[next+1] })
	if err := daemon.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	daemon.Wait()
	atKill := make([]int64, nServers)
	for i, s := range servers {
		atKill[i] = s.conns.Load()
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(out2.String(), "scan: backfill files=2") || !strings.Contains(out2.String(), "interrupted") {
		t.Errorf("scan whose daemon was killed: %v\n%s", err, out2.String())
	}
	daemon, dstderr = startDaemon(t, cfgPath)
	waitFor(t, "the admin socket again", 20*time.Second, func() bool { return strings.Contains(dstderr.String(), "admin socket listening") })

	out, errOut, err := runBin(t, append([]string{"scan", "-c", cfgPath}, files...)...)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, errOut)
	}
	t.Logf("job at the client's kill: %+v; connections then %v; at the daemon's kill %v; resume: %s", job.Progress.Summary, atEnd, atKill, strings.TrimSpace(out))
	// The server in flight at the daemon's kill is the last one touched:
	// its probe may be lost with the daemon and made again.
	inFlight := slices.IndexFunc(atKill, func(n int64) bool { return n == 0 }) - 1
	if inFlight < 0 {
		inFlight = nServers - 1
	}
	for i, s := range servers {
		n := s.conns.Load()
		switch {
		case i == inFlight:
			if n > atKill[i]+perProbe {
				t.Errorf("server %d (%s), probed at the daemon's kill: %d connections, more than %d and one more probe", i, s.addr, n, atKill[i])
			}
		case atKill[i] == perProbe && n != perProbe:
			t.Errorf("server %d (%s), probed in full before a kill: %d connections at the end: probed twice", i, s.addr, n)
		case atKill[i] < perProbe && atEnd[i] == atKill[i] && n != atKill[i]+perProbe:
			t.Errorf("server %d (%s): %d connections at the end, %d before: want one more probe", i, s.addr, n, atKill[i])
		}
	}
	if !strings.Contains(out, fmt.Sprintf("servers=%d", nServers)) || !strings.Contains(out, fmt.Sprintf("events=%d", 2*nServers)) {
		t.Errorf("resume summary: %s", out)
	}
	ids, uids := map[string]bool{}, map[string]bool{}
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
	out, errOut, err = runBin(t, append([]string{"scan", "-c", cfgPath}, files...)...)
	if err != nil || !strings.Contains(out, fmt.Sprintf("resumed=%d", nServers)) || !strings.Contains(out, "probed=0") {
		t.Errorf("last run: %v %s %s", err, out, errOut)
	}
	stopDaemon(t, daemon)
}

// scanKilledAtThirdServer runs `stackprint scan` over files and SIGKILLs
// it once the third server is being probed.
func scanKilledAtThirdServer(t *testing.T, cfgPath string, files []string, servers []*countingTLS) {
	t.Helper()
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
}

// backfillServers starts n counting TLS servers of one stack on
// prefix.1 … prefix.n, in the key order the backfill judges them, and
// adds their JARM (probed on a twin at prefix.100) to the DB of cfgPath:
// every one of them matches.
func backfillServers(t *testing.T, cfgPath, prefix string, n int) []*countingTLS {
	t.Helper()
	cert := mustCert(t, "rsa")
	var servers []*countingTLS
	for i := range n {
		servers = append(servers, startCountingTLS(t, fmt.Sprintf("%s.%d", prefix, i+1), cert))
	}
	slices.SortFunc(servers, func(a, b *countingTLS) int {
		return strings.Compare(db.TargetKey(stackprint.Target{IP: a.addr.Addr(), Port: a.addr.Port()}), db.TargetKey(stackprint.Target{IP: b.addr.Addr(), Port: b.addr.Port()}))
	})
	ref := startCountingTLS(t, prefix+".100", cert)
	out, errOut, err := runBin(t, "probe", "--json", "--kinds", "jarm", ref.addr.String())
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, errOut)
	}
	jarm := between(out, `"jarm":"`, `"`)
	if _, errOut, err := runBin(t, "db", "add", "-c", cfgPath, "--kind", "jarm", "--value", jarm, "--label", "backfill-c2", "--confidence", "high"); err != nil {
		t.Fatalf("db add: %v\n%s", err, errOut)
	}
	return servers
}
