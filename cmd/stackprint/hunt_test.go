package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/hunt"
)

// TestHuntResumeAfterSIGKILL hunts a /27 of loopback TLS servers with the
// built binary, kills it with SIGKILL mid-run, resumes with the same state
// file and checks, counting connections at the servers, that every target
// has exactly one record and none was probed twice.
func TestHuntResumeAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cert := mustCert(t, "ecdsa")
	prefix := netip.MustParsePrefix("127.0.23.0/27")
	port, conns := startCountingServers(t, prefix, func(ip netip.Addr) *tls.Config {
		c := &tls.Config{Certificates: []tls.Certificate{cert}}
		if ip.As4()[3]%4 == 0 {
			c.MaxVersion = tls.VersionTLS12
		}
		return c
	})
	// One stack goes into the DB.
	ref, errOut, err := runBin(t, "probe", "--json", "--kinds", "jarm", netip.AddrPortFrom(prefix.Addr(), port).String())
	if err != nil {
		t.Fatalf("probe: %v %s", err, errOut)
	}
	var pj probeJSON
	if err := json.Unmarshal([]byte(ref), &pj); err != nil || pj.Status != "ok" {
		t.Fatalf("probe output %q: %v", ref, err)
	}
	conns[prefix.Addr()].Store(0)
	dbPath := filepath.Join(dir, "fp.db")
	if out, errOut, err := runBin(t, "db", "add", "--db", dbPath, "--kind", "jarm", "--value", pj.JARM, "--label", "lab-tls12"); err != nil {
		t.Fatalf("db add: %v %s %s", err, out, errOut)
	}
	targets := filepath.Join(dir, "targets.txt")
	if err := os.WriteFile(targets, []byte("# lab\n"+prefix.String()+"\nbad line here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	statePath, outPath := filepath.Join(dir, "hunt.state"), filepath.Join(dir, "hunt.jsonl")
	args := []string{"hunt", "--targets", targets, "--ports", strconv.Itoa(int(port)), "--allow", "127.0.0.0/8",
		"--kinds", "jarm", "--rate", "8", "--burst", "1", "--concurrency", "4", "--db", dbPath,
		"--state", statePath, "--out", outPath}

	cmd := exec.Command(binPath, args...)
	var stderr1 bytes.Buffer
	cmd.Stderr = &stderr1
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(outPath)
		if bytes.Count(b, []byte("\n")) >= 8 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no records after 30 s; stderr: %s", stderr1.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	first, _ := os.ReadFile(outPath)
	if n := bytes.Count(first, []byte("\n")); n >= 32 {
		t.Fatalf("the first run finished before the kill (%d records): slow it down", n)
	}

	_, errOut, err = runBin(t, args...)
	if err != nil {
		t.Fatalf("resumed run: %v\n%s", err, errOut)
	}
	t.Logf("resumed run: %s", errOut)
	if !bytes.Contains([]byte(errOut), []byte("hunt: resuming from")) || !bytes.Contains([]byte(errOut), []byte("bad line "+targets+":3:")) {
		t.Errorf("resumed run's stderr lacks the resume or bad-line report:\n%s", errOut)
	}
	data, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	recs := map[netip.Addr]hunt.Record{}
	for line := range bytes.Lines(data) {
		var r hunt.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		if _, dup := recs[r.IP]; dup {
			t.Errorf("two records for %s", r.IP)
		}
		recs[r.IP] = r
	}
	if len(recs) != 32 {
		t.Fatalf("%d records for 32 targets", len(recs))
	}
	interrupted := 0
	for ip, r := range recs {
		n := conns[ip].Load()
		switch r.Status {
		case stackprint.StatusOK:
			if n != 10 {
				t.Errorf("%s: %d connections for one JARM probe (10)", ip, n)
			}
			if wantMatch := ip.As4()[3]%4 == 0; (len(r.Matches) == 1 && r.Matches[0].Label == "lab-tls12") != wantMatch {
				t.Errorf("%s: matches %+v", ip, r.Matches)
			}
		case hunt.StatusInterrupted:
			interrupted++
			if n > 10 {
				t.Errorf("%s: interrupted target got %d connections", ip, n)
			}
		default:
			t.Errorf("%s: status %s (%s)", ip, r.Status, r.Error)
		}
	}
	for ip, c := range conns {
		if _, ok := recs[ip]; !ok {
			t.Errorf("no record for %s (%d connections)", ip, c.Load())
		}
	}
	if interrupted > 4 {
		t.Errorf("%d interrupted targets: more than the 4 probes in flight", interrupted)
	}
	t.Logf("%d records before the kill, %d interrupted", bytes.Count(first, []byte("\n")), interrupted)

	// Once more with the same state into another, longer file: nothing
	// is probed and that file is neither cut nor appended to.
	other := filepath.Join(dir, "other.jsonl")
	keep := bytes.Repeat([]byte("an unrelated line\n"), 2000)
	if err := os.WriteFile(other, keep, 0o644); err != nil {
		t.Fatal(err)
	}
	before := map[netip.Addr]int64{}
	for ip, c := range conns {
		before[ip] = c.Load()
	}
	args[len(args)-1] = other
	if _, errOut, err := runBin(t, args...); err != nil || !bytes.Contains([]byte(errOut), []byte("probed=0 ")) {
		t.Fatalf("third run: %v\n%s", err, errOut)
	}
	if got, _ := os.ReadFile(other); !bytes.Equal(got, keep) {
		t.Errorf("another output file was changed by a resumed run (%d bytes, had %d)", len(got), len(keep))
	}
	for ip, c := range conns {
		if c.Load() != before[ip] {
			t.Errorf("%s probed again by the third run", ip)
		}
	}
}

// startCountingServers serves Go TLS on every address of prefix, all on
// one port, and counts the connections each address accepts.
func startCountingServers(t *testing.T, prefix netip.Prefix, cfgFor func(netip.Addr) *tls.Config) (uint16, map[netip.Addr]*atomic.Int64) {
	t.Helper()
	for range 20 {
		ln0, err := net.Listen("tcp4", netip.AddrPortFrom(prefix.Addr(), 0).String())
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(ln0.Addr().(*net.TCPAddr).Port)
		lns := map[netip.Addr]net.Listener{prefix.Addr(): ln0}
		for a := prefix.Addr().Next(); prefix.Contains(a); a = a.Next() {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, port).String())
			if err != nil {
				break
			}
			lns[a] = ln
		}
		if len(lns) != 1<<(32-prefix.Bits()) {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		conns := map[netip.Addr]*atomic.Int64{}
		var wg sync.WaitGroup
		for ip, ln := range lns {
			ctr := &atomic.Int64{}
			conns[ip] = ctr
			cfg := cfgFor(ip)
			wg.Go(func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					ctr.Add(1)
					go func() {
						defer c.Close()
						// A slow server keeps probes in flight when the
						// first run is killed.
						time.Sleep(30 * time.Millisecond)
						_ = c.SetDeadline(time.Now().Add(5 * time.Second))
						_ = tls.Server(c, cfg).Handshake()
					}()
				}
			})
		}
		t.Cleanup(func() {
			for _, ln := range lns {
				ln.Close()
			}
			wg.Wait()
		})
		return port, conns
	}
	t.Fatal(fmt.Sprintf("no common free port on %s", prefix))
	return 0, nil
}
