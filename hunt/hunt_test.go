package hunt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/probe"
)

// labNet is a set of Go TLS servers on every address of a loopback /29,
// all on one port, counting the connections each accepts.
type labNet struct {
	prefix netip.Prefix
	port   uint16
	conns  map[netip.Addr]*atomic.Int64
}

func startLabNet(t *testing.T, prefix string, cfgFor func(i int) *tls.Config) *labNet {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	for attempt := 0; attempt < 20; attempt++ {
		ln0, err := net.Listen("tcp4", netip.AddrPortFrom(p.Addr(), 0).String())
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(ln0.Addr().(*net.TCPAddr).Port)
		lns := []net.Listener{ln0}
		ok := true
		for a := p.Addr().Next(); p.Contains(a); a = a.Next() {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, port).String())
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		if !ok {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		n := &labNet{prefix: p, port: port, conns: map[netip.Addr]*atomic.Int64{}}
		var wg sync.WaitGroup
		for i, ln := range lns {
			ip := netip.MustParseAddrPort(ln.Addr().String()).Addr()
			ctr := &atomic.Int64{}
			n.conns[ip] = ctr
			cfg := cfgFor(i)
			wg.Go(func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					ctr.Add(1)
					go func() {
						defer c.Close()
						_ = c.SetDeadline(time.Now().Add(5 * time.Second))
						tc := tls.Server(c, cfg)
						if tc.Handshake() == nil {
							if line, err := bufio.NewReader(tc).ReadString('\n'); err == nil && strings.HasPrefix(line, "GET ") {
								fmt.Fprint(tc, "HTTP/1.1 204 No Content\r\nServer: hunt-test\r\nConnection: close\r\n\r\n")
							}
						}
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
		return n
	}
	t.Fatal("no common free port on the lab addresses")
	return nil
}

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hunt.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func testEngine(t *testing.T, kinds ...string) *probe.Engine {
	t.Helper()
	e, err := probe.NewEngine(probe.EngineConfig{Kinds: kinds, ConnRate: -1, IOTimeout: 3 * time.Second, Deadline: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func decodeRecords(t *testing.T, b []byte) []Record {
	t.Helper()
	var out []Record
	for line := range bytes.Lines(b) {
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// TestRunLoopbackCIDR hunts a /29 of real TLS servers: the default scope
// refuses loopback; opened for it, every address gets one record, the
// servers with the listed stack match the DB, and each server saw exactly
// one probe's connections.
func TestRunLoopbackCIDR(t *testing.T) {
	cert := testCert(t)
	lab := startLabNet(t, "127.0.21.0/29", func(i int) *tls.Config {
		c := &tls.Config{Certificates: []tls.Certificate{cert}}
		if i%2 == 1 {
			c.MaxVersion = tls.VersionTLS12 // another stack, another JARM
		}
		return c
	})
	eng := testEngine(t, stackprint.KindJARM)
	input := "# lab\n" + lab.prefix.String() + "\n127.0.21.3\nnonsense!\n"

	// Default scope: public unicast only.
	var out bytes.Buffer
	enc, _ := NewEncoder(FormatJSONL)
	sum, err := Run(context.Background(), Config{Prober: eng, Scope: enrich.NewScope(nil, nil, nil), Ports: []uint16{lab.port},
		Encoder: enc, Out: Output{W: &out, Size: -1}, Rate: 0}, []Source{{Name: "lab.txt", R: strings.NewReader(input)}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.OutOfScope != 8 || sum.Probed != 0 || out.Len() != 0 || sum.Duplicates != 1 || sum.BadLines != 1 || sum.Bad[0].String() != `lab.txt:4: not an address, CIDR, HOST:PORT or host name: "nonsense!"` {
		t.Fatalf("default scope: %+v, output %q", sum, out.String())
	}
	for ip, c := range lab.conns {
		if c.Load() != 0 {
			t.Fatalf("out-of-scope %s got %d connections", ip, c.Load())
		}
	}

	// The JARM of the TLS 1.2 servers goes into the DB.
	ref := eng.Probe(context.Background(), stackprint.Target{IP: netip.MustParseAddr("127.0.21.1"), Port: lab.port}, "127.0.21.1")
	if !ref.HasJARM() {
		t.Fatalf("reference probe: %+v", ref)
	}
	lab.conns[netip.MustParseAddr("127.0.21.1")].Store(0)
	fdb, err := db.Open(filepath.Join(t.TempDir(), "fp.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	if err := fdb.Add(db.Record{Kind: db.KindJARM, Value: ref.JARM, Label: "tls12-lab", Source: "test", Confidence: "high"}); err != nil {
		t.Fatal(err)
	}
	ix := fdb

	out.Reset()
	enc, _ = NewEncoder(FormatJSONL)
	scope := enrich.NewScope([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil, nil)
	sum, err = Run(context.Background(), Config{Prober: eng, Scope: scope, Matcher: ix, Ports: []uint16{lab.port},
		Encoder: enc, Out: Output{W: &out, Size: -1}, Rate: 50, Burst: 4, Concurrency: 4},
		[]Source{{Name: "lab.txt", R: strings.NewReader(input)}})
	if err != nil {
		t.Fatal(err)
	}
	recs := decodeRecords(t, out.Bytes())
	if len(recs) != 8 || sum.Probed != 8 || sum.Matched != 4 {
		t.Fatalf("summary %+v, %d records", sum, len(recs))
	}
	seen := map[netip.Addr]bool{}
	for _, r := range recs {
		if seen[r.IP] {
			t.Errorf("two records for %s", r.IP)
		}
		seen[r.IP] = true
		last := r.IP.As4()[3]
		wantMatch := last%2 == 1
		if r.Status != stackprint.StatusOK || r.JARM == "" || r.JARMSNI != r.IP.String() || (len(r.Matches) == 1) != wantMatch {
			t.Errorf("record %+v", r)
		}
		if wantMatch && r.Matches[0].Label != "tls12-lab" {
			t.Errorf("match %+v", r.Matches[0])
		}
		if r.Source == "" {
			t.Errorf("record without source: %+v", r)
		}
	}
	for ip, c := range lab.conns {
		if c.Load() != 10 {
			t.Errorf("%s: %d connections, want one JARM probe's 10", ip, c.Load())
		}
	}
}

// TestRunResumeFromState: a finished target is skipped, an interrupted
// one is reported and not probed, the rest are probed; the state ends up
// with one D line per target.
func TestRunResumeFromState(t *testing.T) {
	cert := testCert(t)
	lab := startLabNet(t, "127.0.22.0/30", func(int) *tls.Config { return &tls.Config{Certificates: []tls.Certificate{cert}} })
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state")
	key := func(last byte) string {
		return Key(stackprint.Target{IP: netip.AddrFrom4([4]byte{127, 0, 22, last}), Port: lab.port})
	}
	prev := stateMagic + "\nO /runs/out.jsonl\nS " + key(0) + "\nD 10 " + key(0) + "\nS " + key(1) + "\nS " + key(2)[:5] // torn last line
	if err := os.WriteFile(statePath, []byte(prev), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := OpenState(statePath)
	if err != nil {
		t.Fatal(err)
	}
	if fin, intr := st.Counts(); fin != 1 || intr != 1 || st.OutputSize("/runs/out.jsonl") != 10 || st.OutputSize("/runs/other.jsonl") != -1 {
		t.Fatalf("loaded %d finished, %d interrupted, size %d", fin, intr, st.OutputSize("/runs/out.jsonl"))
	}
	var out bytes.Buffer
	enc, _ := NewEncoder(FormatJSONL)
	scope := enrich.NewScope([]netip.Prefix{netip.MustParsePrefix("127.0.22.0/24")}, nil, nil)
	sum, err := Run(context.Background(), Config{Prober: testEngine(t, stackprint.KindJARM), Scope: scope, Ports: []uint16{lab.port},
		Encoder: enc, Out: Output{W: &out, Size: -1}, State: st}, []Source{{Name: "l", R: strings.NewReader(lab.prefix.String())}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if sum.Resumed != 1 || sum.Interrupted != 1 || sum.Probed != 2 {
		t.Fatalf("summary %+v", sum)
	}
	recs := decodeRecords(t, out.Bytes())
	status := map[byte]stackprint.Status{}
	for _, r := range recs {
		status[r.IP.As4()[3]] = r.Status
	}
	if len(recs) != 3 || status[1] != StatusInterrupted || status[2] != stackprint.StatusOK || status[3] != stackprint.StatusOK {
		t.Fatalf("records %+v", recs)
	}
	for ip, c := range lab.conns {
		want := int64(10)
		if last := ip.As4()[3]; last < 2 {
			want = 0
		}
		if c.Load() != want {
			t.Errorf("%s: %d connections, want %d", ip, c.Load(), want)
		}
	}
	data, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	d := strings.Count(string(data), "\nD ")
	if d != 4 || strings.Contains(string(data), key(2)[:5]+"\n") {
		t.Errorf("state after the run:\n%s", data)
	}
}

// TestRunNearATSF: a DB entry whose ATSF differs from a server's in one
// ClientHello answer is reported on that server's record as a near match
// naming the ClientHello (db.DB.Match), not as an exact
// one.
func TestRunNearATSF(t *testing.T) {
	cert := testCert(t)
	lab := startLabNet(t, "127.0.24.0/31", func(int) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
	})
	eng := testEngine(t, stackprint.KindATSF)
	ref := eng.Probe(context.Background(), stackprint.Target{IP: lab.prefix.Addr(), Port: lab.port}, "")
	hellos, ok := db.HellosOf(ref.ATSF)
	if !ok || !ref.HasATSF() {
		t.Fatalf("reference probe: %+v", ref)
	}
	hellos[3] = "771_c02f_65281.-11.AwABAg____" // another answer to the fourth ClientHello
	fdb, err := db.Open(filepath.Join(t.TempDir(), "fp.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	if err := fdb.Add(db.Record{Kind: db.KindATSF, Value: db.ATSFID(hellos), Hellos: hellos, Label: "near-lab", Source: "test", Confidence: "high"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	enc, _ := NewEncoder(FormatJSONL)
	scope := enrich.NewScope([]netip.Prefix{netip.MustParsePrefix("127.0.24.0/24")}, nil, nil)
	sum, err := Run(context.Background(), Config{Prober: eng, Scope: scope, Matcher: fdb, Ports: []uint16{lab.port},
		Encoder: enc, Out: Output{W: &out, Size: -1}}, []Source{{Name: "l", R: strings.NewReader(lab.prefix.String())}})
	if err != nil {
		t.Fatal(err)
	}
	recs := decodeRecords(t, out.Bytes())
	if len(recs) != 2 || sum.Matched != 0 || sum.NearMatched != 2 {
		t.Fatalf("summary %+v, records %+v", sum, recs)
	}
	name := ref.ATSF.Hellos[3].Name
	for _, r := range recs {
		if len(r.Matches) != 1 || r.Matches[0].Near == nil || r.Matches[0].Near.Agree != 9 || r.Matches[0].Label != "near-lab" ||
			len(r.Matches[0].Near.Differs) != 1 || r.Matches[0].Near.Differs[0] != name {
			t.Errorf("%s: matches %+v", r.IP, r.Matches)
		}
	}
}
