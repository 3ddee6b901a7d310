package enrich

import (
	"context"
	"time"

	"github.com/stackprint/stackprint"
)

// DryRun is the dedup and scope step of Pipeline.Handle without the
// prober: a target in the LRU is deduped; a new one is checked against the
// scope and remembered either way.
type DryRun struct {
	scope    *Scope
	cache    *Index
	keyer    Keyer
	now      time.Time
	ttl      time.Duration
	distinct *hashSet

	// Deduped counts events whose target was in the LRU; OutOfScope and
	// ToProbe the LRU misses the scope denies or allows.
	Deduped, OutOfScope, ToProbe uint64
}

// NewDryRun is a dry run over scope with the daemon's dedup index: a
// fixed-size entry per target, exact LRU. A pass over files takes seconds,
// far below dedup.ttl: entries are filed with the pass's start time now.
func NewDryRun(scope *Scope, capacity int, ttl time.Duration, now time.Time) *DryRun {
	return &DryRun{scope: scope, cache: NewIndex(capacity, nil), keyer: NewKeyer(), now: now, ttl: ttl, distinct: newHashSet()}
}

// Distinct is the count of distinct targets seen (see hashSet).
func (s *DryRun) Distinct() int { return s.distinct.n }

// Handle is the tailer handler of the dry run.

func (s *DryRun) Handle(_ context.Context, ev stackprint.Event) error {
	t := ev.Target()
	k := s.keyer.Key(t, false)
	if _, ok := s.cache.Get(k, s.now); ok {
		s.Deduped++ // counted in distinct when it was added
		return nil
	}
	s.distinct.add(k.H1)
	var flags uint8
	if s.scope.Allows(t.Addr()) {
		s.ToProbe++
	} else {
		s.OutOfScope++
		flags = FlagOutOfScope
	}
	s.cache.Put(k, s.now.Add(s.ttl), flags)
	return nil
}

// hashSet counts distinct hashes in 4 bytes per slot (open addressing,
// linear probing, at most half full): 8 MB for a million targets. It keeps
// 32 bits of each 64-bit hash, so two targets in about 10^4 collide at a
// million distinct ones and the count is that much low; exact for the
// counts tests use.
type hashSet struct {
	slots []uint32
	n     int
}

func newHashSet() *hashSet { return &hashSet{slots: make([]uint32, 1<<16)} }

func (h *hashSet) add(x64 uint64) {
	x := uint32(x64 >> 32)
	if x == 0 {
		x = 1 // 0 marks an empty slot
	}
	if 2*(h.n+1) > len(h.slots) {
		old := h.slots
		h.slots, h.n = make([]uint32, 2*len(old)), 0
		for _, v := range old {
			if v != 0 {
				h.insert(v)
			}
		}
	}
	h.insert(x)
}

func (h *hashSet) insert(x uint32) {
	mask := uint32(len(h.slots) - 1)
	// Slot from the low bits of a multiplicative hash of x (x itself is
	// already uniform; the multiply spreads runs of similar values).
	for i := (x * 0x9E3779B1) & mask; ; i = (i + 1) & mask {
		switch h.slots[i] {
		case x:
			return
		case 0:
			h.slots[i] = x
			h.n++
			return
		}
	}
}
