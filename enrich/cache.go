package enrich

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/stackprint/stackprint"
)

// ResultStore keeps the full results of cached targets out of memory (the
// daemon: a bbolt file). It is a cache: a result it lost or never got is
// probed again, so writes need not be durable. tag is the exact key of
// the target the result belongs to; the pipeline compares it on every
// read, so a hash collision can never hand one target another's result.
type ResultStore interface {
	// ApplyResults writes and deletes, in order.
	ApplyResults(ops []ResultOp) error
	GetResult(k Key) (tag []byte, r stackprint.Result, ok bool, err error)
}

// ResultOp is one store write (Result set) or delete (Result nil).
type ResultOp struct {
	Key    Key
	Tag    []byte
	Result *stackprint.Result
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

	// ops are the store writes and deletes made under Pipeline.mu, in
	// order; flushStore applies them outside it (one flusher at a time,
	// so their order holds).
	ops     []ResultOp
	flushMu sync.Mutex
}

// maxPendingDeletes bounds the deletes waiting for a flush; past it they
// are dropped (a stale row costs disk, never a wrong verdict: the index no
// longer holds its key, and a later put overwrites it).
const maxPendingDeletes = 1 << 16

func newDedupCache(capacity, hot int, store ResultStore) *dedupCache {
	c := &dedupCache{keyer: NewKeyer(), inflight: map[cacheKey]any{}, store: store}
	if store == nil {
		hot = capacity
	}
	c.hot, _ = simplelru.NewLRU[Key, any](max(hot, 1), nil)
	c.idx = NewIndex(capacity, func(k Key) {
		c.hot.Remove(k)
		if c.store != nil && len(c.ops) < maxPendingDeletes {
			c.ops = append(c.ops, ResultOp{Key: k})
		}
	})
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

// forget drops a judged entry and its stored result.
func (c *dedupCache) forget(ck cacheKey, k Key) {
	c.idx.Remove(k)
	c.hot.Remove(k)
	if c.store != nil {
		c.ops = append(c.ops, ResultOp{Key: k})
	}
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
	c.idx.Put(k, expires, flags)
	c.hot.Add(k, v)
	if c.store != nil {
		c.ops = append(c.ops, ResultOp{Key: k, Tag: tagOf(ck), Result: &r})
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
