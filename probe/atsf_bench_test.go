package probe

import (
	"bytes"
	"net"
	"testing"
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
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	b.ReportAllocs()
	for b.Loop() {
		for _, d := range e.atsfDefs {
			var kl keyLog
			ac, err := atsfUConn(c1, d, "example.test", &kl, e.dummyKey)
			if err != nil {
				b.Fatal(err)
			}
			if err := ac.uc.BuildHandshakeState(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
