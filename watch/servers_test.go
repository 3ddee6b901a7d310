package watch_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/probe"
)

// tlsServer is a real Go TLS server (crypto/tls and net/http) on a
// loopback address that can be stopped and started again on the same
// address with another configuration, as an operator restarts a server.
type tlsServer struct {
	t    testing.TB
	addr netip.AddrPort
	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
}

func newTLSServer(t testing.TB) *tlsServer {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{t: t, addr: netip.MustParseAddrPort(ln.Addr().String())}
	ln.Close()
	t.Cleanup(s.stop)
	return s
}

// start serves cfg with a Server header; it fails the test when the port
// cannot be taken back.
func (s *tlsServer) start(cfg *tls.Config, server string) {
	s.t.Helper()
	s.stop()
	var ln net.Listener
	var err error
	for range 50 { // the port was just released: retry briefly
		if ln, err = net.Listen("tcp4", s.addr.String()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Server", server)
			w.WriteHeader(http.StatusNoContent)
		}),
		TLSConfig:         cfg,
		ErrorLog:          log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	s.mu.Lock()
	s.srv, s.done = srv, done
	s.mu.Unlock()
}

func (s *tlsServer) stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		<-done
	}
}

func (s *tlsServer) target() stackprint.Target {
	return stackprint.Target{IP: s.addr.Addr(), Port: s.addr.Port(), SNI: "watch.test"}
}

// certOf is a self-signed certificate for watch.test with key, serial and
// validity; the same key and serial again make the same issuer and key.
func certOf(t testing.TB, key crypto.Signer, serial int64, notAfter time.Time) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "watch.test", Organization: []string{"stackprint tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		DNSNames:     []string{"watch.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// engineProber probes with the real engine directly (the daemon goes
// through its scheduler instead: enrich.Pipeline.ProbeNow).
type engineProber struct{ e *probe.Engine }

func (p engineProber) ProbeNow(ctx context.Context, t stackprint.Target) (stackprint.Result, error) {
	return p.e.Probe(ctx, t, t.IP.String()), nil
}

func newEngine(t testing.TB) engineProber {
	e, err := probe.NewEngine(probe.EngineConfig{IOTimeout: 3 * time.Second, Deadline: 30 * time.Second, ConnRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	return engineProber{e}
}

func probeNow(t testing.TB, p engineProber, s *tlsServer) stackprint.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, _ := p.ProbeNow(ctx, s.target())
	return r
}
