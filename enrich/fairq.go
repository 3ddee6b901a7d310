package enrich

import (
	"container/heap"
	"net/netip"
	"time"
)

// bucket is a token bucket counted in connections. Unlike x/time/rate it
// can give back what a probe reserved and did not use (a tarpit abandoned
// after one connection, a probe cut short), and it answers "when will n
// tokens be there", which the fair queue needs to put an IP to sleep.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newBucket(rate float64, burst int, now time.Time) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

func (b *bucket) fill(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
}

// readyAt is when n tokens will be there (now or earlier: at once).
func (b *bucket) readyAt(now time.Time, n int) time.Time {
	b.fill(now)
	miss := float64(n) - b.tokens
	if miss <= 0 {
		return now
	}
	return now.Add(time.Duration(miss / b.rate * float64(time.Second)))
}

func (b *bucket) take(now time.Time, n int) { b.fill(now); b.tokens -= float64(n) }

func (b *bucket) refund(now time.Time, n int) {
	b.fill(now)
	b.tokens = min(b.burst, b.tokens+float64(n))
}

func (b *bucket) full(now time.Time) bool { b.fill(now); return b.tokens >= b.burst }

// fairQueue orders the probe units waiting for the network: round-robin
// over originating clients, and within a client round-robin over
// destination IPs, each IP's units first in, first out. An IP whose
// connection budget cannot pay for its next unit sleeps (off the rings)
// until it can, so a busy IP costs neither turns nor global budget. A unit
// wanted by several clients sits in each of their queues and goes at the
// earliest turn; the other references are skipped when they come up.
type fairQueue struct {
	clients map[netip.Addr]*clientQ
	ring    []*clientQ // clients with an awake IP queue
	pos     int
	sleep   sleepHeap
	units   int // live references, for metrics
}

type clientQ struct {
	addr   netip.Addr
	ips    map[netip.Addr]*ipQ
	ring   []*ipQ // awake IP queues
	pos    int
	inRing bool
}

type ipQ struct {
	c      *clientQ
	ip     netip.Addr
	units  []*unit
	head   int
	wake   time.Time
	asleep bool
	idx    int // in the sleep heap
}

func newFairQueue() *fairQueue {
	return &fairQueue{clients: map[netip.Addr]*clientQ{}}
}

// push adds a reference to u in client's queue for u's destination IP.
func (f *fairQueue) push(client netip.Addr, u *unit) {
	c := f.clients[client]
	if c == nil {
		c = &clientQ{addr: client, ips: map[netip.Addr]*ipQ{}}
		f.clients[client] = c
	}
	q := c.ips[u.ip()]
	if q == nil {
		q = &ipQ{c: c, ip: u.ip()}
		c.ips[q.ip] = q
		c.ring = append(c.ring, q)
	}
	q.units = append(q.units, u)
	f.units++
	if !c.inRing && len(c.ring) > 0 {
		c.inRing = true
		f.ring = append(f.ring, c)
	}
}

// next returns the next unit whose IP can pay for it now, taking it off the
// queue, or nil and the earliest time a sleeping IP wakes (zero: nothing
// waits at all). canPay reports when, seen at now, ip's budget covers cost.
func (f *fairQueue) next(now time.Time, canPay func(ip netip.Addr, cost int, now time.Time) time.Time) (*unit, time.Time) {
	for f.sleep.Len() > 0 && !f.sleep[0].wake.After(now) {
		q := heap.Pop(&f.sleep).(*ipQ)
		q.asleep = false
		f.awake(q)
	}
	for len(f.ring) > 0 {
		if f.pos >= len(f.ring) {
			f.pos = 0
		}
		c := f.ring[f.pos]
		u := f.fromClient(c, now, canPay)
		if len(c.ring) == 0 {
			// Nothing awake left for this client: off the ring until an
			// IP of it wakes or new work arrives.
			c.inRing = false
			f.ring = append(f.ring[:f.pos], f.ring[f.pos+1:]...)
			if len(c.ips) == 0 {
				delete(f.clients, c.addr)
			}
		} else if u != nil {
			f.pos++
		}
		if u != nil {
			return u, time.Time{}
		}
	}
	if f.sleep.Len() > 0 {
		return nil, f.sleep[0].wake
	}
	return nil, time.Time{}
}

// fromClient serves one unit of c, round-robin over its awake IP queues,
// putting to sleep the IPs that cannot pay.
func (f *fairQueue) fromClient(c *clientQ, now time.Time, canPay func(netip.Addr, int, time.Time) time.Time) *unit {
	for len(c.ring) > 0 {
		if c.pos >= len(c.ring) {
			c.pos = 0
		}
		q := c.ring[c.pos]
		u := q.peek(f)
		if u == nil { // empty: forget the queue
			c.ring = append(c.ring[:c.pos], c.ring[c.pos+1:]...)
			delete(c.ips, q.ip)
			continue
		}
		if at := canPay(q.ip, u.cost, now); at.After(now) {
			c.ring = append(c.ring[:c.pos], c.ring[c.pos+1:]...)
			q.wake, q.asleep = at, true
			heap.Push(&f.sleep, q)
			continue
		}
		q.pop(f)
		c.pos++
		return u
	}
	return nil
}

// awake puts a woken IP queue back on its client's ring.
func (f *fairQueue) awake(q *ipQ) {
	c := q.c
	c.ring = append(c.ring, q)
	if !c.inRing {
		c.inRing = true
		f.ring = append(f.ring, c)
	}
}

// peek returns the first unit still waiting, dropping references to units
// another client's turn already took.
func (q *ipQ) peek(f *fairQueue) *unit {
	for q.head < len(q.units) {
		u := q.units[q.head]
		if u.state == stateQueued {
			return u
		}
		q.pop(f)
	}
	return nil
}

func (q *ipQ) pop(f *fairQueue) {
	q.units[q.head] = nil
	q.head++
	f.units--
	if q.head > 64 && q.head*2 > len(q.units) {
		q.units = append(q.units[:0], q.units[q.head:]...)
		q.head = 0
	}
}

type sleepHeap []*ipQ

func (h sleepHeap) Len() int           { return len(h) }
func (h sleepHeap) Less(i, j int) bool { return h[i].wake.Before(h[j].wake) }
func (h sleepHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *sleepHeap) Push(x any)        { q := x.(*ipQ); q.idx = len(*h); *h = append(*h, q) }
func (h *sleepHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return q
}
