package enrich

import "testing"

func TestHashSet(t *testing.T) {
	h := newHashSet()
	for i := range 300000 {
		h.add(uint64(i%100000*7919) << 32)
	}
	if h.n != 100000 {
		t.Errorf("%d distinct, want 100000", h.n)
	}
}
