package enrich

import (
	"container/list"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/stackprint/stackprint"
)

// refLRU is the obvious model of Index: a list in recency order and a map.
type refLRU struct {
	cap   int
	order *list.List // of Key, front = most recent
	at    map[Key]*list.Element
	exp   map[Key]int64
	flags map[Key]uint8
	drops []Key
}

func (r *refLRU) get(k Key, now int64) (uint8, bool) {
	el, ok := r.at[k]
	if !ok {
		return 0, false
	}
	if now >= r.exp[k] {
		r.del(k)
		r.drops = append(r.drops, k)
		return 0, false
	}
	r.order.MoveToFront(el)
	return r.flags[k], true
}

func (r *refLRU) put(k Key, exp int64, f uint8) {
	if el, ok := r.at[k]; ok {
		r.exp[k], r.flags[k] = exp, f
		r.order.MoveToFront(el)
		return
	}
	if len(r.at) >= r.cap {
		old := r.order.Back().Value.(Key)
		r.del(old)
		r.drops = append(r.drops, old)
	}
	r.at[k] = r.order.PushFront(k)
	r.exp[k], r.flags[k] = exp, f
}

func (r *refLRU) del(k Key) {
	r.order.Remove(r.at[k])
	delete(r.at, k)
	delete(r.exp, k)
	delete(r.flags, k)
}

// TestIndexMatchesAnLRUModel runs random gets, puts, removes and expiries
// against Index and the model: same answers, same evictions in the same
// order, same recency order. Keys share low bits on purpose, so the probe
// chains are long and backward-shift deletion is exercised across wraps.
func TestIndexMatchesAnLRUModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, capacity := range []int{1, 7, 64, 1000} {
		var drops []Key
		x := NewIndex(capacity, func(k Key) { drops = append(drops, k) })
		ref := &refLRU{cap: capacity, order: list.New(), at: map[Key]*list.Element{}, exp: map[Key]int64{}, flags: map[Key]uint8{}}
		keys := make([]Key, 3*capacity+5)
		for i := range keys {
			// Few distinct low bits: heavy clustering in the table.
			keys[i] = Key{H1: uint64(rng.IntN(8)) | uint64(i)<<40, H2: uint32(i)}
		}
		// Same H1, different H2: only the second hash tells them apart.
		keys[1].H1 = keys[0].H1
		now := int64(1_000_000)
		for step := range 20000 {
			k := keys[rng.IntN(len(keys))]
			switch op := rng.IntN(10); {
			case op < 5:
				f1, ok1 := x.Get(k, time.Unix(0, now))
				f2, ok2 := ref.get(k, now)
				if ok1 != ok2 || f1 != f2 {
					t.Fatalf("cap %d step %d: Get(%v) = %d,%v, model %d,%v", capacity, step, k, f1, ok1, f2, ok2)
				}
			case op < 9:
				exp := now + int64(rng.IntN(50))
				f := uint8(rng.IntN(2))
				x.Put(k, time.Unix(0, exp), f)
				ref.put(k, exp, f)
			default:
				x.Remove(k)
				if _, ok := ref.at[k]; ok {
					ref.del(k)
				}
			}
			now += int64(rng.IntN(3))
			if x.Len() != len(ref.at) {
				t.Fatalf("cap %d step %d: Len %d, model %d", capacity, step, x.Len(), len(ref.at))
			}
		}
		var order []Key
		x.Range(func(k Key, _ uint8) bool { order = append(order, k); return true })
		i := 0
		for el := ref.order.Front(); el != nil; el = el.Next() {
			if order[i] != el.Value.(Key) {
				t.Fatalf("cap %d: recency order differs at %d", capacity, i)
			}
			i++
		}
		if len(drops) != len(ref.drops) {
			t.Fatalf("cap %d: %d drops, model %d", capacity, len(drops), len(ref.drops))
		}
		for i := range drops {
			if drops[i] != ref.drops[i] {
				t.Fatalf("cap %d: drop %d is %v, model %v", capacity, i, drops[i], ref.drops[i])
			}
		}
	}
}

func TestKeysOfDifferentTargetsDiffer(t *testing.T) {
	k := NewKeyer()
	ip := netip.MustParseAddr("192.0.2.1")
	ts := []stackprint.Target{
		{IP: ip, Port: 443},
		{IP: ip, Port: 443, SNI: "a"},
		{IP: ip, Port: 444},
		{IP: ip, Port: 443, StartTLS: "a"}, // not the same as SNI "a"
		{IP: netip.MustParseAddr("::ffff:192.0.2.1"), Port: 443},
		{IP: ip, Port: 443, SNI: "ab"},
		{IP: ip, Port: 443, SNI: "a", StartTLS: "b"},
	}
	seen := map[Key]stackprint.Target{}
	for _, tg := range ts {
		for _, server := range []bool{false, true} {
			key := k.Key(tg, server)
			if o, dup := seen[key]; dup {
				t.Fatalf("%v (server %v) has the key of %v", tg, server, o)
			}
			seen[key] = tg
			if k.Key(tg, server) != key {
				t.Fatal("Key is not deterministic")
			}
		}
	}
}

// TestIndexCostPerKey keeps the cost per cached target in check.
func TestIndexCostPerKey(t *testing.T) {
	x := NewIndex(100000, nil)
	for i := range 100000 {
		x.Put(Key{H1: uint64(i) * 0x9E3779B97F4A7C15, H2: uint32(i)}, time.Unix(1<<40, 0), 0)
	}
	perKey := float64(len(x.ents)*int(unsafe.Sizeof(dedupEntry{}))+len(x.slots)*8) / float64(x.Len())
	t.Logf("index: %.1f bytes per key at 100,000 keys", perKey)
	if perKey > 56 {
		t.Errorf("index costs %.1f bytes per key, want <= 56", perKey)
	}
}

// BenchmarkIndex: a hit (20,000 recurring keys) against a miss (every key
// new: lookup, eviction of the least recently used, insert) at the default
// capacity, with the keys hashed from targets as the pipeline does.
func BenchmarkIndex(b *testing.B) {
	k := NewKeyer()
	for _, c := range []struct {
		name     string
		distinct int
	}{{"hit-20k", 20000}, {"miss-1M", 1 << 20}} {
		b.Run(c.name, func(b *testing.B) {
			x := NewIndex(100000, nil)
			now := time.Unix(1700000000, 0)
			exp := now.Add(time.Hour)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				n := uint32(i % c.distinct)
				t := stackprint.Target{IP: netip.AddrFrom4([4]byte{11, byte(n >> 16), byte(n >> 8), byte(n)}), Port: 443}
				key := k.Key(t, false)
				if _, ok := x.Get(key, now); !ok {
					x.Put(key, exp, 0)
				}
			}
		})
	}
}

// TestAnEntryUnderAnotherTargetsKeyIsNeverUsed plants, as a hash
// collision would, the judged entry of one target under the key of
// another: the other target's lookup misses (and is probed), it never gets
// that verdict.
func TestAnEntryUnderAnotherTargetsKeyIsNeverUsed(t *testing.T) {
	c := newDedupCache(100, 100, nil)
	a := cacheKey{t: stackprint.Target{IP: netip.MustParseAddr("192.0.2.1"), Port: 443}}
	b := cacheKey{t: stackprint.Target{IP: netip.MustParseAddr("192.0.2.2"), Port: 443}}
	now := time.Unix(1700000000, 0)
	kb := c.key(b)
	c.idx.Put(kb, now.Add(time.Hour), 0)
	c.hot.Add(kb, &name{t: a.t, state: stateDone, result: stackprint.Result{Target: a.t, Status: stackprint.StatusOK, JARM: badJARM}})
	v, load, oos := c.lookup(b, now, func() bool { return true })
	if v != nil || load || oos {
		t.Fatalf("lookup of %v = %v, %v, %v; want a miss", b.t, v, load, oos)
	}
	if c.idx.Has(kb, now) {
		t.Fatal("the colliding entry is still indexed")
	}
}
