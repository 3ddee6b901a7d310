package enrich

import (
	"context"
	"net/netip"
	"runtime"
	"time"

	"github.com/stackprint/stackprint"
)

// DryRun is the dedup and scope step of Pipeline.Handle without the
// prober: a target in the LRU is deduped; a new one is checked against the
// scope and remembered either way. Events are taken in batches, in order:
// the index slots of a batch are read together first, so that a million
// new servers (a cache miss each, in tables far larger than the cache)
// cost about what recurring ones do. Call Flush before reading the counts.
type DryRun struct {
	scope    *Scope
	cache    *Index
	keyer    Keyer
	now      time.Time
	ttl      time.Duration
	distinct *hashSet
	pend     []dryTarget
	touched  uint64 // keeps the batch's reads

	// Deduped counts events whose target was in the LRU; OutOfScope and
	// ToProbe the LRU misses the scope denies or allows.
	Deduped, OutOfScope, ToProbe uint64
}

type dryTarget struct {
	k  Key
	ap netip.AddrPort
}

// dryRunBatch is how many events wait to be looked up together.
const dryRunBatch = 32

// NewDryRun is a dry run over scope with the daemon's dedup index: a
// fixed-size entry per target, exact LRU. A pass over files takes seconds,
// far below dedup.ttl: entries are filed with the pass's start time now.
func NewDryRun(scope *Scope, capacity int, ttl time.Duration, now time.Time) *DryRun {
	return &DryRun{scope: scope, cache: NewIndex(capacity, nil), keyer: NewKeyer(), now: now, ttl: ttl,
		distinct: newHashSet(), pend: make([]dryTarget, 0, dryRunBatch)}
}

// Distinct is the count of distinct targets seen (see hashSet), after
// Flush.
func (s *DryRun) Distinct() int { return s.distinct.n }

// Handle is the tailer handler of the dry run.
func (s *DryRun) Handle(_ context.Context, ev stackprint.Event) error {
	t := ev.Target()
	s.pend = append(s.pend, dryTarget{s.keyer.Key(t, false), t.Addr()})
	if len(s.pend) == cap(s.pend) {
		s.Flush()
	}
	return nil
}

// Flush looks up the events waiting in the batch.
func (s *DryRun) Flush() {
	var sum uint64
	for _, p := range s.pend {
		sum += s.cache.Touch(p.k) + uint64(s.distinct.touch(p.k.H1))
	}
	s.touched += sum + s.cache.TouchVictims(len(s.pend))
	for _, p := range s.pend {
		s.handle(p.k, p.ap)
	}
	s.pend = s.pend[:0]
}

func (s *DryRun) handle(k Key, ap netip.AddrPort) {
	if _, ok := s.cache.Get(k, s.now); ok {
		s.Deduped++ // counted in distinct when it was added
		return
	}
	s.distinct.add(k.H1)
	var flags uint8
	if s.scope.Allows(ap) {
		s.ToProbe++
	} else {
		s.OutOfScope++
		flags = FlagOutOfScope
	}
	s.cache.Put(k, s.now.Add(s.ttl), flags)
}

// hashSet counts distinct hashes in 4 bytes per slot (open addressing,
// linear probing, at most half full): 8 MB for a million targets. It keeps
// 32 bits of each 64-bit hash, so two targets in about 10^4 collide at a
// million distinct ones and the count is that much low; exact for the
// counts tests use. The table lives outside the Go heap, in huge pages
// where the system gives them: filled at random, 4 KiB pages cost a page
// fault each and a TLB miss per lookup (a fifth of a scan's CPU with a
// million new servers).
type hashSet struct {
	slots []uint32
	n     int
	mem   *hashMem
}

type hashMem struct{ b []byte }

func newHashSet() *hashSet {
	h := &hashSet{mem: &hashMem{}}
	h.slots, h.mem.b = hugeTable(1 << 16)
	runtime.AddCleanup(h, func(m *hashMem) { unmap(m.b) }, h.mem)
	return h
}

// hugeTable is a zeroed table outside the Go heap, in huge pages if it is
// large enough and the system agrees.
func hugeTable(n int) ([]uint32, []byte) {
	t, mem := offHeap[uint32](n)
	hugePages(mem)
	return t, mem
}

func (h *hashSet) add(x64 uint64) {
	x := uint32(x64 >> 32)
	if x == 0 {
		x = 1 // 0 marks an empty slot
	}
	if 2*(h.n+1) > len(h.slots) {
		old, oldMem := h.slots, h.mem.b
		h.slots, h.mem.b = hugeTable(2 * len(old))
		h.n = 0
		for _, v := range old {
			if v != 0 {
				h.insert(v)
			}
		}
		unmap(oldMem)
	}
	h.insert(x)
}

// touch reads the slot where x64 would be filed first (see Index.Touch).
func (h *hashSet) touch(x64 uint64) uint32 {
	x := uint32(x64 >> 32)
	return h.slots[(x*0x9E3779B1)&uint32(len(h.slots)-1)]
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
