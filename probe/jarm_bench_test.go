package probe

import (
	"testing"
)

func BenchmarkParseJARMAnswer(b *testing.B) {
	c := jarmCaptureFor(b, "G") // ServerHello with ALPN and five extensions
	d := mustHex(b, *c.Probes[0].Response)
	b.ReportAllocs()
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		ParseJARMAnswer(d)
	}
}

func BenchmarkJARMHash(b *testing.B) {
	raw := jarmCaptureFor(b, "A").Raw
	b.ReportAllocs()
	for b.Loop() {
		if _, err := JARMHash(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildJARMProbes(b *testing.B) {
	b.Run("crypto-rand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := BuildJARMProbes("127.0.0.1", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("zero-rand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := BuildJARMProbes("127.0.0.1", zeroReader{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
