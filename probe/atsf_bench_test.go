package probe

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

func BenchmarkParseTranscript(b *testing.B) {
	secret := bytes.Repeat([]byte{0x5a}, 48)
	b.Run("tls13-decrypt", func(b *testing.B) {
		recs := tls13Flight(b, 0x1301, secret, tlsExtBytes(extSCT, nil))
		b.ReportAllocs()
		for b.Loop() {
			if parseTranscript(recs, secret).atsfString() == "" {
				b.Fatal("no features")
			}
		}
	})
	b.Run("tls12", func(b *testing.B) {
		recs := []tlsRecord{plainRecord(recHandshake, shMessage(0x0303, 0xc013, false,
			tlsExtBytes(extRenegotiation, []byte{0}), tlsExtBytes(extPointFormats, []byte{3, 0, 1, 2}), tlsExtBytes(extSessionTicket, nil)))}
		b.ReportAllocs()
		for b.Loop() {
			if parseTranscript(recs, nil).atsfString() == "" {
				b.Fatal("no features")
			}
		}
	})
}

func BenchmarkCombineATSF(b *testing.B) {
	raws := []string{}
	for _, l := range []string{"771_1301_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_-", "771_c02b_16.AAkIaHR0cC8xLjE-0.____", "______<120"} {
		raws = append(raws, l, l, l)
	}
	raws = append(raws, "771_cca9_16.AAMCaDI-0.____")
	b.ReportAllocs()
	for b.Loop() {
		if _, id := CombineATSF(raws); len(id) != 64 {
			b.Fatal("no id")
		}
	}
}

func BenchmarkCertFacts(b *testing.B) {
	der := goCert(b, false).Certificate[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CertFactsFromChain([][]byte{der}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildATSFHello builds and marshals one utls ClientHello per
// definition, the client-side cost before anything is sent.
func BenchmarkBuildATSFHello(b *testing.B) {
	e, err := NewEngine(EngineConfig{})
	if err != nil {
		b.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	b.ReportAllocs()
	for b.Loop() {
		for _, d := range e.atsfDefs {
			var kl keyLog
			ac, err := atsfUConn(c1, d, "example.test", &kl, e.dummyKey, x25519)
			if err != nil {
				b.Fatal(err)
			}
			if err := ac.uc.BuildHandshakeState(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkATSFProbe is the client side of one full ATSF probe (ten
// connections) against servers in other processes, so a CPU profile of
// it holds the prober only (go test -bench ATSFProbe -cpuprofile cpu.out),
// the current engine ("cut") beside the baseline that runs every
// handshake to its end with unbuffered reads, in one run. cpu-ms/op is
// the process's user+system CPU per probe.
func BenchmarkATSFProbe(b *testing.B) {
	certDir := b.TempDir()
	opensslCerts(b, certDir)
	newEngine := func(baseline bool) *Engine {
		e, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindATSF}, ConnRate: -1, IOTimeout: 5 * time.Second, Deadline: 30 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		e.atsfBaseline = baseline
		return e
	}
	engines := []struct {
		name string
		e    *Engine
	}{{"baseline", newEngine(true)}, {"cut", newEngine(false)}}
	for _, s := range []struct {
		name  string
		start func() netip.AddrPort
	}{
		{"go-tls13-ecdsa", func() netip.AddrPort { return startGoReferenceServer(b, "127.0.0.91") }},
		{"openssl-tls13-rsa", func() netip.AddrPort { return startOpenSSL(b, "127.0.0.92", certDir, "rsa.crt", "rsa.key") }},
		{"openssl-tls12-rsa", func() netip.AddrPort {
			return startOpenSSL(b, "127.0.0.93", certDir, "rsa.crt", "rsa.key", "-no_tls1_3", "-serverpref", "-alpn", "h2,http/1.1")
		}},
	} {
		ap := s.start()
		t := stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: "example.test"}
		for _, eng := range engines {
			b.Run(s.name+"/"+eng.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := processCPU(b)
				for b.Loop() {
					if res := eng.e.Probe(context.Background(), t, ""); !res.HasATSF() {
						b.Fatalf("no ATSF: %s %s", res.Status, res.Error)
					}
				}
				b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

func processCPU(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
