package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint/internal/lab"
)

// loadCounter records, at the servers, when each target's first
// connection arrived and every accept per destination IP.
type loadCounter struct {
	mu      sync.Mutex
	first   map[string]time.Time // ip/sni → first ClientHello
	accepts map[string][]time.Time
}

func (c *loadCounter) hello(ip, sni string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := ip + "/" + sni
	if _, ok := c.first[k]; !ok {
		c.first[k] = time.Now()
	}
}

func (c *loadCounter) accept(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.accepts[ip] = append(c.accepts[ip], time.Now())
}

// maxInWindow is the largest number of times within any window.
func maxInWindow(ts []time.Time, window time.Duration) int {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= window {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// startCountingServer is a TLS server that reports ClientHellos and accepts.
func startCountingServer(t *testing.T, ip string, cert tls.Certificate, c *loadCounter) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			c.hello(ip, h.ServerName)
			return nil, nil
		},
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accept(ip)
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
				_ = tls.Server(conn, cfg).Handshake()
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// startTarpit accepts and never answers.
func startTarpit(t *testing.T, ip string, c *loadCounter) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accept(ip)
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestLoadLimitsHold feeds 200,000 ssl.log lines naming 20,000 distinct
// loopback targets (100 servers × 200 SNIs, 2 % of servers tarpits) at
// about 50,000 lines/s to the built daemon and checks, at the servers and in
// the daemon's metrics: the global connection budget and the per-IP rate
// hold, events beyond the memory bound wait on disk, every line is either
// judged or parked for the next start, memory stays bounded, shutdown is
// clean.
func TestLoadLimitsHold(t *testing.T) {
	const (
		servers, snis = 100, 200
		lines         = 200_000
		linesPerSec   = 50_000
		probeRate     = 40
		burst         = 10
		queueSize     = 500
	)
	dir := t.TempDir()
	counter := &loadCounter{first: map[string]time.Time{}, accepts: map[string][]time.Time{}}
	cert := mustCert(t, "ecdsa")
	var addrs []netip.AddrPort
	for i := range servers {
		ip := fmt.Sprintf("127.0.1.%d", i+1)
		if i%50 == 49 { // 2 of 100
			addrs = append(addrs, startTarpit(t, ip, counter))
		} else {
			addrs = append(addrs, startCountingServer(t, ip, cert, counter))
		}
	}
	sslLog := filepath.Join(dir, "ssl.log")
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	p := flatLab(dir)
	p.SSL = sslLog
	cfg := configText(t, p,
		"allow: []", "allow: [127.0.0.0/8]",
		"queue_size: 10000", fmt.Sprintf("queue_size: %d", queueSize),
		"probes_per_second: 5", fmt.Sprintf("probes_per_second: %d", probeRate),
		"burst: 5", fmt.Sprintf("burst: %d", burst),
		"io_timeout: 5s", "io_timeout: 500ms",
		"deadline: 15s", "deadline: 2s",
		"jarm_sni: ip", "jarm_sni: observed",
		"shutdown_timeout: 10s", "shutdown_timeout: 1s")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// As the shipped unit does (Environment=GOMEMLIMIT): the spill path
	// makes garbage at the ingest rate, and without a soft limit the Go
	// heap grows to twice the live data between collections.
	daemon, stderr := startDaemon(t, cfgPath, "GOMEMLIMIT=120MiB")
	re := regexp.MustCompile(`metrics and health listening" addr=(\S+)`)
	var metricsAddr string
	waitFor(t, "metrics listener", 10*time.Second, func() bool {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			metricsAddr = m[1]
		}
		return metricsAddr != ""
	})
	scrape := func() map[string]float64 {
		m := scrapeMetrics(metricsAddr)
		if len(m) == 0 {
			t.Fatalf("scrape %s: no metrics", metricsAddr)
		}
		return m
	}

	// Feed at ~50,000 lines/s in 10 ms slices.
	f, err := os.Create(sslLog)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tssl\n#open\t2026-11-27-08-00-00\n#fields\t%s\n#types\t%s\n", lab.ZeekSSLFields, lab.ZeekSSLTypes)
	var maxMem float64
	start := time.Now()
	perSlice := linesPerSec / 100
	for n := 0; n < lines; {
		for range perSlice {
			a := addrs[n%servers]
			sni := fmt.Sprintf("s%d.load.test", (n/servers)%snis)
			fmt.Fprintf(w, "1764230400.%06d\tCload%07d\t127.0.0.1\t%d\t%s\t%d\tTLSv13\tTLS_AES_128_GCM_SHA256\tx25519\t%s\tF\t-\t-\tT\tCsiI\t-\t-\t-\n",
				n%1000000, n, 10000+n%50000, a.Addr(), a.Port(), sni)
			n++
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if next := start.Add(time.Duration(n) * time.Second / linesPerSec); time.Until(next) > 0 {
			time.Sleep(time.Until(next))
		}
		if n%10000 == 0 {
			maxMem = max(maxMem, scrape()[`stackprint_events_waiting{where="memory"}`])
		}
	}
	f.Close()
	feedSecs := time.Since(start).Seconds()

	// Wait until every line has been read and judged.
	var m map[string]float64
	waitFor(t, "all lines read", 60*time.Second, func() bool {
		m = scrape()
		maxMem = max(maxMem, m[`stackprint_events_waiting{where="memory"}`])
		return m[`stackprint_lines_read_total{input="zeek-ssl"}`] >= lines+8
	})
	time.Sleep(3 * time.Second) // let the scheduler run at its rate for a while
	m = scrape()
	maxMem = max(maxMem, m[`stackprint_events_waiting{where="memory"}`])
	rss := vmHWM(t, daemon.Process.Pid)

	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); _ = daemon.Process.Kill() }()
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon did not shut down cleanly: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("shutdown took more than 20s")
	}

	// Every line is judged (an outcome) or parked in the DB for the next
	// start: nothing dropped.
	settled := regexp.MustCompile(`msg="stackprint stopped" .*settled=(\d+)`).FindStringSubmatch(stderr.String())
	if settled == nil {
		t.Fatal("no settled count in the stop line")
	}
	nSettled, _ := strconv.Atoi(settled[1])
	var st struct {
		Pending int `json:"pending_events"`
	}
	out, err := exec.Command(binPath, "db", "stats", "--json", "-c", cfgPath).Output()
	if err != nil {
		t.Fatalf("db stats: %v", err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("db stats output %q: %v", out, err)
	}
	var outcomes float64
	for _, o := range []string{"deduped", "probed", "out_of_scope", "invalid", "expired"} {
		outcomes += m[fmt.Sprintf(`stackprint_events_total{outcome=%q}`, o)]
	}
	counter.mu.Lock()
	var all []time.Time
	maxPerIP := 0
	for _, ts := range counter.accepts {
		all = append(all, ts...)
		maxPerIP = max(maxPerIP, maxInWindow(ts, time.Second))
	}
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	maxConns := maxInWindow(all, time.Second)
	counter.mu.Unlock()
	t.Logf("fed %d lines in %.1fs (%.0f lines/s); judged %.0f before the stop, %d at the stop, %d parked for the next start; server probes %.0f; events in memory at most %.0f (queue_size %d), on disk %.0f; max conns in any 1s %d (budget (%d+%d)×21); max conns/s to one IP %d; peak RSS %d MB",
		lines, feedSecs, lines/feedSecs, outcomes, nSettled, st.Pending, m[`stackprint_probes_started_total{level="server"}`],
		maxMem, queueSize, m[`stackprint_events_waiting{where="disk"}`], maxConns, probeRate, burst, maxPerIP, rss>>20)

	if nSettled+st.Pending != lines {
		t.Errorf("%d judged + %d parked = %d, want %d (every line accounted for)", nSettled, st.Pending, nSettled+st.Pending, lines)
	}
	if maxMem > 2*queueSize {
		t.Errorf("%.0f events waiting in memory > 2 × queue_size %d", maxMem, queueSize)
	}
	if m[`stackprint_events_waiting{where="disk"}`] == 0 {
		t.Errorf("no event waited on disk: the load did not test the memory bound")
	}
	// The global budget is kept in connections: in any second the
	// scheduler hands out at most (burst + probes_per_second) full
	// fingerprints of 21 connections. Tokens are taken when a probe starts
	// or answers, and its connections reach the servers over the probe's
	// duration (under 0.5s here, the io_timeout of this config), so a
	// second counted at the servers may also hold connections paid in the
	// half second before it: burst + rate × 1.5 s.
	if limit := (burst + probeRate*3/2) * 21; maxConns > limit {
		t.Errorf("%d connections within one second, budget %d", maxConns, limit)
	}
	// The scheduler takes a whole probe's connections from the IP's bucket
	// (probe.conns_per_ip_per_second 20, burst 22 by default).
	if maxPerIP > 20+22 {
		t.Errorf("%d connections within one second to one IP, limit 20/s + burst 22", maxPerIP)
	}
	if rss > 200<<20 {
		t.Errorf("peak RSS %d MB > 200 MB", rss>>20)
	}
}

// vmHWM reads a process's peak resident set size.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
