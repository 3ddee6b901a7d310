package enrich

import (
	"encoding/binary"
	"hash/maphash"
	"runtime"
	"time"

	"github.com/stackprint/stackprint"
)

// Key is a dedup key: two independent hashes of a target (and whether it
// names the server or one of its names). A million keys cost 32 bytes each
// in the index, never the target's strings. Two different targets share
// a Key with probability about 2^-96; the pipeline still never attaches
// another target's verdict, because a cached result is checked against
// its exact target when it is read back.
type Key struct {
	H1 uint64
	H2 uint32
}

// Bytes is k in 12 bytes (a store's row key).
func (k Key) Bytes() [12]byte {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:], k.H1)
	binary.BigEndian.PutUint32(b[8:], k.H2)
	return b
}

// Keyer hashes targets into Keys with seeds of its own (one per process:
// Keys are never stored across restarts).
type Keyer struct{ s1, s2 maphash.Seed }

// NewKeyer returns a Keyer with fresh random seeds.
func NewKeyer() Keyer { return Keyer{maphash.MakeSeed(), maphash.MakeSeed()} }

// Key hashes t; server selects the server key (t without its name).
func (k Keyer) Key(t stackprint.Target, server bool) Key {
	var a [96]byte
	b := appendTarget(a[:0], t, server)
	return Key{H1: maphash.Bytes(k.s1, b), H2: uint32(maphash.Bytes(k.s2, b))}
}

// appendTarget is the canonical byte form of a dedup key: the 16-byte
// address, the zone-free form being what events carry, the port, the
// kind and the lengths of the strings, so no two keys share a form.
func appendTarget(b []byte, t stackprint.Target, server bool) []byte {
	ip := t.IP.As16()
	b = append(b, ip[:]...)
	if t.IP.Is4() {
		b = append(b, 4)
	} else {
		b = append(b, 6)
	}
	b = binary.BigEndian.AppendUint16(b, t.Port)
	if server {
		b = append(b, 's')
	} else {
		b = append(b, 'n')
	}
	b = append(b, byte(len(t.StartTLS)))
	b = append(b, t.StartTLS...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.SNI)))
	return append(b, t.SNI...)
}

// Entry flags.
const (
	// FlagOutOfScope: the verdict is "out of scope"; nothing is stored.
	FlagOutOfScope uint8 = 1 << iota
	// FlagRecheck: the scope changed since the entry was made; its
	// verdict holds only if the scope still says the same.
	FlagRecheck
)

// dedupEntry is one remembered target: 32 bytes.
type dedupEntry struct {
	h1         uint64
	h2         uint32
	flags      uint8
	_          [3]byte
	expires    int64 // Unix nanoseconds
	prev, next uint32
}

func (e *dedupEntry) key() Key { return Key{e.h1, e.h2} }

// Index is the dedup cache's index: a fixed-size entry per remembered key
// in one slice, found through an open-addressing table (linear probing,
// at most half full) whose slots hold the entry number and the low 32 bits
// of the key's first hash (the slot is found, and moved on deletion,
// without reading the entry), in exact least-recently-used order by links
// inside the entries. About 48 bytes per key in all. Each
// entry expires at its own time (a success and a failure live differently
// long); at capacity the least recently used entry is evicted.
//
// Not safe for concurrent use.
type Index struct {
	ents       []dedupEntry // ents[0] is unused: 0 means none
	slots      []uint64     // entry number << 32 | uint32(H1); 0: empty
	mask       uint64
	free       uint32 // head of the free entries (linked by next)
	head, tail uint32 // most and least recently used
	n, cap     int
	evictions  uint64
	onDrop     func(Key) // evicted or expired (not for Remove)
	mem        *mappings
}

// mappings are the index's memory outside the Go heap, unmapped when the
// index is collected.
type mappings struct{ ents, slots []byte }

// NewIndex returns an empty index holding at most capacity keys; onDrop,
// when not nil, is told every key evicted or found expired.
func NewIndex(capacity int, onDrop func(Key)) *Index {
	capacity = max(capacity, 1)
	x := &Index{cap: capacity, onDrop: onDrop}
	// The entries are reserved for the whole capacity and filled in
	// order (pages resident as they are reached); the table, touched at
	// random, doubles as the entries grow. Both live outside the Go heap.
	x.mem = &mappings{}
	x.ents, x.mem.ents = offHeap[dedupEntry](capacity + 1)
	x.ents = x.ents[:1]
	x.slots, x.mem.slots = offHeap[uint64](tableSize(min(capacity, 1024)))
	x.mask = uint64(len(x.slots) - 1)
	runtime.AddCleanup(x, func(m *mappings) { unmap(m.ents); unmap(m.slots) }, x.mem)
	return x
}

// tableSize is the power of two at least twice n.
func tableSize(n int) int {
	s := 16
	for s < 2*n {
		s <<= 1
	}
	return s
}

// Len is the number of keys held (expired ones included until they are
// looked up or evicted).
func (x *Index) Len() int { return x.n }

// Evictions counts the keys evicted at capacity.
func (x *Index) Evictions() uint64 { return x.evictions }

// find returns the entry number of k, or 0.
func (x *Index) find(k Key) uint32 {
	low := uint64(uint32(k.H1))
	for i := k.H1 & x.mask; ; i = (i + 1) & x.mask {
		s := x.slots[i]
		if s == 0 {
			return 0
		}
		if s&0xffffffff != low {
			continue
		}
		if e := uint32(s >> 32); x.ents[e].h1 == k.H1 && x.ents[e].h2 == k.H2 {
			return e
		}
	}
}

// Touch reads the table slot where k would be found first, and returns
// it only so that the read is kept: a caller that knows the next keys
// touches them all before it looks them up, so that their cache misses
// overlap instead of following each other.
func (x *Index) Touch(k Key) uint64 { return x.slots[k.H1&x.mask] }

// TouchVictims reads the table slots of the next n entries an insert into
// a full index would evict (see Touch).
func (x *Index) TouchVictims(n int) uint64 {
	if x.n < x.cap {
		return 0
	}
	var sum uint64
	for e := x.tail; e != 0 && n > 0; e, n = x.ents[e].prev, n-1 {
		sum += x.slots[x.ents[e].h1&x.mask]
	}
	return sum
}

func slot(e uint32, h1 uint64) uint64 { return uint64(e)<<32 | uint64(uint32(h1)) }

// Get reports whether k is held and not expired at now, with its flags;
// a hit becomes the most recently used. An expired entry is dropped.
func (x *Index) Get(k Key, now time.Time) (flags uint8, ok bool) {
	e := x.find(k)
	if e == 0 {
		return 0, false
	}
	if now.UnixNano() >= x.ents[e].expires {
		x.remove(e)
		if x.onDrop != nil {
			x.onDrop(k)
		}
		return 0, false
	}
	x.toFront(e)
	return x.ents[e].flags, true
}

// Has reports whether k is held and not expired at now, changing nothing.
func (x *Index) Has(k Key, now time.Time) bool {
	e := x.find(k)
	return e != 0 && now.UnixNano() < x.ents[e].expires
}

// Entry returns the entry number of k (1..capacity, 0 when not held) and
// its expiry in Unix nanoseconds. The number stays k's while k is held: a
// result file keeps k's result in that slot.
func (x *Index) Entry(k Key) (e uint32, expires int64) {
	if e = x.find(k); e != 0 {
		expires = x.ents[e].expires
	}
	return e, expires
}

// Put holds k until expires with flags, as the most recently used,
// evicting the least recently used key when the index is full. It returns
// k's entry number.
func (x *Index) Put(k Key, expires time.Time, flags uint8) uint32 {
	if e := x.find(k); e != 0 {
		x.ents[e].expires, x.ents[e].flags = expires.UnixNano(), flags
		x.toFront(e)
		return e
	}
	if x.n >= x.cap {
		old := x.ents[x.tail].key()
		x.remove(x.tail)
		x.evictions++
		if x.onDrop != nil {
			x.onDrop(old)
		}
	}
	if 2*(x.n+1) > len(x.slots) {
		x.rehash(2 * len(x.slots))
	}
	e := x.free
	if e != 0 {
		x.free = x.ents[e].next
	} else {
		x.ents = x.ents[:len(x.ents)+1] // within the reserved capacity: n < cap
		e = uint32(len(x.ents) - 1)
	}
	x.ents[e] = dedupEntry{h1: k.H1, h2: k.H2, flags: flags, expires: expires.UnixNano()}
	for i := k.H1 & x.mask; ; i = (i + 1) & x.mask {
		if x.slots[i] == 0 {
			x.slots[i] = slot(e, k.H1)
			break
		}
	}
	x.n++
	x.linkFront(e)
	return e
}

// Remove drops k if held.
func (x *Index) Remove(k Key) {
	if e := x.find(k); e != 0 {
		x.remove(e)
	}
}

// SetFlags sets the flags of k if held.
func (x *Index) SetFlags(k Key, flags uint8) {
	if e := x.find(k); e != 0 {
		x.ents[e].flags = flags
	}
}

// MarkAll sets flag on every entry (a scope change: each verdict is
// checked again at its next hit).
func (x *Index) MarkAll(flag uint8) {
	for e := x.head; e != 0; e = x.ents[e].next {
		x.ents[e].flags |= flag
	}
}

// Range calls f with every key held, most recently used first, until f
// returns false.
func (x *Index) Range(f func(Key, uint8) bool) {
	for e := x.head; e != 0; e = x.ents[e].next {
		if !f(x.ents[e].key(), x.ents[e].flags) {
			return
		}
	}
}

func (x *Index) rehash(size int) {
	old, oldMem := x.slots, x.mem.slots
	defer unmap(oldMem)
	x.slots, x.mem.slots = offHeap[uint64](size)
	x.mask = uint64(size - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		for i := s & x.mask; ; i = (i + 1) & x.mask {
			if x.slots[i] == 0 {
				x.slots[i] = s
				break
			}
		}
	}
}

// remove unlinks entry e and frees its table slot by backward shifting
// (linear probing without tombstones: lookups stay short after many
// evictions).
func (x *Index) remove(e uint32) {
	want := slot(e, x.ents[e].h1)
	i := want & x.mask
	for x.slots[i] != want {
		i = (i + 1) & x.mask
	}
	j := i
	for {
		j = (j + 1) & x.mask
		s := x.slots[j]
		if s == 0 {
			break
		}
		home := s & x.mask // mask < 2^32: the low bits of H1 are in the slot
		// The entry at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = 0
	x.unlink(e)
	x.ents[e] = dedupEntry{next: x.free}
	x.free = e
	x.n--
}

func (x *Index) linkFront(e uint32) {
	x.ents[e].prev, x.ents[e].next = 0, x.head
	if x.head != 0 {
		x.ents[x.head].prev = e
	}
	x.head = e
	if x.tail == 0 {
		x.tail = e
	}
}

func (x *Index) unlink(e uint32) {
	p, n := x.ents[e].prev, x.ents[e].next
	if p != 0 {
		x.ents[p].next = n
	} else {
		x.head = n
	}
	if n != 0 {
		x.ents[n].prev = p
	} else {
		x.tail = p
	}
}

func (x *Index) toFront(e uint32) {
	if x.head == e {
		return
	}
	x.unlink(e)
	x.linkFront(e)
}
