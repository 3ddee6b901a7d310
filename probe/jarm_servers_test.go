package probe

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Test servers listen on 127.0.0.0/8 only; mustLoopback enforces it.
func mustLoopback(t testing.TB, ip string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() || !a.IsLoopback() {
		t.Fatalf("test server address %q is not in 127.0.0.0/8", ip)
	}
	return a
}

// serveLoopback runs handler for every connection accepted on ip:0 until
// the test ends; open connections are closed at cleanup so handlers that
// block (a tarpit) return.
func serveLoopback(t testing.TB, ip string, handler func(net.Conn)) netip.AddrPort {
	t.Helper()
	a := mustLoopback(t, ip)
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				handler(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// startGoTLS serves crypto/tls with cfg on ip: the server reads the
// ClientHello, answers, and gives up when the client does not continue.
func startGoTLS(t testing.TB, ip string, cfg *tls.Config) netip.AddrPort {
	t.Helper()
	return serveLoopback(t, ip, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_ = tls.Server(c, cfg).Handshake()
	})
}

// goCert makes a self-signed CN=localhost certificate with an RSA-2048 or
// ECDSA P-256 key.
func goCert(t testing.TB, ecdsaKey bool) tls.Certificate {
	t.Helper()
	var key crypto.Signer
	var err error
	if ecdsaKey {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(3650 * 24 * time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// opensslBin returns the openssl binary; the live rows need it, so its
// absence is a failure.
func opensslBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl binary not found (%v): install openssl (apt-get install openssl) to run the live JARM rows", err)
	}
	return p
}

// opensslCerts makes rsa.{crt,key} and ec.{crt,key} in dir exactly as
// docs/JARM.md §2 does.
func opensslCerts(t testing.TB, dir string) {
	t.Helper()
	bin := opensslBin(t)
	for _, args := range [][]string{
		{"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsa.key", "-out", "rsa.crt", "-days", "3650", "-subj", "/CN=localhost"},
		{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ec.key", "-out", "ec.crt", "-days", "3650", "-subj", "/CN=localhost"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
}

// startOpenSSL runs `openssl s_server -accept ip:PORT … -www -quiet` on a
// free port, waits until it accepts TCP and kills it at cleanup.
func startOpenSSL(t testing.TB, ip, certDir, cert, key string, extra ...string) netip.AddrPort {
	t.Helper()
	bin := opensslBin(t)
	a := mustLoopback(t, ip)
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, 0).String())
		if err != nil {
			t.Fatalf("pick a port on %s: %v", ip, err)
		}
		ap := netip.MustParseAddrPort(ln.Addr().String())
		ln.Close()

		args := append([]string{"s_server", "-accept", ap.String(),
			"-cert", filepath.Join(certDir, cert), "-key", filepath.Join(certDir, key), "-www", "-quiet"}, extra...)
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start openssl s_server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		if waitAccept(ap, exited, 10*time.Second) {
			t.Cleanup(stop)
			return ap
		}
		stop()
		lastErr = fmt.Sprintf("s_server %v did not accept: %s", extra, stderr.String())
	}
	t.Fatal(lastErr)
	return netip.AddrPort{}
}

// waitAccept polls until ap accepts a TCP connection, the process exits or
// the time is up.
func waitAccept(ap netip.AddrPort, exited <-chan struct{}, within time.Duration) bool {
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp4", ap.String(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// testCtx is a context that ends with the test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
