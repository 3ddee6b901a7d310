package probe

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// TestEngineLive probes real servers with every kind: the Go reference
// server and openssl s_server -www (which ignores HEAD but answers GET).
func TestEngineLive(t *testing.T) {
	want := readLocalFingerprints(t)
	certDir := t.TempDir()
	opensslCerts(t, certDir)
	d := &recordingDialer{}
	e, err := NewEngine(EngineConfig{Dialer: d, IOTimeout: 5 * time.Second, Deadline: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("go", func(t *testing.T) {
		ap := startGoReferenceServer(t, "127.0.1.50")
		target := stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: "example.test"}
		res := e.Probe(testCtx(t), target, ap.Addr().String())
		checkEngineInvariants(t, res, 4)
		if res.Status != stackprint.StatusOK || res.Error != "" || res.Conns != 21 {
			t.Fatalf("status %s conns %d error %q", res.Status, res.Conns, res.Error)
		}
		jr := NewJARM(JARMConfig{}).Probe(testCtx(t), target, ap.Addr().String())
		if res.JARM != jr.JARM || res.JARMRaw != jr.JARMRaw || !res.HasJARM() {
			t.Errorf("engine JARM %s differs from the JARM prober's %s", res.JARM, jr.JARM)
		}
		if !res.HasATSF() || res.ATSF.Fingerprint != want["go-crypto-tls"].combined {
			t.Errorf("ATSF %q", res.ATSF.Fingerprint)
		}
		c := res.Cert
		if c == nil || c.KeyType != "ECDSA" || c.KeyBits != 256 || !c.SelfSigned || !slices.Equal(c.SANs, []string{"example.test"}) ||
			c.Subject != "CN=example.test" || c.ChainLen != 1 || len(c.SHA1) != 40 || c.Serial != "07" {
			t.Errorf("cert facts %+v", c)
		}
		if res.HTTP == nil || res.HTTP.Server != "helper-go/1.26" || res.HTTP.StatusCode != 204 {
			t.Errorf("http facts %+v", res.HTTP)
		}
		wantKinds := []string{"jarm:ok:10", "cert:ok:1", "http:ok:0", "atsf:ok:10"}
		var got []string
		for _, k := range res.Kinds {
			got = append(got, k.Kind+":"+string(k.Status)+":"+itoaT(k.Conns))
		}
		if !slices.Equal(got, wantKinds) {
			t.Errorf("kinds %v, want %v", got, wantKinds)
		}
		// JARM got the IP literal; ATSF and the certificate connection the
		// observed SNI.
		if len(d.writes) == 0 {
			t.Fatal("nothing written")
		}
		for i, a := range d.addrs {
			if a != ap.String() || d.networks[i] != "tcp4" {
				t.Fatalf("dial %d went to %s %s", i, d.networks[i], a)
			}
		}
	})

	t.Run("openssl s_server -www", func(t *testing.T) {
		ap := startOpenSSL(t, "127.0.1.51", certDir, "rsa.crt", "rsa.key")
		// A long HTTP wait: the answer must come from the server, not
		// from a deadline.
		e, _ := NewEngine(EngineConfig{IOTimeout: 20 * time.Second, HTTPWait: 20 * time.Second, Deadline: 60 * time.Second})
		res := e.Probe(testCtx(t), stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: "example.test"}, "")
		checkEngineInvariants(t, res, 4)
		for _, k := range res.Kinds {
			t.Logf("%s: %s %q %v", k.Kind, k.Status, k.Error, k.Duration)
		}
		if res.HTTP == nil || res.HTTP.StatusCode != 200 || res.Kinds[2].Status != stackprint.StatusOK {
			t.Errorf("s_server -www answers GET /: http %+v kinds %+v", res.HTTP, res.Kinds)
		}
		if d := res.Kinds[1].Duration; d > 10*time.Second {
			t.Errorf("cert+http took %v: the GET answer was not read as it came", d)
		}
		if res.Status != stackprint.StatusOK || res.Cert == nil || res.Cert.KeyType != "RSA" || res.Cert.KeyBits != 2048 || res.Cert.Subject != "CN=localhost" {
			t.Errorf("status %s cert %+v error %q", res.Status, res.Cert, res.Error)
		}
		if res.ATSF.Fingerprint != want["openssl3-default"].combined {
			t.Errorf("ATSF %q", res.ATSF.Fingerprint)
		}
	})

	t.Run("certificate crypto/x509 refuses", func(t *testing.T) {
		// The server presents bytes that are no certificate; crypto/tls
		// aborts, but the TLS 1.3 Certificate message was decrypted from
		// the records, so the hashes exist.
		good := goCert(t, true)
		bogus := []byte("this is not DER at all")
		ap := startGoTLS(t, "127.0.1.52", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{bogus}, PrivateKey: good.PrivateKey}}})
		e, _ := NewEngine(EngineConfig{Kinds: []string{"cert"}, IOTimeout: 2 * time.Second})
		res := e.Probe(testCtx(t), targetOf(ap), "")
		sum := sha256.Sum256(bogus)
		if res.Status != stackprint.StatusOK || res.Cert == nil || res.Cert.SHA256 != hex.EncodeToString(sum[:]) || res.Cert.ParseError == "" {
			t.Errorf("%s %+v %q", res.Status, res.Cert, res.Error)
		}
	})
}

// startGoHTTPS is startGoTLS plus an answer to one HTTP request.
func startGoHTTPS(t testing.TB, ip string, cfg *tls.Config) netip.AddrPort {
	t.Helper()
	return serveLoopback(t, ip, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		if line, err := bufio.NewReader(tc).ReadString('\n'); err == nil && line != "" {
			_, _ = io.WriteString(tc, "HTTP/1.1 200 OK\r\nServer: test/1\r\nContent-Length: 0\r\n\r\n")
		}
	})
}

func tlsConfigECDSA(t testing.TB) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{goCert(t, true)}}
}

func TestEngineKinds(t *testing.T) {
	if _, err := ParseKinds([]string{"jarm", "nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := ParseKinds(nil); err == nil {
		t.Error("empty selection accepted")
	}
	if k, err := ParseKinds([]string{"ATSF", " jarm", "atsf"}); err != nil || !slices.Equal(k, []string{"jarm", "atsf"}) {
		t.Errorf("ParseKinds = %v, %v", k, err)
	}
	if _, err := NewEngine(EngineConfig{Kinds: []string{"ja3"}}); err == nil {
		t.Error("NewEngine accepted an unknown kind")
	}
	e, _ := NewEngine(EngineConfig{})
	if !slices.Equal(e.Kinds(), AllKinds()) {
		t.Errorf("default kinds %v", e.Kinds())
	}

	ap := startGoHTTPS(t, "127.0.1.53", tlsConfigECDSA(t))
	for _, tc := range []struct {
		kinds []string
		conns int
	}{
		{[]string{"cert"}, 1},
		{[]string{"http"}, 1},
		{[]string{"cert", "http"}, 1},
		{[]string{"jarm"}, 10},
		{[]string{"atsf"}, 10},
	} {
		e, err := NewEngine(EngineConfig{Kinds: tc.kinds, IOTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		res := e.Probe(testCtx(t), targetOf(ap), "")
		checkEngineInvariants(t, res, len(tc.kinds))
		if res.Conns != tc.conns || res.Status != stackprint.StatusOK {
			t.Errorf("%v: %s conns %d (want %d) %q", tc.kinds, res.Status, res.Conns, tc.conns, res.Error)
		}
		if (res.JARM != "") != slices.Contains(tc.kinds, "jarm") || (res.ATSF != nil) != slices.Contains(tc.kinds, "atsf") ||
			(res.Cert != nil) != slices.Contains(tc.kinds, "cert") || (res.HTTP != nil) != slices.Contains(tc.kinds, "http") {
			t.Errorf("%v: fields of unselected kinds set: %+v", tc.kinds, res)
		}
	}
}

func TestEngineLimits(t *testing.T) {
	ap := startGoTLS(t, "127.0.1.54", tlsConfigECDSA(t))

	t.Run("per-ip rate", func(t *testing.T) {
		// A full probe fits the burst; the next target on the same IP would
		// wait 20 s for its 10 connections and is rate_limited at once.
		e, _ := NewEngine(EngineConfig{Kinds: []string{"atsf"}, ConnRate: 0.5, ConnBurst: 10, IOTimeout: time.Second})
		res := e.Probe(testCtx(t), targetOf(ap), "")
		if res.Status != stackprint.StatusOK || res.Conns != 10 {
			t.Errorf("first target: %s conns %d %q", res.Status, res.Conns, res.Error)
		}
		res = e.Probe(testCtx(t), stackprint.Target{IP: ap.Addr(), Port: 1}, "")
		checkEngineInvariants(t, res, 1)
		if res.Status != stackprint.StatusRateLimited || res.Conns != 0 || res.Duration > time.Second || !strings.Contains(res.Error, "would wait") {
			t.Errorf("same IP, other port: %s conns %d after %v: %q", res.Status, res.Conns, res.Duration, res.Error)
		}
		// A short wait is waited out.
		e, _ = NewEngine(EngineConfig{Kinds: []string{"atsf"}, ConnRate: 100, ConnBurst: 10, IOTimeout: time.Second})
		for range 2 {
			if res := e.Probe(testCtx(t), targetOf(ap), ""); res.Status != stackprint.StatusOK {
				t.Errorf("100 conn/s: %s %q", res.Status, res.Error)
			}
		}
		if _, err := NewEngine(EngineConfig{ConnBurst: 5}); err == nil || !strings.Contains(err.Error(), "burst") {
			t.Errorf("a burst below one target's connections was accepted: %v", err)
		}
	})
	t.Run("connection budget", func(t *testing.T) {
		e, _ := NewEngine(EngineConfig{MaxConns: 5, IOTimeout: 2 * time.Second})
		res := e.Probe(testCtx(t), targetOf(ap), "")
		checkEngineInvariants(t, res, 4)
		if res.Status != stackprint.StatusBudgetExceeded || res.Conns != 5 || res.HasJARM() {
			t.Errorf("%s conns %d JARM %s %q", res.Status, res.Conns, res.JARM, res.Error)
		}
	})
	t.Run("limiter lru", func(t *testing.T) {
		l := newIPLimits(1, 1, 2)
		a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		if l.get(a) != l.get(a) || l.get(a) == l.get(b) {
			t.Error("limiters not kept per IP")
		}
		for i := range 10 {
			l.get(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
		}
		if l.lru.Len() > 2 {
			t.Errorf("limiter LRU holds %d entries, cap 2", l.lru.Len())
		}
	})
}

func TestEngineDeadlineAndFailures(t *testing.T) {
	tarpit := serveLoopback(t, "127.0.1.55", func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	t.Run("deadline", func(t *testing.T) {
		e, _ := NewEngine(EngineConfig{IOTimeout: 5 * time.Second, Deadline: 400 * time.Millisecond})
		res := e.Probe(testCtx(t), targetOf(tarpit), "")
		checkEngineInvariants(t, res, 4)
		if res.Status != stackprint.StatusTimeout || res.Duration > 3*time.Second {
			t.Errorf("%s after %v: %q", res.Status, res.Duration, res.Error)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		time.AfterFunc(200*time.Millisecond, cancel)
		e, _ := NewEngine(EngineConfig{IOTimeout: 5 * time.Second})
		res := e.Probe(ctx, targetOf(tarpit), "")
		if res.Status != stackprint.StatusTimeout || res.Duration > 3*time.Second {
			t.Errorf("%s after %v", res.Status, res.Duration)
		}
	})
	t.Run("closed port", func(t *testing.T) {
		e, _ := NewEngine(EngineConfig{})
		res := e.Probe(testCtx(t), targetOf(closedPort(t, "127.0.1.56")), "")
		checkEngineInvariants(t, res, 4)
		if res.Status != stackprint.StatusRefused || res.Conns != 10 || res.JARM != stackprint.ZeroJARM {
			t.Errorf("%s conns %d JARM %s", res.Status, res.Conns, res.JARM)
		}
	})
	t.Run("invalid target", func(t *testing.T) {
		d := &recordingDialer{fail: errors.New("must not dial")}
		e, _ := NewEngine(EngineConfig{Dialer: d})
		res := e.Probe(context.Background(), stackprint.Target{}, "")
		if res.Status != stackprint.StatusRefused || res.Conns != 0 || d.dials != 0 || res.Error == "" {
			t.Errorf("%+v", res)
		}
	})
	t.Run("ipv6 without network", func(t *testing.T) {
		d := &recordingDialer{fail: &net.OpError{Op: "dial", Net: "tcp6", Err: syscall.ECONNREFUSED}}
		e, _ := NewEngine(EngineConfig{Dialer: d, Kinds: []string{"cert", "atsf"}})
		res := e.Probe(context.Background(), stackprint.Target{IP: netip.MustParseAddr("2001:db8::1"), Port: 8443}, "")
		if res.Status != stackprint.StatusRefused || res.Conns != 1 || d.addrs[0] != "[2001:db8::1]:8443" || d.networks[0] != "tcp6" {
			t.Errorf("%s conns %d %v %v", res.Status, res.Conns, d.networks, d.addrs)
		}
	})
	t.Run("panicking dialer", func(t *testing.T) {
		e, _ := NewEngine(EngineConfig{Dialer: panickingDialer{}, Kinds: []string{"atsf", "cert"}})
		res := e.Probe(context.Background(), stackprint.Target{IP: netip.MustParseAddr("192.0.2.7"), Port: 443}, "")
		if res.Status != stackprint.StatusHandshakeError || res.Error == "" {
			t.Errorf("%+v", res)
		}
	})
}

func TestHTTPHost(t *testing.T) {
	for _, tc := range []struct {
		t    stackprint.Target
		want string
	}{
		{stackprint.Target{IP: netip.MustParseAddr("192.0.2.1"), Port: 443, SNI: "a.test"}, "a.test"},
		{stackprint.Target{IP: netip.MustParseAddr("192.0.2.1"), Port: 8443, SNI: "a.test"}, "a.test:8443"},
		{stackprint.Target{IP: netip.MustParseAddr("192.0.2.1"), Port: 443}, "192.0.2.1"},
		{stackprint.Target{IP: netip.MustParseAddr("2001:db8::1"), Port: 443}, "[2001:db8::1]"},
		{stackprint.Target{IP: netip.MustParseAddr("2001:db8::1"), Port: 8443}, "[2001:db8::1]:8443"},
	} {
		if got := httpHost(tc.t); got != tc.want {
			t.Errorf("httpHost(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

// TestEngineConcurrent shares one Engine between goroutines (the daemon's
// workers do); run with -race it guards the shared definitions, dummy key
// and limiter.
func TestEngineConcurrent(t *testing.T) {
	ap := startGoHTTPS(t, "127.0.1.57", tlsConfigECDSA(t))
	e, err := NewEngine(EngineConfig{IOTimeout: 5 * time.Second, Deadline: 30 * time.Second, ConnRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	results := make(chan stackprint.Result, 4)
	for range cap(results) {
		go func() { results <- e.Probe(ctx, stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: "a.test"}, "") }()
	}
	var first string
	for range cap(results) {
		res := <-results
		if res.Status != stackprint.StatusOK || !res.HasATSF() || res.HTTP == nil || res.HTTP.Server != "test/1" {
			t.Errorf("%s %q", res.Status, res.Error)
			continue
		}
		if first == "" {
			first = res.ATSF.ID
		} else if res.ATSF.ID != first {
			t.Errorf("ATSF differs between concurrent probes of one server: %s vs %s", res.ATSF.ID, first)
		}
	}
}

// TestHTTPNonHTTPService: a TLS service that is no web server costs the
// HTTP kind at most the HTTP wait, not the I/O timeout, and never spoils
// the certificate.
func TestHTTPNonHTTPService(t *testing.T) {
	cfg := tlsConfigECDSA(t)
	silent := serveLoopback(t, "127.0.1.60", func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		_, _ = io.Copy(io.Discard, tc) // reads the request, never answers
	})
	greeting := serveLoopback(t, "127.0.1.61", func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		_, _ = io.WriteString(tc, "* OK [CAPABILITY IMAP4rev1] ready\r\n")
		_, _ = io.Copy(io.Discard, tc)
	})
	e, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindCert, stackprint.KindHTTP}, IOTimeout: 20 * time.Second, HTTPWait: 300 * time.Millisecond, Deadline: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ap   netip.AddrPort
		want stackprint.Status
	}{
		{"silent", silent, stackprint.StatusTimeout},
		{"imaps-like greeting", greeting, stackprint.StatusHandshakeError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Probe(testCtx(t), stackprint.Target{IP: tc.ap.Addr(), Port: tc.ap.Port()}, "")
			checkEngineInvariants(t, res, 2)
			if res.Status != stackprint.StatusOK || res.Cert == nil || res.HTTP != nil {
				t.Errorf("status %s cert %v http %+v", res.Status, res.Cert != nil, res.HTTP)
			}
			h := res.Kinds[1]
			t.Logf("http: %s %q after %v", h.Status, h.Error, h.Duration)
			if h.Status != tc.want {
				t.Errorf("http status %s, want %s", h.Status, tc.want)
			}
			if h.Duration > 10*time.Second {
				t.Errorf("the HTTP kind waited %v, the I/O timeout rather than the HTTP wait", h.Duration)
			}
		})
	}
}

// TestEngineIPv6 probes a server on ::1 with every kind, as IPv4.
func TestEngineIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("::1 is not configured in this test environment (%v): the IPv6 tests need the IPv6 loopback address", err)
	}
	cfg := tlsConfigECDSA(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					_, _ = io.WriteString(tc, "HTTP/1.1 200 OK\r\nServer: v6/1\r\nContent-Length: 0\r\n\r\n")
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	ap := netip.MustParseAddrPort(ln.Addr().String())
	d := &recordingDialer{}
	e, err := NewEngine(EngineConfig{Dialer: d, IOTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Probe(testCtx(t), stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: "example.test"}, ap.Addr().String())
	checkEngineInvariants(t, res, 4)
	if res.Status != stackprint.StatusOK || !res.HasJARM() || !res.HasATSF() || res.Cert == nil || res.HTTP == nil || res.HTTP.Server != "v6/1" {
		t.Fatalf("status %s error %q http %+v", res.Status, res.Error, res.HTTP)
	}
	for i, n := range d.networks {
		if n != "tcp6" || d.addrs[i] != ap.String() {
			t.Fatalf("dial %d: %s %s", i, n, d.addrs[i])
		}
	}
}
