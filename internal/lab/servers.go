package lab

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// Server is a TLS server on a loopback address, for the demo and the
// end-to-end tests: an in-process crypto/tls listener or an
// `openssl s_server` child process.
type Server struct {
	Name string
	Addr netip.AddrPort
	stop func()
}

func (s *Server) Close() { s.stop() }

// SelfSigned makes a throwaway certificate; keyType is "rsa" or "ecdsa".
func SelfSigned(keyType, cn string) (tls.Certificate, error) {
	var key crypto.Signer
	var err error
	if keyType == "rsa" {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate %s key: %w", keyType, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// StartGoTLS serves TLS with cfg on ip (a 127.0.0.0/8 address) and a free
// port; each connection gets a handshake and a tiny HTTP answer.
func StartGoTLS(name, ip string, cfg *tls.Config) (*Server, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("lab server %s: %w", name, err)
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
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					_, _ = tc.Write([]byte("HTTP/1.1 200 OK\r\nServer: stackprint-lab\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
				}
			})
		}
	})
	return &Server{
		Name: name,
		Addr: netip.MustParseAddrPort(ln.Addr().String()),
		stop: func() { ln.Close(); wg.Wait() },
	}, nil
}

// StartOpenSSL runs `openssl s_server` with extra args on ip and a free
// port, using an RSA certificate written into dir.
func StartOpenSSL(ctx context.Context, name, ip, dir string, extra ...string) (*Server, error) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		return nil, fmt.Errorf("lab server %s: %w", name, err)
	}
	cert, err := SelfSigned("rsa", "localhost")
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	// Find a free port, then hand it to s_server (which cannot report one).
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	addr := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	args := append([]string{"s_server", "-accept", addr.String(), "-cert", certFile, "-key", keyFile, "-www", "-quiet"}, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab server %s: start openssl: %w", name, err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", addr.String())
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, errors.Join(fmt.Errorf("lab server %s: openssl s_server did not listen on %s", name, addr), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Server{Name: name, Addr: addr, stop: stop}, nil
}
