package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/learn"
	"github.com/stackprint/stackprint/probe"
)

// labResolver maps the lab's host names to loopback addresses.
type labResolver map[string]netip.Addr

func (r labResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// countingProber records every target it probes.
type countingProber struct {
	p     learn.Prober
	mu    sync.Mutex
	seen  map[string]int
	total int
}

func (c *countingProber) Probe(ctx context.Context, t stackprint.Target, sni string) stackprint.Result {
	c.mu.Lock()
	c.seen[t.String()]++
	c.total++
	c.mu.Unlock()
	return c.p.Probe(ctx, t, sni)
}

// startTLSAt serves TLS with cfg on ip:port (port 0 = any).
func startTLSAt(t *testing.T, ip string, port uint16, cfg *tls.Config) netip.AddrPort {
	t.Helper()
	ln, err := tls.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if tc := c.(*tls.Conn); tc.Handshake() == nil {
					_, _ = tc.Write([]byte("HTTP/1.1 200 OK\r\nServer: lab\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestLearnLoopbackLab builds a lab where the block-listed servers share
// stacks and the top-list servers others, learns through the real probe
// engine, is interrupted, resumes without probing a finished target again,
// and checks the learned scores B/(B+T).
//
//	stack X (Go, TLS 1.2 only, RSA):      block .1 .2 .3, top .13      → B3 T1 = 0.75
//	stack Y (Go default, ECDSA, ALPN h2): block .4,       top .10-.12  → B1 T3 = 0.25
//	stack Z (Go default, RSA, P-256):     block .5 .6                  → B2 T0 = 1.00
func TestLearnLoopbackLab(t *testing.T) {
	stackX := &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}, MaxVersion: tls.VersionTLS12}
	stackY := &tls.Config{Certificates: []tls.Certificate{mustCert(t, "ecdsa")}, NextProtos: []string{"h2", "http/1.1"}}
	stackZ := &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}}
	var block strings.Builder
	block.WriteString("\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n")
	for i, cfg := range []*tls.Config{stackX, stackX, stackX, stackY, stackZ, stackZ} {
		ap := startTLSAt(t, fmt.Sprintf("127.0.5.%d", i+1), 0, cfg)
		fam := "LabBot"
		if cfg == stackZ {
			fam = "ZBot"
		}
		fmt.Fprintf(&block, "\"2026-01-01 00:00:00\",\"%s\",\"%d\",\"online\",\"2026-11-01\",\"%s\"\n", ap.Addr(), ap.Port(), fam)
	}
	// The top list is Tranco (rank,domain) on one port for every site.
	first := startTLSAt(t, "127.0.5.10", 0, stackY)
	port := first.Port()
	res := labResolver{"top1.lab": first.Addr()}
	var top strings.Builder
	top.WriteString("1,top1.lab\n")
	for i, cfg := range []*tls.Config{stackY, stackY, stackX} {
		ap := startTLSAt(t, fmt.Sprintf("127.0.5.%d", 11+i), port, cfg)
		name := fmt.Sprintf("top%d.lab", i+2)
		res[name] = ap.Addr()
		fmt.Fprintf(&top, "%d,%s\n", i+2, name)
	}
	top.WriteString("5,gone.lab\n") // does not resolve: recorded, not counted

	blockEntries, _, bf, err := db.ParseTargetList([]byte(block.String()), 443)
	if err != nil || bf != db.ListFeodo || len(blockEntries) != 6 {
		t.Fatal(bf, err, blockEntries)
	}
	topEntries, _, tf, err := db.ParseTargetList([]byte(top.String()), port)
	if err != nil || tf != db.ListTranco || len(topEntries) != 5 {
		t.Fatal(tf, err, topEntries)
	}
	var jobs []learn.Job
	for _, e := range blockEntries {
		jobs = append(jobs, learn.Job{Role: db.RoleBlock, Entry: e})
	}
	for _, e := range topEntries {
		jobs = append(jobs, learn.Job{Role: db.RoleTop, Entry: e})
	}

	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Scope.Allow = []string{"127.0.0.0/8"}
	cfg.Scheduler.ProbesPerSecond, cfg.Scheduler.Burst, cfg.Scheduler.MaxInFlight = 100, 20, 3
	cfg.Probe.IOTimeout, cfg.Probe.Deadline = 3*time.Second, 15*time.Second
	engine, err := probe.NewEngine(probe.EngineConfig{IOTimeout: cfg.Probe.IOTimeout, Deadline: cfg.Probe.Deadline, ConnRate: 1000, ConnBurst: 100})
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(filepath.Join(t.TempDir(), "learn.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st := admin.NewLocal(d, false)

	// First run: interrupted after 4 recorded entries.
	cp1 := &countingProber{p: engine, seen: map[string]int{}}
	l := newLearner(cfg, st, cp1, res)
	ctx, cancel := context.WithCancel(context.Background())
	var nmu sync.Mutex
	finished := map[string]bool{} // targets of entries the first run recorded
	l.OnRecord = func(lr db.LearnResult) {
		nmu.Lock()
		defer nmu.Unlock()
		if lr.Target.IP.IsValid() {
			finished[lr.Target.String()] = true
		}
		if len(finished) == 4 {
			cancel()
		}
	}
	sum1, err := l.Run(ctx, jobs)
	if !errors.Is(err, context.Canceled) || sum1.Recorded < 4 || sum1.Recorded >= len(jobs) {
		t.Fatalf("interrupted run: %+v %v", sum1, err)
	}
	done := 0
	for _, role := range []string{db.RoleBlock, db.RoleTop} {
		f, err := d.LearnFinished(role)
		if err != nil {
			t.Fatal(err)
		}
		done += len(f)
	}
	if done != sum1.Recorded {
		t.Fatalf("%d entries finished in the DB, %d recorded", done, sum1.Recorded)
	}

	// Second run: only the unfinished entries, each probed once.
	var rest []learn.Job
	for _, role := range []string{db.RoleBlock, db.RoleTop} {
		f, _ := d.LearnFinished(role)
		for _, j := range jobs {
			if j.Role == role && !f[j.Entry.Key] {
				rest = append(rest, j)
			}
		}
	}
	cp2 := &countingProber{p: engine, seen: map[string]int{}}
	l2 := newLearner(cfg, st, cp2, res)
	sum2, err := l2.Run(context.Background(), rest)
	if err != nil || sum1.Recorded+sum2.Recorded != len(jobs) {
		t.Fatalf("resumed run: %+v %v (first %+v)", sum2, err, sum1)
	}
	for target, k := range cp2.seen {
		if k != 1 || finished[target] {
			t.Errorf("target %s probed %d times in the second run (finished in the first: %v)", target, k, finished[target])
		}
	}
	if sum1.Unresolved+sum2.Unresolved != 1 || sum1.OK+sum2.OK != 10 {
		t.Errorf("outcomes: %+v %+v", sum1, sum2)
	}

	// Scores per JARM.
	jarm := func(c *tls.Config) string {
		ap := startTLSAt(t, "127.0.5.30", 0, c)
		r := engine.Probe(context.Background(), stackprint.Target{IP: ap.Addr(), Port: ap.Port()}, ap.Addr().String())
		if !r.HasJARM() {
			t.Fatalf("no JARM: %+v", r)
		}
		return r.JARM
	}
	jx, jy, jz := jarm(stackX), jarm(stackY), jarm(stackZ)
	if jx == jy || jy == jz || jx == jz {
		t.Fatalf("lab stacks share a JARM: %s %s %s", jx, jy, jz)
	}
	scores, err := d.LearnScores()
	if err != nil {
		t.Fatal(err)
	}
	byJARM := map[string]db.LearnStats{}
	for _, s := range scores {
		if s.Kind == db.KindJARM {
			byJARM[s.Value] = s
		}
	}
	for _, w := range []struct {
		name       string
		jarm       string
		block, top uint64
		score      float64
	}{{"X", jx, 3, 1, 0.75}, {"Y", jy, 1, 3, 0.25}, {"Z", jz, 2, 0, 1}} {
		s := byJARM[w.jarm]
		if s.Block != w.block || s.Top != w.top || s.Score() != w.score {
			t.Errorf("stack %s (%s): B=%d T=%d score %.2f, want B=%d T=%d score %.2f", w.name, w.jarm, s.Block, s.Top, s.Score(), w.block, w.top, w.score)
		}
	}
	if byJARM[jz].Hints["ZBot"] != 2 {
		t.Errorf("stack Z hints = %v", byJARM[jz].Hints)
	}
	if len(byJARM) != 3 {
		t.Errorf("JARMs learned: %+v", byJARM)
	}
	// ATSF ids and certificates are counted too: each stack shares one.
	kinds := map[string]int{}
	for _, s := range scores {
		kinds[s.Kind]++
	}
	if kinds[db.KindATSF] == 0 || kinds[db.KindCertSHA256] != 3 || kinds[db.KindCertSHA1] != 3 {
		t.Errorf("kinds learned: %v", kinds)
	}

	// Promote at 1.0 with at least 2 block-listed targets: stack Z's JARM
	// (Go's default RSA stack, docs/JARM.md row C: kept low), never X's or Y's.
	// (X's ATSF may qualify: ATSF differs with and without SNI, and X's top
	// server was probed by name.)
	recs, _, err := st.Promote(context.Background(), db.PromoteOptions{Label: "lab-c2", Threshold: 1, MinBlock: 2, Confidence: "medium", Source: "learn-test"})
	if err != nil {
		t.Fatal(err)
	}
	var gotZ bool
	for _, r := range recs {
		if s, _ := r.Score(); s != 1 || r.BlockCount < 2 || r.TopCount != 0 || r.Label != "lab-c2" {
			t.Errorf("promoted %+v", r)
		}
		if r.Kind == db.KindJARM && r.Value != jz {
			t.Errorf("promoted a JARM other than Z's: %+v", r)
		}
		if r.Kind == db.KindJARM && r.Value == jz {
			gotZ = true
			if r.Confidence != "low" || !strings.Contains(r.Notes, "default stack") || !strings.Contains(r.Notes, "ZBot (2)") {
				t.Errorf("promoted Z = %+v", r)
			}
		}
	}
	if !gotZ {
		t.Errorf("stack Z's JARM not promoted: %+v", recs)
	}
}

// TestDBLearnCommand runs `stackprint db learn` from the binary: once on the
// file, then again while the daemon runs (through its socket), which
// resumes instead of probing again and promotes through the daemon.
func TestDBLearnCommand(t *testing.T) {
	dir := t.TempDir()
	stack := &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}, MaxVersion: tls.VersionTLS12}
	benign := &tls.Config{Certificates: []tls.Certificate{mustCert(t, "ecdsa")}}
	var block, top strings.Builder
	block.WriteString("# lab block list\n")
	for i := range 3 {
		fmt.Fprintf(&block, "%s\n", startTLSAt(t, fmt.Sprintf("127.0.5.%d", 40+i), 0, stack))
	}
	for i := range 2 {
		fmt.Fprintf(&top, "%s\n", startTLSAt(t, fmt.Sprintf("127.0.5.%d", 50+i), 0, benign))
	}
	fmt.Fprintf(&top, "10.1.2.3:443\n") // private: out of scope, never probed
	blockPath, topPath := filepath.Join(dir, "block.txt"), filepath.Join(dir, "top.txt")
	if err := os.WriteFile(blockPath, []byte(block.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(topPath, []byte(top.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath, _, _ := labConfig(t, dir, "allow: []", "allow: [127.0.0.0/8]", "probes_per_second: 5", "probes_per_second: 50")

	out, errOut, err := runBin(t, "db", "learn", "-c", cfgPath, "--blocklist", blockPath, "--toplist", topPath)
	if err != nil {
		t.Fatalf("learn: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(out, "probed 6 of 6 entries: 5 ok, 0 failed, 1 out of scope") || !strings.Contains(out, "1.00") || !strings.Contains(errOut, "learning") {
		t.Fatalf("learn output:\n%s\nstderr:\n%s", out, errOut)
	}

	cmd, _ := startDaemon(t, cfgPath)
	waitFor(t, "the admin socket", 10*time.Second, func() bool { _, err := os.Lstat(filepath.Join(dir, "admin.sock")); return err == nil })
	out, errOut, err = runBin(t, "db", "learn", "-c", cfgPath, "--blocklist", blockPath, "--toplist", topPath, "--label", "lab-c2", "--min-block", "3", "--no-progress")
	if err != nil {
		t.Fatalf("learn via daemon: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "resuming: 6 entries finished by an earlier run") || !strings.Contains(out, "probed 0 of 0 entries") ||
		!strings.Contains(out, `as "lab-c2" (B=3 T=0 score 1.00`) || !strings.Contains(out, "via the running daemon") || !strings.Contains(out, "retro-hunt:") {
		t.Fatalf("learn via daemon output:\n%s\nstderr:\n%s", out, errOut)
	}
	out, _, err = runBin(t, "db", "list", "-c", cfgPath, "--kind", "jarm")
	if err != nil || !strings.Contains(out, "lab-c2") || !strings.Contains(out, "3/0") || !strings.Contains(out, "1.00") {
		t.Fatalf("list after learn: %v\n%s", err, out)
	}
	stopDaemon(t, cmd)

	// --restart forgets progress and counts: everything is probed again.
	out, errOut, err = runBin(t, "db", "learn", "-c", cfgPath, "--blocklist", blockPath, "--toplist", topPath, "--restart", "--no-progress")
	if err != nil || !strings.Contains(out, "probed 6 of 6 entries") || strings.Contains(errOut, "resuming") {
		t.Fatalf("restart: %v\n%s\n%s", err, out, errOut)
	}
}
