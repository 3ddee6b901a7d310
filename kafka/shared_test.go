package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/probe"
)

// tlsServer is a TLS server on a loopback address that counts the
// connections it accepts.
type tlsServer struct {
	addr  netip.AddrPort
	conns atomic.Int64
}

func startTLSServer(t *testing.T, ip string) *tlsServer {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: ip}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{addr: netip.MustParseAddrPort(ln.Addr().String())}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					buf := make([]byte, 512)
					_, _ = tc.Read(buf)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

// Three instances asking for the same five servers at once: each server
// is probed by one instance, once; every instance gets its result.
func TestSharedProbesEachServerOnce(t *testing.T) {
	brokers := startKfake(t, 4, "reqs", "obs")
	var servers []*tlsServer
	for i := range 5 {
		servers = append(servers, startTLSServer(t, fmt.Sprintf("127.0.0.%d", 20+i)))
	}
	eng, err := probe.NewEngine(probe.EngineConfig{Kinds: []string{"jarm", "cert"}, Deadline: 20 * time.Second, IOTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cost := eng.Conns(nil)
	cfg := ClusterConfig{Brokers: brokers, RequestsTopic: "reqs", ObservationsTopic: "obs", SessionTimeout: 6 * time.Second, Wait: 60 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var shs []*Shared
	var wg sync.WaitGroup
	for i := range 3 {
		sh, err := NewShared(cfg, SharedOptions{Local: eng, Deadline: 20 * time.Second, TTL: time.Hour, NegativeTTL: time.Minute, Instance: fmt.Sprint("i", i)})
		if err != nil {
			t.Fatal(err)
		}
		shs = append(shs, sh)
		wg.Go(func() { _ = sh.Run(ctx) })
	}
	waitFor(t, "members and loaded observations", 30*time.Second, func() bool {
		for _, sh := range shs {
			if sh.Ready() != nil {
				return false
			}
		}
		return true
	})
	kinds := []string{"jarm", "cert"}
	type got struct {
		inst int
		res  stackprint.Result
	}
	results := make(chan got, 3*5*3)
	var calls sync.WaitGroup
	for i, sh := range shs {
		for _, s := range servers {
			for range 3 {
				calls.Go(func() {
					tg := stackprint.Target{IP: s.addr.Addr(), Port: s.addr.Port()}
					results <- got{i, sh.ProbeWith(ctx, tg, tg.IP.String(), stackprint.ProbeOptions{Kinds: kinds})}
				})
			}
		}
	}
	calls.Wait()
	close(results)
	jarms := map[netip.AddrPort]string{}
	for g := range results {
		if g.res.Status != stackprint.StatusOK || !g.res.HasJARM() {
			t.Fatalf("instance %d: %s: %s %s", g.inst, g.res.Target, g.res.Status, g.res.Error)
		}
		if j, ok := jarms[g.res.Target.Addr()]; ok && j != g.res.JARM {
			t.Errorf("%s: two JARMs", g.res.Target)
		}
		jarms[g.res.Target.Addr()] = g.res.JARM
	}
	var owned uint64
	for _, sh := range shs {
		owned += sh.Stats().Owned
	}
	for _, s := range servers {
		if n := s.conns.Load(); n != int64(cost) {
			t.Errorf("%s: %d connections, want one probe's %d", s.addr, n, cost)
		}
	}
	if owned != 5 {
		t.Errorf("%d probes made across the group, want 5", owned)
	}
	// A fourth instance joining later answers from the observations alone.
	sh4, err := NewShared(cfg, SharedOptions{Local: eng, Deadline: 20 * time.Second, TTL: time.Hour, NegativeTTL: time.Minute, Instance: "i3"})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = sh4.Run(ctx) })
	select {
	case <-sh4.Loaded():
	case <-time.After(30 * time.Second):
		t.Fatal("observations not loaded")
	}
	for _, s := range servers {
		tg := stackprint.Target{IP: s.addr.Addr(), Port: s.addr.Port()}
		if r := sh4.ProbeWith(ctx, tg, tg.IP.String(), stackprint.ProbeOptions{Kinds: kinds}); r.JARM != jarms[s.addr] {
			t.Errorf("late instance: %s: %s %q", tg, r.Status, r.JARM)
		}
	}
	if st := sh4.Stats(); st.Hits != 5 || st.Requests != 0 {
		t.Errorf("late instance: %+v, want 5 hits and no request", st)
	}
	for _, s := range servers {
		if n := s.conns.Load(); n != int64(cost) {
			t.Errorf("%s: %d connections after the late instance, want %d", s.addr, n, cost)
		}
	}
	cancel()
	wg.Wait()
	for _, sh := range append(shs, sh4) {
		_ = sh.Close(context.Background())
	}
}

// A request for a server outside the owner's own scope is answered
// out_of_scope and never dialled, whatever the asking instance allows.
func TestSharedOwnerKeepsItsScope(t *testing.T) {
	brokers := startKfake(t, 1, "reqs", "obs")
	s := startTLSServer(t, "127.0.0.60")
	eng, err := probe.NewEngine(probe.EngineConfig{Kinds: []string{"cert"}, IOTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	deny := func(ap netip.AddrPort) (bool, string) { return ap.Addr() != s.addr.Addr(), "denied by scope.deny" }
	sh, err := NewShared(ClusterConfig{Brokers: brokers, RequestsTopic: "reqs", ObservationsTopic: "obs", SessionTimeout: 6 * time.Second, Wait: 30 * time.Second},
		SharedOptions{Local: eng, Allowed: deny, Deadline: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sh.Run(ctx) })
	defer func() { cancel(); wg.Wait(); _ = sh.Close(context.Background()) }()
	waitFor(t, "ready", 30*time.Second, func() bool { return sh.Ready() == nil })
	tg := stackprint.Target{IP: s.addr.Addr(), Port: s.addr.Port()}
	r := sh.ProbeWith(ctx, tg, tg.IP.String(), stackprint.ProbeOptions{Kinds: []string{"cert"}})
	if r.Status != stackprint.StatusOutOfScope || !strings.Contains(r.Error, "denied by scope.deny") {
		t.Fatalf("%s %s", r.Status, r.Error)
	}
	if n := s.conns.Load(); n != 0 {
		t.Fatalf("%d connections to a denied server", n)
	}
}
