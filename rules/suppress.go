package rules

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/stackprint/stackprint"
)

// supKey is what one alert stands for: the client, the server and the rule.
type supKey struct {
	orig   netip.Addr
	target stackprint.Target
	rule   string
}

type supEntry struct {
	// When the last alert was let through. The window is added at each
	// check, not stored, so a reload that changes it applies at once to
	// windows already open.
	start      time.Time
	suppressed int // events held back since that alert
}

// suppressor allows one alert per key per window. It is bounded: a flood of
// distinct keys evicts the least recently alerted ones, which then alert
// again (failing open, never silently dropping a new key).
type suppressor struct {
	mu  sync.Mutex
	lru *simplelru.LRU[supKey, *supEntry]
}

func newSuppressor(capacity int) *suppressor {
	l, err := simplelru.NewLRU[supKey, *supEntry](capacity, nil)
	if err != nil {
		panic(err) // capacity > 0 is checked by the caller
	}
	return &suppressor{lru: l}
}

// allow reports whether an event at now may alert; when it may, n is the
// number of events suppressed since the key's previous alert. Times are
// event times, which are not monotonic (conn.log is written at connection
// end): an event older than the window's start is inside the window.
func (s *suppressor) allow(k supKey, now time.Time, window time.Duration) (ok bool, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, found := s.lru.Peek(k); found && now.Before(e.start.Add(window)) {
		e.suppressed++
		return false, 0
	} else if found {
		n = e.suppressed
		e.start, e.suppressed = now, 0
		s.lru.Get(k) // mark recently used
		return true, n
	}
	s.lru.Add(k, &supEntry{start: now})
	return true, 0
}

func (s *suppressor) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}
