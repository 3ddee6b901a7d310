package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stackprint/stackprint"
)

// Helper modes of the test binary for bench/probe.sh: servers and client
// run as separate processes so the client's CPU time and peak RSS are its
// own. Both are reached through TestMain (helperEnv), never as tests.

// runBenchServers serves n Go TLS servers (ECDSA P-256, ALPN h2,http/1.1,
// answering GET), each on its own loopback IP from 127.0.3.1 on, prints
// "LISTEN addr…" and serves until stdin closes.
func runBenchServers(n int) error {
	if n < 1 || n > 250*50 {
		return fmt.Errorf("server count %d out of range", n)
	}
	cert, err := ecdsaCert()
	if err != nil {
		return err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	var addrs []string
	var lns []net.Listener
	for i := range n {
		ip := netip.AddrFrom4([4]byte{127, byte(3 + i/250), byte(1 + i%250)})
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(ip, 0).String())
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
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
					if line, err := bufio.NewReader(tc).ReadString('\n'); err == nil && strings.HasPrefix(line, "GET ") {
						_, _ = io.WriteString(tc, "HTTP/1.1 204 No Content\r\nServer: bench-go\r\nConnection: close\r\n\r\n")
					}
				}()
			}
		}()
	}
	fmt.Printf("LISTEN %s\n", strings.Join(addrs, " "))
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, ln := range lns {
		ln.Close()
	}
	return nil
}

// runBenchClient probes every target once with conc workers and prints one
// line of figures. Rate limiting is off: the figure is the prober's cost,
// not the politeness policy.
func runBenchClient(targets []string, kinds []string, conc int) error {
	e, err := NewEngine(EngineConfig{Kinds: kinds, ConnRate: -1, IOTimeout: 5 * time.Second, Deadline: 30 * time.Second})
	if err != nil {
		return err
	}
	jobs := make(chan netip.AddrPort)
	var mu sync.Mutex
	statuses := map[stackprint.Status]int{}
	conns := 0
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for ap := range jobs {
				res := e.Probe(context.Background(), stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: "bench.test"}, ap.Addr().String())
				mu.Lock()
				statuses[res.Status]++
				conns += res.Conns
				mu.Unlock()
			}
		})
	}
	for _, t := range targets {
		ap, err := netip.ParseAddrPort(t)
		if err != nil || !ap.Addr().IsLoopback() {
			close(jobs)
			return fmt.Errorf("target %q is not a loopback address", t)
		}
		jobs <- ap
	}
	close(jobs)
	wg.Wait()
	wall := time.Since(start)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	n := float64(len(targets))
	fmt.Printf("%-22s %7d %5d %9.1f %12.2f %12.1f %8d %s\n", strings.Join(kinds, ","), len(targets), conc,
		n/wall.Seconds(), float64(cpu.Microseconds())/1000/n, float64(ru.Maxrss)/1024, conns/len(targets), fmtStatuses(statuses))
	return nil
}

func fmtStatuses(m map[stackprint.Status]int) string {
	var parts []string
	for _, s := range []stackprint.Status{stackprint.StatusOK, stackprint.StatusPartial, stackprint.StatusTimeout, stackprint.StatusRefused,
		stackprint.StatusReset, stackprint.StatusNotTLS, stackprint.StatusHandshakeError, stackprint.StatusRateLimited, stackprint.StatusBudgetExceeded} {
		if m[s] > 0 {
			parts = append(parts, string(s)+"="+strconv.Itoa(m[s]))
		}
	}
	return strings.Join(parts, ",")
}

// runBenchHelper dispatches the bench modes; ok is false for other modes.
func runBenchHelper(mode string) (ok bool, err error) {
	switch mode {
	case "benchservers":
		n, err := strconv.Atoi(os.Getenv(helperEnv + "_N"))
		if err != nil {
			return true, fmt.Errorf("%s_N: %w", helperEnv, err)
		}
		return true, runBenchServers(n)
	case "benchclient":
		conc, err := strconv.Atoi(os.Getenv(helperEnv + "_C"))
		if err != nil || conc < 1 {
			return true, fmt.Errorf("%s_C: want a positive number", helperEnv)
		}
		kinds, err := ParseKinds(strings.Split(os.Getenv(helperEnv+"_KINDS"), ","))
		if err != nil {
			return true, err
		}
		return true, runBenchClient(strings.Fields(os.Getenv(helperEnv+"_TARGETS")), kinds, conc)
	}
	return false, nil
}
