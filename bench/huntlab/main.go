// Command huntlab is the lab of bench/hunt.sh: TLS servers on loopback
// addresses, repeated to the requested number of targets, plus tarpits
// (accept, never answer), and a runner that measures a child's wall time
// and CPU. Loopback only: it refuses any other address.
//
//	huntlab serve -n 4000 -tarpits 400 -port 8443 -targets FILE
//	huntlab measure -- CMD ARGS…    # prints "wall_s user_s sys_s exit_code"
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stackprint/stackprint/internal/lab"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: huntlab serve|measure …")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "measure":
		err = measure(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "huntlab:", err)
		os.Exit(1)
	}
}

// measure runs the command after "--" and prints its wall time and the
// user and system CPU of it and its children (getrusage of the child).
func measure(args []string) error {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return errors.New("measure: no command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		return err
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		return errors.New("measure: no rusage")
	}
	fmt.Fprintf(os.Stderr, "MEASURE %.3f %.3f %.3f %d\n", wall.Seconds(),
		time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds(), code)
	return nil
}

// variant is one server configuration of the lab.
type variant struct {
	name string
	cfg  *tls.Config // nil: an openssl s_server variant
	args []string    // openssl s_server arguments after the certificate
	key  string      // "rsa" or "ecdsa"
}

func goVariants(rsaCert, ecCert tls.Certificate) []variant {
	both := []tls.Certificate{ecCert, rsaCert}
	return []variant{
		{name: "go-ecdsa", cfg: &tls.Config{Certificates: []tls.Certificate{ecCert}}},
		{name: "go-rsa", cfg: &tls.Config{Certificates: []tls.Certificate{rsaCert}}},
		{name: "go-max12", cfg: &tls.Config{Certificates: []tls.Certificate{rsaCert}, MaxVersion: tls.VersionTLS12}},
		{name: "go-alpn", cfg: &tls.Config{Certificates: both, NextProtos: []string{"h2", "http/1.1"}}},
		{name: "go-p256", cfg: &tls.Config{Certificates: []tls.Certificate{ecCert}, CurvePreferences: []tls.CurveID{tls.CurveP256}}},
		{name: "go-ciphers", cfg: &tls.Config{Certificates: []tls.Certificate{rsaCert}, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}},
	}
}

func opensslVariants() []variant {
	return []variant{
		{name: "ossl-rsa", key: "rsa"},
		{name: "ossl-no13", key: "rsa", args: []string{"-no_tls1_3"}},
		{name: "ossl-ecdsa", key: "ecdsa"},
		{name: "ossl-serverpref-alpn", key: "rsa", args: []string{"-serverpref", "-alpn", "h2,http/1.1"}},
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	n := fs.Int("n", 4000, "TLS server targets")
	tarpits := fs.Int("tarpits", 400, "tarpit targets (accept, never answer)")
	port := fs.Int("port", 8443, "port of every target")
	nOpenSSL := fs.Int("openssl", 32, "of the n targets, openssl s_server processes (0: none; skipped without openssl)")
	targets := fs.String("targets", "", "write the target list (ADDR:PORT lines) here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *targets == "" || *n < 1 || *n > 60000 || *tarpits < 0 || *tarpits > 60000 {
		return errors.New("serve: want -targets FILE, 1 <= -n <= 60000, 0 <= -tarpits <= 60000")
	}
	dir, err := os.MkdirTemp("", "huntlab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rsaCert, err := lab.SelfSigned("rsa", "huntlab.test")
	if err != nil {
		return err
	}
	ecCert, err := lab.SelfSigned("ecdsa", "huntlab.test")
	if err != nil {
		return err
	}
	files := map[string][2]string{}
	for name, c := range map[string]tls.Certificate{"rsa": rsaCert, "ecdsa": ecCert} {
		cf, kf := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if err := writePEM(cf, "CERTIFICATE", c.Certificate[0]); err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		if err != nil {
			return err
		}
		if err := writePEM(kf, "PRIVATE KEY", der); err != nil {
			return err
		}
		files[name] = [2]string{cf, kf}
	}

	var lns []net.Listener
	var procs []*exec.Cmd
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	addrAt := func(block, i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, byte(block), byte(i / 250), byte(1 + i%250)}), uint16(*port))
	}
	counts := map[string]int{}
	var real, pits []string
	osslBin, _ := exec.LookPath("openssl")
	if osslBin == "" {
		*nOpenSSL = 0
	}
	*nOpenSSL = min(*nOpenSSL, *n)
	ov := opensslVariants()
	for i := range *nOpenSSL {
		v := ov[i%len(ov)]
		ap := addrAt(21, i)
		f := files[v.key]
		cmd := exec.Command(osslBin, append([]string{"s_server", "-accept", ap.String(), "-cert", f[0], "-key", f[1], "-www", "-quiet"}, v.args...)...)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		// The servers die with the lab, however it ends.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("openssl s_server: %w", err)
		}
		procs = append(procs, cmd)
		real = append(real, ap.String())
		counts[v.name]++
	}
	gv := goVariants(rsaCert, ecCert)
	var wg sync.WaitGroup
	for i := range *n - *nOpenSSL {
		v := gv[i%len(gv)]
		ap := addrAt(20, i)
		ln, err := net.Listen("tcp4", ap.String())
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		wg.Go(func() { serveTLS(ln, v.cfg) })
		real = append(real, ap.String())
		counts[v.name]++
	}
	var held sync.Map
	for i := range *tarpits {
		ap := addrAt(22, i)
		ln, err := net.Listen("tcp4", ap.String())
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				held.Store(c, struct{}{}) // never read, never answered, closed at exit
			}
		})
	}
	for _, p := range procs {
		ap := netip.MustParseAddrPort(p.Args[3])
		if err := waitAccept(ap, 10*time.Second); err != nil {
			return err
		}
	}
	// One tarpit after every tenth server, so they spread over the run.
	var out []string
	for i, r := range real {
		out = append(out, r)
		if len(pits) < *tarpits && (i+1)%(max(1, *n/max(1, *tarpits))) == 0 {
			pits = append(pits, addrAt(22, len(pits)).String())
			out = append(out, pits[len(pits)-1])
		}
	}
	for len(pits) < *tarpits {
		pits = append(pits, addrAt(22, len(pits)).String())
		out = append(out, pits[len(pits)-1])
	}
	if err := os.WriteFile(*targets, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	var mix []string
	for _, v := range append(ov, gv...) {
		if counts[v.name] > 0 {
			mix = append(mix, fmt.Sprintf("%s=%d", v.name, counts[v.name]))
		}
	}
	fmt.Printf("READY targets=%d servers=%d tarpits=%d openssl=%d mix=%s\n", len(out), len(real), len(pits), *nOpenSSL, strings.Join(mix, ","))
	// Until the script closes stdin or signals; the deferred cleanup
	// stops the openssl servers either way.
	stdinDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(stdinDone)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stdinDone:
	case <-sig:
	}
	held.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	return nil
}

// serveTLS answers TLS handshakes and, when asked, GET / with a head.
func serveTLS(ln net.Listener, cfg *tls.Config) {
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
			if line, err := bufio.NewReader(tc).ReadString('\n'); err == nil && strings.HasPrefix(line, "GET ") {
				_, _ = io.WriteString(tc, "HTTP/1.1 204 No Content\r\nServer: huntlab-go\r\nConnection: close\r\n\r\n")
			}
		}()
	}
}

func waitAccept(ap netip.AddrPort, within time.Duration) error {
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		c, err := net.DialTimeout("tcp4", ap.String(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("openssl s_server on %s did not accept", ap)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
