package probe

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the Go reference server of
// local_fingerprints.tsv: GODEBUG is read at process start, so the old TLS
// defaults (tls10server=1, tlssha1=1) need a process of their own.
const helperEnv = "STACKPRINT_PROBE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "goserver" {
		if err := runHelperGoServer(os.Getenv(helperEnv + "_ADDR")); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if ok, err := runBenchHelper(os.Getenv(helperEnv)); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelperGoServer serves crypto/tls with an ECDSA P-256 certificate and
// ALPN h2,http/1.1 on addr (loopback only) until stdin closes. Each
// connection gets a handshake and, if it asks, a tiny HTTP answer.
func runHelperGoServer(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() || !ap.Addr().IsLoopback() {
		return fmt.Errorf("address %q is not in 127.0.0.0/8", addr)
	}
	cert, err := ecdsaCert()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				line, err := bufio.NewReader(tc).ReadString('\n')
				if err == nil && strings.HasPrefix(line, "GET ") {
					_, _ = io.WriteString(tc, "HTTP/1.1 204 No Content\r\nServer: helper-go/1.26\r\nConnection: close\r\n\r\n")
				}
			}()
		}
	}()
	fmt.Printf("LISTEN %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes stdin (or dies)
	return ln.Close()
}

func ecdsaCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"example.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// startGoReferenceServer runs the helper with
// GODEBUG=tls10server=1,tlssha1=1 on ip and returns its address.
func startGoReferenceServer(t testing.TB, ip string) netip.AddrPort {
	t.Helper()
	ap, _ := startGoHelperServer(t, ip, "tls10server=1,tlssha1=1")
	return ap
}

// startGoHelperServer runs the helper server with GODEBUG=godebug on ip
// and returns its address and pid (benchmarks read its CPU time).
func startGoHelperServer(t testing.TB, ip, godebug string) (netip.AddrPort, int) {
	t.Helper()
	a := mustLoopback(t, ip)
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("test binary: %v", err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"GODEBUG="+godebug,
		helperEnv+"=goserver",
		helperEnv+"_ADDR="+netip.AddrPortFrom(a, 0).String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper server: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
	if err != nil || !ok {
		t.Fatalf("helper server did not start: %q %v", line, err)
	}
	return netip.MustParseAddrPort(addr), cmd.Process.Pid
}

// atsfTestdata returns testdata/atsf at the repository root (see its
// README); missing data fails the test.
func atsfTestdata(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("..", "testdata", "atsf")
	if _, err := os.Stat(filepath.Join(dir, "local_fingerprints.tsv")); err != nil {
		t.Fatalf("ATSF test data not found at %s (part of the repository): %v", dir, err)
	}
	return dir
}

// atsfExpect is one server of local_fingerprints.tsv.
type atsfExpect struct {
	perCH    map[string]string
	version  map[string]string
	combined string
}

func readLocalFingerprints(t testing.TB) map[string]*atsfExpect {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(atsfTestdata(t), "local_fingerprints.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*atsfExpect{}
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if i == 0 {
			continue // header
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("local_fingerprints.tsv:%d: %d fields", i+1, len(f))
		}
		e := out[f[0]]
		if e == nil {
			e = &atsfExpect{perCH: map[string]string{}, version: map[string]string{}}
			out[f[0]] = e
		}
		if strings.HasPrefix(f[1], "COMBINED") {
			e.combined = f[3]
		} else {
			e.perCH[f[1]], e.version[f[1]] = f[3], f[2]
		}
	}
	return out
}
