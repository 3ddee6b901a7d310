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
	distinct *distinctSet

	// Deduped counts events whose target was in the LRU; OutOfScope and
	// ToProbe the LRU misses the scope denies or allows.
	Deduped, OutOfScope, ToProbe uint64
}

// NewDryRun is a dry run over scope with the daemon's dedup index: a
// fixed-size entry per target, exact LRU. A pass over files takes seconds,
// far below dedup.ttl: entries are filed with the pass's start time now.
func NewDryRun(scope *Scope, capacity int, ttl time.Duration, now time.Time) *DryRun {
	return &DryRun{scope: scope, cache: NewIndex(capacity, nil), keyer: NewKeyer(), now: now, ttl: ttl, distinct: newDistinctSet()}
}

// Distinct is the count of distinct targets seen (see distinctSet).
func (s *DryRun) Distinct() int { return s.distinct.count() }

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

// distinctSet counts distinct hashes in 4 bytes each, with sequential
// memory access only: hashes are appended to a buffer, which is radix
// sorted when full and merged into a sorted array of the distinct ones so
// far. (A hash table of a million targets is touched at random, a cache
// miss per new target: it cost more than parsing the line.) It keeps 32
// bits of each 64-bit hash, so two targets in about 10^4 collide at a
// million distinct ones and the count is that much low; exact for the
// counts tests use.
type distinctSet struct {
	buf, tmp []uint32 // pending hashes; radix sort scratch
	sorted   []uint32 // distinct hashes so far, ascending
	spare    []uint32 // the previous sorted array, reused for the next merge
}

// minDistinctBuf is the smallest pending buffer: 256 KiB.
const minDistinctBuf = 1 << 16

func newDistinctSet() *distinctSet {
	return &distinctSet{buf: make([]uint32, 0, minDistinctBuf)}
}

func (d *distinctSet) add(x64 uint64) {
	if len(d.buf) == cap(d.buf) {
		d.flush()
	}
	d.buf = append(d.buf, uint32(x64>>32))
}

// count is the number of distinct hashes added.
func (d *distinctSet) count() int {
	d.flush()
	return len(d.sorted)
}

// flush sorts the pending hashes and merges them in. The buffer grows with
// the set (a quarter of it), so that each hash is merged a bounded number
// of times per doubling.
func (d *distinctSet) flush() {
	if len(d.buf) == 0 {
		return
	}
	d.tmp = radixSort32(d.buf, d.tmp[:0])
	out := d.spare[:0]
	a, b := d.sorted, d.buf
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case b[0] < a[0]:
			out = appendUnique(out, b[0])
			b = b[1:]
		default:
			b = b[1:] // already counted
		}
	}
	out = append(out, a...)
	for _, x := range b {
		out = appendUnique(out, x)
	}
	d.spare, d.sorted = d.sorted, out
	if want := max(minDistinctBuf, len(out)/4); cap(d.buf) < want {
		d.buf, d.tmp = make([]uint32, 0, want), nil
	} else {
		d.buf = d.buf[:0]
	}
}

func appendUnique(out []uint32, x uint32) []uint32 {
	if len(out) > 0 && out[len(out)-1] == x {
		return out
	}
	return append(out, x)
}

// radixSort32 sorts v in place (least significant byte first, four
// passes through tmp) and returns tmp for reuse.
func radixSort32(v, tmp []uint32) []uint32 {
	if cap(tmp) < len(v) {
		tmp = make([]uint32, len(v))
	}
	tmp = tmp[:len(v)]
	src, dst := v, tmp
	for shift := 0; shift < 32; shift += 8 {
		var count [256]int
		for _, x := range src {
			count[byte(x>>shift)]++
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, x := range src {
			b := byte(x >> shift)
			dst[count[b]] = x
			count[b]++
		}
		src, dst = dst, src
	}
	return tmp // four passes: the sorted data is back in v
}
