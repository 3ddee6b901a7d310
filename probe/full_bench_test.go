package probe

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// BenchmarkFullProbe is one full fingerprint (jarm, cert, http, atsf: 21
// connections) of a Go crypto/tls server with Go's defaults (ECDSA P-256,
// ALPN h2,http/1.1, answering GET, as bench/probe.sh's) running in a process of its own, so ns/op, allocs/op and
// a CPU profile (go test -bench FullProbe -cpuprofile cpu.out) hold the
// prober only. Each kind is also measured alone. cpu-ms/op is this
// process's user+system CPU per probe (sys-ms/op the system part),
// server-cpu-ms/op the server
// process's (from /proc, Linux only; absent elsewhere): the client and a
// loopback lab share the machine's cores, so both count for throughput.
func BenchmarkFullProbe(b *testing.B) {
	// Go's defaults (no GODEBUG), as bench/probe.sh's servers.
	ap, pid := startGoHelperServer(b, "127.0.0.94", "")
	t := stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: "example.test"}
	for _, kinds := range [][]string{AllKinds(), {stackprint.KindJARM}, {stackprint.KindCert, stackprint.KindHTTP}, {stackprint.KindATSF}} {
		e, err := NewEngine(EngineConfig{Kinds: kinds, ConnRate: -1, IOTimeout: 5 * time.Second, Deadline: 30 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.Join(kinds, ","), func(b *testing.B) {
			b.ReportAllocs()
			cpu0, sys0, srv0 := processCPU(b), processSys(b), procCPU(pid)
			for b.Loop() {
				res := e.Probe(context.Background(), t, ap.Addr().String())
				if res.Status != stackprint.StatusOK {
					b.Fatalf("probe: %s %s", res.Status, res.Error)
				}
			}
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64((processSys(b)-sys0).Microseconds())/1000/float64(b.N), "sys-ms/op")
			if srv1 := procCPU(pid); srv0 >= 0 && srv1 >= 0 {
				b.ReportMetric(float64((srv1-srv0).Microseconds())/1000/float64(b.N), "server-cpu-ms/op")
			}
		})
	}
}

// processSys is the system part of processCPU: the kernel's TCP work on
// loopback, much of it the server side's, runs in the client's syscalls.
func processSys(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Stime.Nano())
}

// procCPU is the user+system CPU of process pid from /proc/PID/stat, or
// -1 when it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces: fields after its ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck
}
