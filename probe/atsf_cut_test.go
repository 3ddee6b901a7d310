package probe

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// TestATSFCutMatchesFullHandshake probes the same servers with the
// engine that closes after the server's flight and with the baseline that
// runs every handshake to its end: every per-ClientHello string,
// negotiated version and combined fingerprint must be identical, and the
// cut must actually happen (TLS 1.3 and TLS 1.2 flights) except where the
// server asks for a client certificate (its reaction is a feature).
func TestATSFCutMatchesFullHandshake(t *testing.T) {
	certDir := t.TempDir()
	opensslCerts(t, certDir)
	ecdsa, err := ecdsaCert()
	if err != nil {
		t.Fatal(err)
	}
	goServer := func(ip string, cfg *tls.Config) netip.AddrPort {
		return serveLoopback(t, ip, func(c net.Conn) {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_ = tls.Server(c, cfg).Handshake()
		})
	}
	servers := []struct {
		name    string
		ap      netip.AddrPort
		wantCut bool
	}{
		{"go-reference", startGoReferenceServer(t, "127.0.0.101"), true},
		{"openssl-default-rsa", startOpenSSL(t, "127.0.0.102", certDir, "rsa.crt", "rsa.key"), true},
		{"openssl-tls12-serverpref-alpn", startOpenSSL(t, "127.0.0.103", certDir, "rsa.crt", "rsa.key", "-no_tls1_3", "-serverpref", "-alpn", "h2,http/1.1"), true},
		{"openssl-ecdsa-tls12", startOpenSSL(t, "127.0.0.104", certDir, "ec.crt", "ec.key", "-no_tls1_3"), true},
		{"openssl-client-cert", startOpenSSL(t, "127.0.0.105", certDir, "rsa.crt", "rsa.key", "-Verify", "1"), false},
		{"go-client-cert-tls13", goServer("127.0.0.106", &tls.Config{Certificates: []tls.Certificate{ecdsa}, ClientAuth: tls.RequireAnyClientCert}), false},
		{"go-tls12-ecdsa", goServer("127.0.0.107", &tls.Config{Certificates: []tls.Certificate{ecdsa}, MaxVersion: tls.VersionTLS12}), true},
	}
	engine := func(baseline bool) *Engine {
		e, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindATSF}, ConnRate: -1, IOTimeout: 5 * time.Second, Deadline: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		e.atsfBaseline = baseline
		return e
	}
	full, cut := engine(true), engine(false)
	for _, s := range servers {
		target := stackprint.Target{IP: s.ap.Addr(), Port: s.ap.Port(), SNI: "example.test"}
		want := full.Probe(testCtx(t), target, "")
		before := cut.atsfCut.Load()
		got := cut.Probe(testCtx(t), target, "")
		if want.ATSF == nil || got.ATSF == nil {
			t.Fatalf("%s: no ATSF (%s / %s)", s.name, want.Error, got.Error)
		}
		answered := 0
		for i, w := range want.ATSF.Hellos {
			g := got.ATSF.Hellos[i]
			if g.Raw != w.Raw || g.Version != w.Version {
				t.Errorf("%s %s:\n cut  %q v%x (%s)\n full %q v%x (%s)", s.name, w.Name, g.Raw, g.Version, g.Error, w.Raw, w.Version, w.Error)
			}
			if w.Raw != "" {
				answered++
			}
		}
		if got.ATSF.Fingerprint != want.ATSF.Fingerprint || got.ATSF.ID != want.ATSF.ID || got.Status != want.Status {
			t.Errorf("%s: fingerprint or status differs: %s %q vs %s %q", s.name, got.Status, got.ATSF.ID, want.Status, want.ATSF.ID)
		}
		n := cut.atsfCut.Load() - before
		t.Logf("%s: %d of %d answered hellos cut after the server's flight", s.name, n, answered)
		if s.wantCut != (n > 0) {
			t.Errorf("%s: %d hellos cut, want cut=%v", s.name, n, s.wantCut)
		}
	}
}

// TestX25519LowOrder checks the table against crypto/ecdh, which utls uses:
// every listed value, with and without the ignored top bit, makes ECDH fail,
// and random values (and their neighbours of the listed ones) do not.
func TestX25519LowOrder(t *testing.T) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdhFails := func(u []byte) bool {
		pub, err := ecdh.X25519().NewPublicKey(u)
		if err != nil {
			t.Fatalf("NewPublicKey(%x): %v", u, err)
		}
		_, err = priv.ECDH(pub)
		return err != nil
	}
	check := func(u []byte) {
		t.Helper()
		if got, want := x25519LowOrder(u), ecdhFails(u); got != want {
			t.Errorf("x25519LowOrder(%x) = %v, crypto/ecdh refuses it: %v", u, got, want)
		}
	}
	for _, bad := range x25519SmallOrder {
		if !x25519LowOrder(bad[:]) || !ecdhFails(bad[:]) {
			t.Errorf("%x: listed but not refused", bad)
		}
		high := bad
		high[31] |= 0x80
		check(high[:])
		for _, d := range []int{-1, 1} {
			n := bad
			n[0] += byte(d) // a neighbour: refused only if listed itself
			check(n[:])
		}
	}
	for range 2000 {
		u := make([]byte, 32)
		_, _ = rand.Read(u)
		check(u)
	}
}
