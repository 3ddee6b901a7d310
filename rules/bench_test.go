package rules

import (
	"testing"

	"github.com/stackprint/stackprint"
)

// The pipeline judges every event of a probed target, cache hits
// included, so Judge is on the hot path.
func BenchmarkJudge(b *testing.B) {
	e, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	ev := event("C", "10.0.0.5:1000", "203.0.113.7:443", "evil.example", t0)
	r := okResult(ev, jarmC2)
	for _, bc := range []struct {
		name string
		m    []stackprint.Match
	}{
		{"no_match", nil},
		{"match", []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "c2", Confidence: "high"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e.Judge(ev, r, bc.m)
			}
		})
	}
}
