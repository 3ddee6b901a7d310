package enrich

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/stackprint/stackprint"
)

// ResultStore keeps the full results of cached targets out of memory (the
// daemon: a ResultFile), one per index entry. It is a cache: a result it
// lost or never got is probed again, so writes need not be durable. Tag
// is the exact key of the target the result belongs to; the pipeline
// compares it on every read, so a hash collision can never hand one
// target another's result.
type ResultStore interface {
	// ApplyResults writes, in order (a later write to a slot wins).
	ApplyResults(ops []ResultOp) error
	// GetResult reads what slot holds if it was written for k with that
	// expiry (Unix nanoseconds); ok is false for anything else.
	GetResult(slot uint32, k Key, expires int64) (st Stored, ok bool, err error)
}

// ResultOp is one store write: the result of k, the holder of index entry
// Slot until Expires.
type ResultOp struct {
	Slot    uint32
	Key     Key
	Expires int64
	Stored
}

// Stored is a judged target's result as a store keeps it: with its
// matches and the DB generation they were made at (matched again on use
// when the DB changed since).
type Stored struct {
	Tag     []byte
	Result  stackprint.Result
	Matches []stackprint.Match
	Gen     uint64
}

// DefaultHotResults is how many full results stay in memory by default
// when a ResultStore holds the rest.
const DefaultHotResults = 4096

// dedupCache is the pipeline's memory of targets (under Pipeline.mu):
//   - inflight: units queued or being probed, by exact key; bounded by the
//     events waiting in memory, never evicted (no second, concurrent probe);
//   - idx: every judged target as a 32-byte entry (hashes, expiry, flags,
//     LRU links): the authority on what is cached, until when;
//   - hot: the full results (and matches) of the most recently used
//     judged targets, a subset of idx (an entry leaves both at once), each
//     checked against the exact target on use; the rest are read back from
//     the ResultStore on demand. Without a store, hot can hold them all.
type dedupCache struct {
	keyer    Keyer
	idx      *Index
	inflight map[cacheKey]any // *name or *server, not done
	hot      *simplelru.LRU[Key, any]
	store    ResultStore

	// ops are the store writes made under Pipeline.mu, in order;
	// flushStore applies them outside it (one flusher at a time, so
	// their order holds). Nothing is ever deleted: a slot's record is
	// overwritten by its entry's next key, and a read checks the key and
	// expiry it wants.
	ops     []ResultOp
	flushMu sync.Mutex
}

func newDedupCache(capacity, hot int, store ResultStore) *dedupCache {
	c := &dedupCache{keyer: NewKeyer(), inflight: map[cacheKey]any{}, store: store}
	if store == nil {
		hot = capacity
	}
	c.hot, _ = simplelru.NewLRU[Key, any](max(hot, 1), nil)
	c.idx = NewIndex(capacity, func(k Key) { c.hot.Remove(k) })
	return c
}

func (c *dedupCache) key(ck cacheKey) Key { return c.keyer.Key(ck.t, ck.server) }

// tag is the exact form of ck a stored result is checked against.
func tagOf(ck cacheKey) []byte { return appendTarget(nil, ck.t, ck.server) }

// lookup is what the cache knows of ck at now: an entry in flight or a
// judged one in memory (v), a judged out-of-scope verdict (outOfScope),
// or a judged result to read from the store first (load). inScope
// re-checks the scope of an entry made before a scope change.
func (c *dedupCache) lookup(ck cacheKey, now time.Time, inScope func() bool) (v any, load, outOfScope bool) {
	if v, ok := c.inflight[ck]; ok {
		return v, false, false
	}
	k := c.key(ck)
	flags, ok := c.idx.Get(k, now)
	if !ok {
		return nil, false, false
	}
	if flags&FlagRecheck != 0 {
		if inScope() == (flags&FlagOutOfScope != 0) {
			c.forget(ck, k)
			return nil, false, false
		}
		c.idx.SetFlags(k, flags&^FlagRecheck)
	}
	if flags&FlagOutOfScope != 0 {
		return nil, false, true
	}
	if v, ok := c.hot.Get(k); ok {
		if !sameTarget(v, ck) {
			c.forget(ck, k) // two targets with one 96-bit key: neither is trusted
			return nil, false, false
		}
		return v, false, false
	}
	if c.store == nil {
		c.forget(ck, k)
		return nil, false, false
	}
	return nil, true, false
}

// forget drops a judged entry (its stored result is never read again:
// the next key of its slot overwrites it).
func (c *dedupCache) forget(ck cacheKey, k Key) {
	c.idx.Remove(k)
	c.hot.Remove(k)
}

// judged files a completed entry: out of flight, into the index until
// expires, its result in memory and (queued) in the store.
func (c *dedupCache) judged(ck cacheKey, v any, r stackprint.Result, expires time.Time) {
	if c.inflight[ck] == v {
		delete(c.inflight, ck)
	}
	k := c.key(ck)
	var flags uint8
	if r.Status == stackprint.StatusOutOfScope {
		flags = FlagOutOfScope // the scope changed while it waited
	}
	e := c.idx.Put(k, expires, flags)
	c.hot.Add(k, v)
	if c.store != nil {
		op := ResultOp{Slot: e, Key: k, Expires: expires.UnixNano(), Stored: Stored{Tag: tagOf(ck), Result: r}}
		switch v := v.(type) {
		case *name:
			op.Matches, op.Gen = v.matches, v.gen
		case *server:
			op.Matches, op.Gen = v.coreM, v.gen
		}
		c.ops = append(c.ops, op)
	}
}

// outOfScope files an out-of-scope verdict: nothing but the entry.
func (c *dedupCache) outOfScope(ck cacheKey, expires time.Time) {
	c.idx.Put(c.key(ck), expires, FlagOutOfScope)
}

// takeOps returns the queued store operations (under Pipeline.mu).
func (c *dedupCache) takeOps() []ResultOp {
	ops := c.ops
	c.ops = nil
	return ops
}

// sameTarget reports whether the entry v is the one of ck.
func sameTarget(v any, ck cacheKey) bool {
	switch e := v.(type) {
	case *name:
		return !ck.server && e.t == ck.t
	case *server:
		return ck.server && e.key == ck.t
	}
	return false
}

func (c *dedupCache) len() int { return c.idx.Len() + len(c.inflight) }
