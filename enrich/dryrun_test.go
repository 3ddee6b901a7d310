package enrich

import (
	"math/rand/v2"
	"testing"
)

func TestDistinctSet(t *testing.T) {
	d := newDistinctSet()
	for i := range 300000 {
		d.add(uint64(i%100000*7919) << 32)
	}
	if n := d.count(); n != 100000 {
		t.Errorf("%d distinct, want 100000", n)
	}
	// Counting again, and adding after a count, stays exact.
	d.add(uint64(7919) << 32)
	d.add(uint64(100001) << 32)
	if n := d.count(); n != 100001 {
		t.Errorf("%d distinct, want 100001", n)
	}
}

// TestDistinctSetRandom compares with a map over random hashes with
// repeats, across several merges of a growing buffer.
func TestDistinctSetRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d := newDistinctSet()
	seen := map[uint32]bool{}
	pool := make([]uint64, 400000)
	for i := range pool {
		pool[i] = rng.Uint64()
	}
	for i := range 1000000 {
		x := pool[rng.IntN(len(pool))]
		if i%3 == 0 {
			x = rng.Uint64()
		}
		d.add(x)
		seen[uint32(x>>32)] = true
		if i%250000 == 0 && d.count() != len(seen) {
			t.Fatalf("after %d: %d distinct, want %d", i+1, d.count(), len(seen))
		}
	}
	if d.count() != len(seen) {
		t.Fatalf("%d distinct, want %d", d.count(), len(seen))
	}
}
