package enrich

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/stackprint/stackprint"
)

// Prober fingerprints one target with the given kinds (nil: all it has);
// jarmSNI is the server_name of the JARM ClientHellos. It must return
// within ctx's deadline.
type Prober interface {
	ProbeWith(ctx context.Context, t stackprint.Target, jarmSNI string, o stackprint.ProbeOptions) stackprint.Result
}

// Matcher looks a result's fingerprints up in the fingerprint DB.
type Matcher interface {
	Match(r stackprint.Result) ([]stackprint.Match, error)
}

// Judge turns an event, its target's result and the DB matches into
// verdicts. done lists the rules that already fired on this event with
// the server-level part of the result; they are not run again when the
// name-level part completes it.
type Judge interface {
	JudgeRest(ev stackprint.Event, r stackprint.Result, m []stackprint.Match, done []string) []stackprint.Verdict
}

// Sink receives one fingerprint record per probed target and the alerts.
// Both must be durable when they return: the tailer's position may move
// past the event afterwards.
type Sink interface {
	Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error
	Alert(a stackprint.Alert) error
}

// Config holds the scheduling and caching limits.
type Config struct {
	Scope       *Scope
	TTL         time.Duration // cache lifetime of a successful result
	NegativeTTL time.Duration // cache lifetime of a failed or out-of-scope result
	Capacity    int           // dedup LRU size (servers and names)
	// Results holds the full results of judged targets beyond the
	// HotResults most recently used, read back on their next event; nil:
	// all stay in memory (about 1 KiB each, more with ATSF).
	Results    ResultStore
	HotResults int // 0 → DefaultHotResults

	// Kinds probed once per server (ip, port): JARM with the IP literal,
	// ATSF with the first name seen. NameKinds are fetched once per
	// (ip, port, sni): certificate and HTTP Server. The server probe also
	// takes NameKinds for its first name. Cost: connections each costs at
	// most (probe.Engine.Conns).
	ServerKinds, NameKinds []string
	ServerCost, NameCost   int

	MaxInFlight     int     // probes waiting on the network at once
	ProbesPerSecond float64 // global rate, in full server probes (ServerCost connections each)
	Burst           int     // global burst, in full server probes
	ConnsPerIP      float64 // new connections per second to one destination IP
	ConnsPerIPBurst int
	Deadline        time.Duration // hard per-probe budget
	TarpitDeadline  time.Duration // deadline for an IP that recently did not answer; default min(Deadline, 3s)
	DrainTimeout    time.Duration // at shutdown, how long probes in flight may finish; default 5s
	// NameShare is the part of the global connection budget name probes
	// may take (they go first within it); server probes have the rest and
	// whatever names leave. Default 0.25.
	NameShare float64
	// AnswerGrace is how long a new server probe holds its whole share of
	// the global budget before it has answered its first ClientHello;
	// past it, only what it used (a tarpit: one connection). It pays the
	// rest when it answers. Default 250ms.
	AnswerGrace     time.Duration
	JARMSNIObserved bool // send the observed SNI instead of the IP literal (JARM then depends on the name)

	// MemEvents bounds the events waiting in memory; past it, events of
	// the clients holding the most are spilled to the backlog (Spill) and
	// loaded back (Load) as room frees, fairly across clients. 0 → 10000.
	MemEvents int
	// BacklogMax bounds the spilled events; at the bound Handle waits
	// (the inputs stop reading: nothing is lost) and the alarm is raised.
	// 0 → 10,000,000.
	BacklogMax int
	// MaxWait is the age limit: an event still without a verdict this
	// long after it was first queued ends as expired (counted, logged,
	// recorded). 0 → 24h.
	MaxWait time.Duration
	// Spill persists ev in the backlog and reports whether it took it;
	// Load returns up to n spilled events of a client bucket
	// (stackprint.ClientBucket; resumed in the ledger); the backlog
	// counts per bucket at start come from Backlog.
	// All nil: nothing spills.
	Spill   func(stackprint.Event) bool
	Load    func(bucket uint16, n int) ([]stackprint.Event, error)
	Backlog map[uint16]int

	// OnSettled is called once per event when it is fully judged: its
	// record and alerts are written (or it expired). The delivery ledger
	// moves checkpoints with it. Optional.
	OnSettled func(stackprint.Event)
	Logger    *slog.Logger
	Now       func() time.Time
}

// Stats counts event outcomes. Every event ends in exactly one of
// Deduped (judged from the cache), Probed (judged with the result of a
// probe it waited for), OutOfScope, Invalid or Expired; until then it is
// Waiting (in memory) or Spilled (in the backlog on disk).
type Stats struct {
	Events, Deduped, Probed, OutOfScope, Invalid, Expired uint64
	ServerProbes, NameProbes, ProbeOK, Matched, Alerts    uint64
	SinkErrors, Abandoned, Evictions, SpilledTotal        uint64
	Waiting, Spilled, InFlight, QueueDepth, CacheLen      int64
	BacklogFull                                           bool
}

type unitState uint8

const (
	stateQueued unitState = iota
	stateProbing
	stateDone
)

type cacheKey struct {
	t      stackprint.Target
	server bool
}

// server is what every name of one (ip, port) shares: the server-level
// fingerprints, probed once.
type server struct {
	key     stackprint.Target // SNI "" unless JARM depends on it
	state   unitState
	first   *name             // the name the server probe was taken with
	core    stackprint.Result // ServerKinds only
	coreM   []stackprint.Match
	gen     uint64
	expires time.Time
	names   []*name // names that wait for the server probe
	u       *unit
}

// name is one (ip, port, sni): the target an event names and its verdict.
type name struct {
	t       stackprint.Target
	srv     *server
	state   unitState
	result  stackprint.Result // complete: server and name kinds
	matches []stackprint.Match
	gen     uint64
	expires time.Time
	waiters []*waiter
	u       *unit // name probe; nil while the server probe covers it
}

type waiter struct {
	ev stackprint.Event
	// p1 is closed when the server-level verdict of ev is written; done
	// then lists the rules that fired, so the complete verdict does not
	// alert on them twice. nil: no such verdict.
	p1   chan struct{}
	done []string
}

// unit is one probe waiting for or using the network: a server probe
// (server-level kinds and the first name's) or a name probe.
type unit struct {
	srv      *server
	nm       *name
	cost     int
	paid     int       // connections taken from the global budget so far
	started  time.Time // dispatched
	answered bool
	state    unitState
	queued   time.Time
	deadline time.Duration
	clients  []netip.Addr // clients whose queues hold it (bounded)
	// direct receives the result of a probe asked for by ProbeNow: outside
	// the cache, no event waits for it.
	direct chan directResult
}

func (u *unit) ip() netip.Addr { return u.nm.t.IP }

// maxUnitClients bounds the client queues one unit is pushed to: enough
// that a flooding client cannot hold back a server others want.
const maxUnitClients = 8

// Pipeline is safe for concurrent Handle calls from several tailers.
type Pipeline struct {
	cfg     Config
	prober  Prober
	matcher Matcher
	judge   Judge
	sink    Sink
	log     *slog.Logger
	scope   atomic.Pointer[Scope]

	mu       sync.Mutex
	cache    *dedupCache
	fq       *fairQueue // server probes
	names    *fairQueue // name probes, within NameShare of the global budget
	nameB    *bucket
	global   *bucket
	perIP    map[netip.Addr]*bucket
	inFlight int
	held     []*unit // server probes not answered yet, within AnswerGrace
	restWait int     // connections wanted by answered probes waiting to pay
	tarpits  *expirable.LRU[netip.Addr, time.Time]
	waiting  int                           // events in memory without a verdict
	perCli   map[netip.Addr]int            // of those, per client
	spilled  [stackprint.ClientBuckets]int // events in the backlog per client bucket
	nSpilled int
	loadRR   []uint16 // client buckets with a backlog, round-robin for loading
	pending  int      // units queued or probing
	wake     chan struct{}
	roomed   chan struct{} // backlog below its bound again

	idle                                  chan struct{}
	events, deduped, probed, outOfScope   atomic.Uint64
	handling                              atomic.Int64 // Handle calls counted in events and not yet placed
	inval, expired, srvProbes, nameProbes atomic.Uint64
	probeOK, matched, alerts, sinkErr     atomic.Uint64
	abandoned, spilledTotal               atomic.Uint64
	backlogAlarm                          atomic.Bool
	fatal                                 chan error
	sweepEvery                            time.Duration
	loadBatch                             int
	flushAt                               int // store ops queued before a flush
	probeWG                               sync.WaitGroup
}

// New checks cfg and builds a pipeline; call Run to start the scheduler.
func New(cfg Config, prober Prober, matcher Matcher, judge Judge, sink Sink) (*Pipeline, error) {
	if cfg.Scope == nil {
		return nil, errors.New("enrich: a scope is required")
	}
	if len(cfg.ServerKinds) == 0 && len(cfg.NameKinds) == 0 {
		return nil, errors.New("enrich: no probe kind")
	}
	if cfg.ServerCost < 1 {
		cfg.ServerCost = 1
	}
	if cfg.NameCost < 1 {
		cfg.NameCost = 1
	}
	if cfg.Capacity < 1 || cfg.MaxInFlight < 1 || cfg.ProbesPerSecond <= 0 || cfg.Burst < 1 || cfg.Deadline <= 0 || cfg.TTL <= 0 {
		return nil, fmt.Errorf("enrich: invalid limits %+v", cfg)
	}
	if cfg.ConnsPerIP <= 0 {
		cfg.ConnsPerIP = 20
	}
	if cfg.ConnsPerIPBurst <= 0 {
		cfg.ConnsPerIPBurst = cfg.ServerCost
	}
	if cfg.ConnsPerIPBurst < cfg.ServerCost {
		return nil, fmt.Errorf("enrich: per-IP connection burst %d is below the %d connections of one server probe", cfg.ConnsPerIPBurst, cfg.ServerCost)
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = cfg.TTL
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.NameShare <= 0 || cfg.NameShare > 1 {
		cfg.NameShare = 0.25
	}
	if cfg.AnswerGrace <= 0 {
		cfg.AnswerGrace = 250 * time.Millisecond
	}
	if cfg.TarpitDeadline <= 0 {
		cfg.TarpitDeadline = min(cfg.Deadline, 3*time.Second)
	}
	if cfg.MemEvents <= 0 {
		cfg.MemEvents = 10000
	}
	if cfg.BacklogMax <= 0 {
		cfg.BacklogMax = 10_000_000
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnSettled == nil {
		cfg.OnSettled = func(stackprint.Event) {}
	}
	if cfg.JARMSNIObserved {
		// JARM depends on the name: every name is its own server.
		cfg.ServerKinds = append(cfg.ServerKinds, cfg.NameKinds...)
		cfg.NameKinds = nil
	}
	now := cfg.Now()
	p := &Pipeline{
		cfg: cfg, prober: prober, matcher: matcher, judge: judge, sink: sink,
		log:    cfg.Logger,
		fq:     newFairQueue(),
		names:  newFairQueue(),
		global: newBucket(cfg.ProbesPerSecond*float64(cfg.ServerCost), cfg.Burst*cfg.ServerCost, now),
		nameB: newBucket(cfg.NameShare*cfg.ProbesPerSecond*float64(cfg.ServerCost),
			max(cfg.NameCost, int(cfg.NameShare*float64(cfg.Burst*cfg.ServerCost))), now),
		perIP:      map[netip.Addr]*bucket{},
		perCli:     map[netip.Addr]int{},
		wake:       make(chan struct{}, 1),
		roomed:     make(chan struct{}),
		idle:       make(chan struct{}, 1),
		fatal:      make(chan error, 1),
		sweepEvery: time.Minute,
		loadBatch:  1000,
	}
	for c, n := range cfg.Backlog {
		if n > 0 {
			p.spilled[c] += n
			p.nSpilled += n
			p.loadRR = append(p.loadRR, c)
		}
	}
	p.scope.Store(cfg.Scope)
	// Lifetimes are enforced per entry on lookup (expires): a success and
	// a failure live differently long, which the library's one TTL cannot
	// express, and its expiry goroutine cannot be stopped in v2.0.7. So
	// the LRUs run without a TTL and only their capacity bound evicts.
	hot := cmp.Or(cfg.HotResults, DefaultHotResults)
	p.cache = newDedupCache(cfg.Capacity, hot, cfg.Results)
	p.flushAt = max(1, min(flushBatch, hot/4))
	p.tarpits = expirable.NewLRU[netip.Addr, time.Time](65536, nil, 0)
	return p, nil
}

// Handle takes one event. It never blocks on the network: an event whose
// target is cached is judged at once; otherwise it waits for its probe
// (in memory, or spilled to the backlog when memory is full) and is
// judged when the probe ends. It blocks only while the backlog is at its
// bound. An error means an output failed.
func (p *Pipeline) Handle(ctx context.Context, ev stackprint.Event) error {
	if err := p.WaitRoom(ctx); err != nil {
		return err
	}
	// Counted before it is placed: WaitIdle waits for it too, so whoever
	// saw the count reached and then waits for idle sees its verdict.
	p.handling.Add(1)
	defer p.handling.Add(-1)
	p.events.Add(1)
	err := p.handle(ev, false)
	p.flushStore(p.flushAt)
	return err
}

// handle places ev; resumed events (loaded from the backlog) are never
// spilled again.
func (p *Pipeline) handle(ev stackprint.Event, resumed bool) error {
	t := ev.Target()
	if !t.IP.IsValid() {
		p.inval.Add(1)
		p.cfg.OnSettled(ev)
		return nil
	}
	now := p.cfg.Now()
	if ev.Queued.IsZero() {
		ev.Queued = now
	}
	if now.Sub(ev.Queued) > p.cfg.MaxWait {
		return p.expire(ev, now, false)
	}
	nk, sk := cacheKey{t: t}, cacheKey{t: p.serverKey(t), server: true}
	inScope := func() bool { ok, _ := p.scope.Load().Check(t.Addr()); return ok }
	var (
		srv     *server
		checked bool
		scoped  bool
		why     string
	)
	for attempt := 0; ; attempt++ {
		p.mu.Lock()
		v, load, oos := p.cache.lookup(nk, now, inScope)
		if load {
			p.mu.Unlock()
			p.loadStored(nk, now, attempt)
			continue
		}
		if oos {
			p.mu.Unlock()
			p.outOfScope.Add(1)
			return p.settle(ev, nil)
		}
		if v == nil {
			if !checked {
				scoped, why = p.scope.Load().Check(t.Addr())
				checked = true
			}
			if scoped {
				sv, load, _ := p.cache.lookup(sk, now, inScope)
				if load {
					p.mu.Unlock()
					p.loadStored(sk, now, attempt)
					continue
				}
				srv, _ = sv.(*server)
			}
			break // p.mu held
		}
		nm := v.(*name)
		if nm.state == stateDone {
			res, m, gen := nm.result, nm.matches, nm.gen
			p.mu.Unlock()
			if res.Status == stackprint.StatusOutOfScope {
				p.outOfScope.Add(1)
			} else {
				p.deduped.Add(1)
			}
			if m2, cur, changed, err := p.rematch(res, gen); err != nil {
				return err
			} else if changed {
				p.mu.Lock()
				nm.matches, nm.gen = m2, cur
				p.mu.Unlock()
				m = m2
			}
			return p.settle(ev, p.verdicts(ev, res, m, nil))
		}
		if !resumed && p.mustSpill(ev) {
			p.mu.Unlock()
			return nil
		}
		w := p.addWaiter(nm, ev)
		if u := cmp.Or(nm.u, nm.srv.u); u != nil && u.state == stateQueued {
			p.push(u, ev.Orig.Addr()) // coalesced: served at this client's turn too
		}
		if nm.srv.state != stateDone || len(p.cfg.ServerKinds) == 0 {
			p.mu.Unlock()
			return nil
		}
		// The server is known, this name's own probe is not done: the
		// server-level verdict does not wait for it.
		w.p1 = make(chan struct{})
		core, coreM := nm.srv.core, nm.srv.coreM
		p.mu.Unlock()
		return p.phase1(w, core, coreM)
	}
	if !scoped {
		res := stackprint.Result{Target: t, Started: now, Status: stackprint.StatusOutOfScope, Error: why}
		p.cache.outOfScope(nk, now.Add(p.cfg.NegativeTTL))
		p.mu.Unlock()
		p.outOfScope.Add(1)
		p.log.Debug("target out of scope", "target", t.String(), "reason", why)
		return p.settle(ev, p.record(ev, res, nil))
	}
	if !resumed && p.mustSpill(ev) {
		p.mu.Unlock()
		return nil
	}
	nm := &name{t: t}
	p.cache.inflight[nk] = nm
	w := p.addWaiter(nm, ev)
	switch {
	case srv == nil:
		// A new server: one probe for its server-level kinds and this
		// first name's.
		srv = &server{key: p.serverKey(t), first: nm}
		nm.srv = srv
		p.cache.inflight[sk] = srv
		srv.u = p.newUnit(srv, nm, p.cfg.ServerCost, now)
		p.push(srv.u, ev.Orig.Addr())
		p.mu.Unlock()
		return nil
	case srv.state != stateDone:
		nm.srv = srv
		srv.names = append(srv.names, nm)
		if srv.u != nil && srv.u.state == stateQueued {
			p.push(srv.u, ev.Orig.Addr()) // coalesced: served at this client's turn too
		}
		p.mu.Unlock()
		return nil
	}
	nm.srv = srv
	core, coreM := srv.core, srv.coreM
	if !matchable(core.Status) || len(p.cfg.NameKinds) == 0 {
		// Nothing more to learn per name (the server failed, or no kind
		// depends on the name): the server's result is this name's.
		p.finishFromServer(nm, now)
		waiters := p.takeWaiters(nm)
		p.mu.Unlock()
		return p.deliver(nm, waiters, true)
	}
	nm.u = p.newUnit(srv, nm, p.cfg.NameCost, now)
	p.push(nm.u, ev.Orig.Addr())
	w.p1 = make(chan struct{})
	p.mu.Unlock()
	return p.phase1(w, core, coreM)
}

// loadStored reads the stored result of a judged entry back into memory
// (without p.mu held): checked against its exact key, with its matches
// (matched again only when the DB changed since). A result the store
// lost, or one of another target, drops the entry: the target is probed
// again. After a few rounds in which the entry was pushed out of memory
// again before its event could use it (hot results far below the events
// in flight), it is dropped too.
func (p *Pipeline) loadStored(ck cacheKey, now time.Time, attempt int) {
	k := p.cache.key(ck)
	p.mu.Lock()
	slot, expires := p.cache.idx.Entry(k)
	p.mu.Unlock()
	if slot == 0 {
		return // gone meanwhile: the caller looks again
	}
	st, ok, err := p.cache.store.GetResult(slot, k, expires)
	if err != nil {
		p.log.Warn("read cached result; probing the target again", "target", ck.t.String(), "err", err)
		ok = false
	}
	ok = ok && bytes.Equal(st.Tag, tagOf(ck)) && attempt < 4
	var v any
	if ok {
		res, m, gen := st.Result, st.Matches, st.Gen
		if m2, cur, changed, err := p.rematch(res, gen); err != nil {
			p.log.Warn("match cached result; probing the target again", "target", ck.t.String(), "err", err)
			ok = false
		} else if changed {
			m, gen = m2, cur
		}
		if ck.server {
			v = &server{key: ck.t, state: stateDone, core: res, coreM: m, gen: gen}
		} else {
			v = &name{t: ck.t, state: stateDone, result: res, matches: m, gen: gen}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s2, e2 := p.cache.idx.Entry(k); s2 != slot || e2 != expires {
		return // judged again meanwhile: that verdict stands
	}
	switch {
	case !ok:
		p.cache.forget(ck, k)
	case p.cache.idx.Has(k, now):
		p.cache.hot.Add(k, v)
	}
}

// flushBatch is how many result-store writes wait to go in one
// transaction (at most a second: the dispatcher flushes what is left),
// unless HotResults is below four times that: the waiting ones are the
// newest results and must all still be in memory meanwhile, so that a
// read never misses one.
const flushBatch = 256

// flushStore applies the queued result-store writes and deletes once at
// least min are queued.
func (p *Pipeline) flushStore(min int) {
	c := p.cache
	if c.store == nil {
		return
	}
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	p.mu.Lock()
	if len(c.ops) < min || len(c.ops) == 0 {
		p.mu.Unlock()
		return
	}
	ops := c.takeOps()
	p.mu.Unlock()
	if err := c.store.ApplyResults(ops); err != nil {
		// A cache: what it lacks is probed again.
		p.log.Warn("write cached results", "results", len(ops), "err", err)
	}
}

func (p *Pipeline) serverKey(t stackprint.Target) stackprint.Target {
	if p.cfg.JARMSNIObserved {
		return t
	}
	return stackprint.Target{IP: t.IP, Port: t.Port, StartTLS: t.StartTLS}
}

func (p *Pipeline) newUnit(s *server, nm *name, cost int, now time.Time) *unit {
	u := &unit{srv: s, nm: nm, cost: cost, queued: now, deadline: p.cfg.Deadline}
	if until, ok := p.tarpits.Peek(nm.t.IP); ok && now.Before(until) {
		u.deadline = p.cfg.TarpitDeadline // it did not answer lately: cheap retry
	}
	p.pending++
	return u
}

// push queues a reference to u for client (at most maxUnitClients).
func (p *Pipeline) push(u *unit, client netip.Addr) {
	if slices.Contains(u.clients, client) || len(u.clients) >= maxUnitClients {
		return
	}
	u.clients = append(u.clients, client)
	if u.srv.u == u {
		p.fq.push(client, u)
	} else {
		p.names.push(client, u)
	}
	p.signal()
}

func (p *Pipeline) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Pipeline) addWaiter(nm *name, ev stackprint.Event) *waiter {
	w := &waiter{ev: ev}
	nm.waiters = append(nm.waiters, w)
	p.waiting++
	p.perCli[ev.Orig.Addr()]++
	return w
}

func (p *Pipeline) takeWaiters(nm *name) []*waiter {
	ws := nm.waiters
	nm.waiters = nil
	// p.waiting drops as each event's outcome is counted (outcome), so
	// outcomes plus waiting always add up to the events taken in.
	for _, w := range ws {
		c := w.ev.Orig.Addr()
		if p.perCli[c]--; p.perCli[c] <= 0 {
			delete(p.perCli, c)
		}
	}
	return ws
}

// mustSpill decides, under p.mu, whether ev goes to the backlog: only when
// memory is full, and then the events of the clients holding more than
// their share of it. A client with a few events (a C2 contact behind
// another host's flood) stays in memory up to twice the bound.
func (p *Pipeline) mustSpill(ev stackprint.Event) bool {
	if p.cfg.Spill == nil || p.waiting < p.cfg.MemEvents {
		return false
	}
	c := ev.Orig.Addr()
	share := p.cfg.MemEvents / max(1, len(p.perCli))
	if p.perCli[c] < share && p.waiting < 2*p.cfg.MemEvents {
		return false
	}
	if !p.cfg.Spill(ev) {
		return false
	}
	b := stackprint.ClientBucket(c)
	if p.spilled[b] == 0 {
		p.loadRR = append(p.loadRR, b)
	}
	p.spilled[b]++
	p.nSpilled++
	p.spilledTotal.Add(1)
	return true
}

// WaitRoom blocks while the backlog is at its bound (the alarm is on);
// the inputs stop reading, so the sensor's logs keep what is not read.
func (p *Pipeline) WaitRoom(ctx context.Context) error {
	for {
		p.mu.Lock()
		full := p.nSpilled >= p.cfg.BacklogMax
		ch := p.roomed
		p.mu.Unlock()
		if !full {
			if p.backlogAlarm.CompareAndSwap(true, false) {
				p.log.Info("backlog below its bound again; reading the inputs")
			}
			return nil
		}
		if p.backlogAlarm.CompareAndSwap(false, true) {
			p.log.Error("backlog full: inputs paused until probes drain it", "backlog_events", p.cfg.BacklogMax)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(time.Second):
		}
	}
}

// phase1 judges w's event with the server-level result while its
// name-level probe is still to come (w.p1 set under p.mu by the caller).
func (p *Pipeline) phase1(w *waiter, core stackprint.Result, m []stackprint.Match) error {
	defer close(w.p1)
	core.Target = w.ev.Target()
	for _, v := range p.judge.JudgeRest(w.ev, core, m, nil) {
		if err := p.alert(v, w.ev, core); err != nil {
			return err
		}
		w.done = append(w.done, v.Rule)
	}
	return nil
}

// finishFromServer completes nm with its server's result (under p.mu).
func (p *Pipeline) finishFromServer(nm *name, now time.Time) {
	s := nm.srv
	res := s.core
	res.Target, res.Conns = nm.t, 0
	nm.state, nm.result, nm.matches, nm.gen = stateDone, res, s.coreM, s.gen
	nm.expires = now.Add(p.ttl(res.Status))
	p.cache.judged(cacheKey{t: nm.t}, nm, res, nm.expires)
}

func (p *Pipeline) ttl(st stackprint.Status) time.Duration {
	if st == stackprint.StatusOK {
		return p.cfg.TTL
	}
	return p.cfg.NegativeTTL
}

// Run schedules probes until ctx ends or an output fails. At shutdown no
// new probe starts and probes in flight get DrainTimeout to finish; a
// probe cut short is abandoned, not recorded as a timeout: its events
// stay unsettled, so the ledger parks them and the next run probes again.
func (p *Pipeline) Run(ctx context.Context) error {
	probeCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	dispatched := make(chan struct{})
	go func() { defer close(dispatched); p.dispatch(dctx, probeCtx) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-p.fatal:
	}
	stop()
	<-dispatched
	done := make(chan struct{})
	go func() { p.probeWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(p.cfg.DrainTimeout):
		abort()
		<-done
	}
	return err
}

// dispatch hands units to probe goroutines in fair order, within the
// in-flight bound, the global connection budget and each IP's budget.
func (p *Pipeline) dispatch(ctx, probeCtx context.Context) {
	sweep := time.NewTicker(p.sweepEvery)
	defer sweep.Stop()
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	var timer *time.Timer
	for {
		if ctx.Err() != nil {
			return
		}
		now := p.cfg.Now()
		p.mu.Lock()
		if err := p.loadBacklog(); err != nil {
			p.mu.Unlock()
			p.fail(err)
			return
		}
		u, wakeAt := p.nextUnit(now)
		if u != nil {
			for {
				at := p.affordable(u, now)
				if !at.After(now) {
					break
				}
				// The unit keeps its turn while the global budget
				// refills or unanswered probes stop holding theirs.
				p.mu.Unlock()
				if !sleepUntil(ctx, at, now) {
					return
				}
				p.mu.Lock()
				now = p.cfg.Now()
			}
			// A ProbeNow unit whose caller gave up while it waited here
			// for the budget was dropped (and counted out): not probed.
			if u.state == stateQueued {
				p.start(u, now, probeCtx)
			}
			p.mu.Unlock()
			continue
		}
		p.pruneBuckets(now)
		p.mu.Unlock()
		var tc <-chan time.Time
		if !wakeAt.IsZero() {
			if timer == nil {
				timer = time.NewTimer(wakeAt.Sub(now))
			} else {
				timer.Reset(wakeAt.Sub(now))
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-tc:
		case <-flush.C:
			p.flushStore(1)
		case <-sweep.C:
			if err := p.sweepExpired(); err != nil {
				p.fail(err)
				return
			}
		}
	}
}

func sleepUntil(ctx context.Context, at, now time.Time) bool {
	t := time.NewTimer(at.Sub(now))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// nextUnit picks the next probe (under p.mu): a name probe while the
// names' share of the global budget allows one — they cost a connection
// each and are paced by their IP's budget, so a server with thousands of
// names drains at its own rate instead of waiting for a turn among
// thousands of servers — else a server probe. It returns nil and when to
// look again when none can go.
func (p *Pipeline) nextUnit(now time.Time) (*unit, time.Time) {
	if p.inFlight >= p.cfg.MaxInFlight {
		return nil, time.Time{}
	}
	var wake time.Time
	if p.names.units > 0 {
		if at := p.nameB.readyAt(now, p.cfg.NameCost); at.After(now) {
			wake = at
		} else {
			u, w := p.names.next(now, p.canPay)
			if u != nil {
				p.nameB.take(now, u.cost)
				return u, time.Time{}
			}
			wake = w
		}
	}
	u, w := p.fq.next(now, p.canPay)
	if u != nil {
		return u, time.Time{}
	}
	if wake.IsZero() || (!w.IsZero() && w.Before(wake)) {
		wake = w
	}
	return nil, wake
}

// affordable is when the global budget covers u's whole cost on top of
// what answered probes wait for and what unanswered ones may still need
// (under p.mu).
func (p *Pipeline) affordable(u *unit, now time.Time) time.Time {
	owed, expiry := p.restWait, time.Time{}
	kept := p.held[:0]
	for _, h := range p.held {
		if h.answered || h.state != stateProbing || !now.Before(h.started.Add(p.cfg.AnswerGrace)) {
			continue // answered (it paid), done, or presumed a tarpit
		}
		kept = append(kept, h)
		owed += h.cost - h.paid
		if e := h.started.Add(p.cfg.AnswerGrace); expiry.IsZero() || e.Before(expiry) {
			expiry = e
		}
	}
	clear(p.held[len(kept):])
	p.held = kept
	at := p.global.readyAt(now, u.cost+owed)
	if !expiry.IsZero() && expiry.Before(at) {
		at = expiry
	}
	return at
}

// payRest is the probe's Answered hook: u answered its first ClientHello,
// so it takes the rest of its connections from the global budget, before
// any new probe starts.
func (p *Pipeline) payRest(ctx context.Context, u *unit) error {
	p.mu.Lock()
	u.answered = true
	rest := u.cost - u.paid
	for rest > 0 {
		now := p.cfg.Now()
		at := p.global.readyAt(now, rest)
		if !at.After(now) {
			p.global.take(now, rest)
			u.paid += rest
			break
		}
		p.restWait += rest
		p.mu.Unlock()
		ok := sleepUntil(ctx, at, now)
		p.mu.Lock()
		p.restWait -= rest
		if !ok {
			p.mu.Unlock()
			return fmt.Errorf("waiting for the global connection budget: %w", ctx.Err())
		}
	}
	p.mu.Unlock()
	return nil
}

// canPay is when ip's connection budget covers cost.
func (p *Pipeline) canPay(ip netip.Addr, cost int, now time.Time) time.Time {
	b := p.perIP[ip]
	if b == nil {
		return now
	}
	return b.readyAt(now, cost)
}

// pruneBuckets forgets the budgets of IPs that are full again: dropping a
// full bucket changes nothing, so memory stays bounded by busy IPs.
func (p *Pipeline) pruneBuckets(now time.Time) {
	if len(p.perIP) < 1024 {
		return
	}
	for ip, b := range p.perIP {
		if b.full(now) {
			delete(p.perIP, ip)
		}
	}
}

// start takes the unit's connections from both budgets and probes it
// (under p.mu).
func (p *Pipeline) start(u *unit, now time.Time, probeCtx context.Context) {
	b := p.perIP[u.ip()]
	if b == nil {
		b = newBucket(p.cfg.ConnsPerIP, p.cfg.ConnsPerIPBurst, now)
		p.perIP[u.ip()] = b
	}
	b.take(now, u.cost)
	// A server probe pays its first connection now and the rest when the
	// server answers (payRest); until then it holds the rest for
	// AnswerGrace (affordable).
	u.paid = u.cost
	if u.srv.u == u && u.cost > 1 {
		u.paid = 1
		p.held = append(p.held, u)
	}
	p.global.take(now, u.paid)
	u.started = now
	u.state = stateProbing
	if u.srv.u == u {
		u.srv.state = stateProbing
	}
	u.nm.state = stateProbing
	p.inFlight++
	p.probeWG.Go(func() { p.probe(probeCtx, u) })
}

func (p *Pipeline) probe(ctx context.Context, u *unit) {
	isServer := u.srv.u == u
	t := u.nm.t
	var res stackprint.Result
	scoped, why := p.scope.Load().Check(t.Addr())
	if u.direct != nil {
		scoped, why = p.scope.Load().CheckDenied(t.Addr()) // a watched server is allow-listed by the watch list
	}
	if !scoped {
		// The scope changed (reload) while the unit waited: policy wins
		// over the queue, the target is not dialled.
		res = stackprint.Result{Target: t, Started: p.cfg.Now(), Status: stackprint.StatusOutOfScope, Error: why}
	} else {
		jarmSNI := t.IP.String()
		if p.cfg.JARMSNIObserved && t.SNI != "" {
			jarmSNI = t.SNI
		}
		kinds := p.cfg.NameKinds
		if isServer {
			kinds = append(slices.Clone(p.cfg.ServerKinds), p.cfg.NameKinds...)
			p.srvProbes.Add(1)
		} else {
			p.nameProbes.Add(1)
		}
		o := stackprint.ProbeOptions{Kinds: kinds}
		if u.paid < u.cost {
			o.Answered = func(ctx context.Context) error { return p.payRest(ctx, u) }
		}
		pctx, cancel := context.WithTimeout(ctx, u.deadline)
		res = p.prober.ProbeWith(pctx, t, jarmSNI, o)
		cancel()
	}
	now := p.cfg.Now()
	p.mu.Lock()
	p.inFlight--
	u.state = stateDone
	used := min(u.cost, max(res.Conns, 0))
	if !scoped {
		used = 0
	}
	if used < u.paid {
		p.global.refund(now, u.paid-used)
	}
	if b := p.perIP[u.ip()]; b != nil && used < u.cost {
		b.refund(now, u.cost-used)
	}
	p.mu.Unlock()
	p.signal()
	if u.direct != nil {
		p.directDone(u, res, ctx.Err() != nil)
		return
	}
	if ctx.Err() != nil {
		p.abandoned.Add(1)
		return // shutdown: its events stay unsettled and are parked
	}
	if res.Status == stackprint.StatusOK {
		p.probeOK.Add(1)
	}
	if res.Status == stackprint.StatusTimeout && res.Conns <= 1 && scoped {
		p.mu.Lock()
		p.tarpits.Add(t.IP, now.Add(p.cfg.NegativeTTL))
		p.mu.Unlock()
	}
	var err error
	if isServer {
		err = p.serverDone(u, res, now)
	} else {
		err = p.nameDone(u.nm, res, now)
	}
	p.flushStore(p.flushAt)
	if err != nil {
		p.fail(err)
	}
	p.mu.Lock()
	p.pending--
	idle := p.pending == 0
	p.mu.Unlock()
	if idle {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
}

// serverDone files a server probe: its first name is complete, the other
// names waiting on it get the server-level verdict and a name probe.
func (p *Pipeline) serverDone(u *unit, res stackprint.Result, now time.Time) error {
	s, first := u.srv, u.nm
	gen := p.generation()
	full, fullM, err := p.matchResult(res)
	if err != nil {
		return err
	}
	core := res.Only(p.cfg.ServerKinds)
	var coreM []stackprint.Match
	if len(p.cfg.ServerKinds) > 0 && matchable(core.Status) {
		if coreM, err = p.matcher.Match(core); err != nil {
			return fmt.Errorf("match %s: %w", res.Target, err)
		}
	} else if len(p.cfg.ServerKinds) == 0 {
		core = res // no server-level kind: the first name's result stands for the server
		coreM = fullM
	}
	p.mu.Lock()
	s.state, s.core, s.coreM, s.gen, s.u = stateDone, core, coreM, gen, nil
	s.expires = now.Add(p.ttl(core.Status))
	first.state, first.result, first.matches, first.gen = stateDone, full, fullM, gen
	first.expires = now.Add(p.ttl(full.Status))
	p.cache.judged(cacheKey{t: s.key, server: true}, s, core, s.expires)
	p.cache.judged(cacheKey{t: first.t}, first, full, first.expires)
	firstWaiters := p.takeWaiters(first)
	names := s.names
	s.names = nil
	type phase struct {
		nm  *name
		evs []*waiter
	}
	var finished []phase
	var judge1 []*waiter
	for _, nm := range names {
		if nm.state == stateDone {
			continue
		}
		if !matchable(core.Status) || len(p.cfg.NameKinds) == 0 {
			p.finishFromServer(nm, now)
			finished = append(finished, phase{nm, p.takeWaiters(nm)})
			continue
		}
		nm.u = p.newUnit(s, nm, p.cfg.NameCost, now)
		for _, w := range nm.waiters {
			p.push(nm.u, w.ev.Orig.Addr())
		}
		if len(p.cfg.ServerKinds) > 0 {
			for _, w := range nm.waiters {
				w.p1 = make(chan struct{})
				judge1 = append(judge1, w)
			}
		}
	}
	p.mu.Unlock()
	p.log.Debug("probed server", "target", res.Target.String(), "status", res.Status, "jarm", res.JARM, "matches", len(fullM))
	if err := p.deliver(first, firstWaiters, false); err != nil {
		return err
	}
	for _, f := range finished {
		if err := p.deliver(f.nm, f.evs, false); err != nil {
			return err
		}
	}
	for i, w := range judge1 {
		if err := p.phase1(w, core, coreM); err != nil {
			for _, w := range judge1[i+1:] {
				close(w.p1)
			}
			return err
		}
	}
	return nil
}

// nameDone files a name probe: the name's result is the server's
// completed with it.
func (p *Pipeline) nameDone(nm *name, res stackprint.Result, now time.Time) error {
	merged := res
	if res.Status != stackprint.StatusOutOfScope {
		merged = stackprint.Merge(nm.srv.core, res)
	}
	gen := p.generation()
	_, m, err := p.matchResult(merged)
	if err != nil {
		return err
	}
	p.mu.Lock()
	nm.state, nm.result, nm.matches, nm.gen, nm.u = stateDone, merged, m, gen, nil
	nm.expires = now.Add(p.ttl(merged.Status))
	p.cache.judged(cacheKey{t: nm.t}, nm, merged, nm.expires)
	ws := p.takeWaiters(nm)
	p.mu.Unlock()
	p.log.Debug("probed name", "target", nm.t.String(), "status", res.Status, "matches", len(m))
	return p.deliver(nm, ws, false)
}

func (p *Pipeline) matchResult(res stackprint.Result) (stackprint.Result, []stackprint.Match, error) {
	if !matchable(res.Status) {
		return res, nil, nil
	}
	m, err := p.matcher.Match(res)
	if err != nil {
		return res, nil, fmt.Errorf("match %s: %w", res.Target, err)
	}
	if len(stackprint.ExactMatches(m)) > 0 {
		p.matched.Add(1)
	}
	return res, m, nil
}

// deliver writes nm's record and judges its waiting events; cached: no
// probe was made for them (the server's failure stands for the name).
func (p *Pipeline) deliver(nm *name, ws []*waiter, cached bool) error {
	p.mu.Lock()
	res, m, gen := nm.result, nm.matches, nm.gen
	p.mu.Unlock()
	if len(ws) == 0 {
		return nil
	}
	if err := p.record(ws[0].ev, res, m); err != nil {
		return err
	}
	if m2, cur, changed, err := p.rematch(res, gen); err != nil {
		return err
	} else if changed {
		// The DB changed during the probe (an online add whose retro-hunt
		// could not see this target yet): judge with the new entries.
		p.mu.Lock()
		nm.matches, nm.gen = m2, cur
		p.mu.Unlock()
		m = m2
	}
	for _, w := range ws {
		if cached {
			p.outcome(&p.deduped, true)
		} else {
			p.outcome(&p.probed, true)
		}
		if w.p1 != nil {
			<-w.p1 // its server-level verdict is being written
		}
		if err := p.settle(w.ev, p.verdicts(w.ev, res, m, w.done)); err != nil {
			return err
		}
	}
	return nil
}

// outcome counts an event's final outcome; one that waited leaves the
// waiting count in the same step, so a Stats snapshot never sees it in
// both or in neither.
func (p *Pipeline) outcome(c *atomic.Uint64, waited bool) {
	p.mu.Lock()
	c.Add(1)
	if waited {
		p.waiting--
		if p.nSpilled > 0 && p.waiting < p.cfg.MemEvents*3/4 {
			p.signal() // room for the backlog: the dispatcher loads it
		}
	}
	p.mu.Unlock()
}

// rematch matches res again when the DB generation moved since gen.
func (p *Pipeline) rematch(res stackprint.Result, gen uint64) ([]stackprint.Match, uint64, bool, error) {
	cur := p.generation()
	if cur == gen || !matchable(res.Status) {
		return nil, gen, false, nil
	}
	m, err := p.matcher.Match(res)
	if err != nil {
		return nil, gen, false, fmt.Errorf("match %s: %w", res.Target, err)
	}
	return m, cur, true, nil
}

// matchable reports whether a result can carry fingerprints: a partial
// result (say ATSF incomplete, JARM fine) still has some.
func matchable(s stackprint.Status) bool {
	return s == stackprint.StatusOK || s == stackprint.StatusPartial
}

// generation is the matcher's DB generation when it reports one (a DB
// that changes while the daemon runs); cached matches of an older
// generation are recomputed on their next event.
func (p *Pipeline) generation() uint64 {
	if g, ok := p.matcher.(interface{ Generation() uint64 }); ok {
		return g.Generation()
	}
	return 0
}

// settle reports ev as settled unless writing its outcome failed.
func (p *Pipeline) settle(ev stackprint.Event, err error) error {
	if err == nil {
		p.cfg.OnSettled(ev)
	}
	return err
}

func (p *Pipeline) record(ev stackprint.Event, res stackprint.Result, m []stackprint.Match) error {
	if err := p.sink.Record(ev, res, m); err != nil {
		p.sinkErr.Add(1)
		return fmt.Errorf("write fingerprint record for %s: %w", res.Target, err)
	}
	return nil
}

func (p *Pipeline) verdicts(ev stackprint.Event, res stackprint.Result, m []stackprint.Match, done []string) error {
	if res.Status == stackprint.StatusOutOfScope || res.Status == stackprint.StatusExpired {
		return nil // never probed: nothing for a rule to judge
	}
	// Rules are judged on every event, not only on DB matches: drift and
	// header rules fire without one.
	for _, v := range p.judge.JudgeRest(ev, res, m, done) {
		if err := p.alert(v, ev, res); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pipeline) alert(v stackprint.Verdict, ev stackprint.Event, res stackprint.Result) error {
	a := stackprint.NewAlert(v, ev, res, p.cfg.Now())
	if err := p.sink.Alert(a); err != nil {
		p.sinkErr.Add(1)
		return fmt.Errorf("write alert %s: %w", a.ID, err)
	}
	p.alerts.Add(1)
	return nil
}

// expire ends an event that waited past the age limit.
func (p *Pipeline) expire(ev stackprint.Event, now time.Time, waited bool) error {
	p.outcome(&p.expired, waited)
	p.log.Warn("event waited past scheduler.max_wait for a probe; recorded as expired, no verdict",
		"target", ev.Target().String(), "queued", ev.Queued, "max_wait", p.cfg.MaxWait)
	res := stackprint.Result{Target: ev.Target(), Started: now, Status: stackprint.StatusExpired,
		Error: fmt.Sprintf("waited %s for a probe (scheduler.max_wait %s)", now.Sub(ev.Queued).Round(time.Second), p.cfg.MaxWait)}
	return p.settle(ev, p.record(ev, res, nil))
}

// sweepExpired ends the in-memory events older than the age limit whose
// probe has not started.
func (p *Pipeline) sweepExpired() error {
	now := p.cfg.Now()
	var old []stackprint.Event
	p.mu.Lock()
	for k, v := range p.cache.inflight {
		if k.server {
			continue
		}
		nm := v.(*name)
		if nm.state != stateQueued {
			continue
		}
		kept := nm.waiters[:0]
		for _, w := range nm.waiters {
			if now.Sub(w.ev.Queued) > p.cfg.MaxWait {
				old = append(old, w.ev)
				if c := w.ev.Orig.Addr(); p.perCli[c] > 1 {
					p.perCli[c]--
				} else {
					delete(p.perCli, c)
				}
				continue
			}
			kept = append(kept, w)
		}
		nm.waiters = kept
	}
	p.mu.Unlock()
	for _, ev := range old {
		if err := p.expire(ev, now, true); err != nil {
			return err
		}
	}
	return nil
}

// loadBacklog brings spilled events back while memory has room, one batch
// per client in turn (under p.mu; the loads read the DB).
func (p *Pipeline) loadBacklog() error {
	if p.cfg.Load == nil || p.nSpilled == 0 || p.waiting >= p.cfg.MemEvents*3/4 {
		return nil
	}
	for len(p.loadRR) > 0 && p.waiting < p.cfg.MemEvents*3/4 {
		c := p.loadRR[0]
		p.loadRR = p.loadRR[1:]
		n := min(p.spilled[c], max(1, p.loadBatch/max(1, len(p.loadRR)+1)), p.cfg.MemEvents-p.waiting)
		p.mu.Unlock()
		evs, err := p.cfg.Load(c, n)
		p.mu.Lock()
		if err != nil {
			return fmt.Errorf("load backlog: %w", err)
		}
		p.spilled[c] -= len(evs)
		p.nSpilled -= len(evs)
		if p.spilled[c] > 0 {
			if len(evs) == 0 {
				// Spilled but not yet committed: try at the next pass.
				p.loadRR = append(p.loadRR, c)
				break
			}
			p.loadRR = append(p.loadRR, c)
		} else {
		}
		if p.nSpilled < p.cfg.BacklogMax {
			close(p.roomed)
			p.roomed = make(chan struct{})
		}
		p.mu.Unlock()
		for _, ev := range evs {
			if err := p.handle(ev, true); err != nil {
				p.mu.Lock()
				return err
			}
		}
		p.mu.Lock()
	}
	return nil
}

func (p *Pipeline) fail(err error) {
	p.log.Error("pipeline output failed", "err", err)
	select {
	case p.fatal <- err:
	default:
	}
	p.signal()
}

// SetScope swaps the scope policy (config reload). Cached verdicts stay,
// except those the new policy changes: targets it now rejects, and
// out-of-scope verdicts it now allows; queued targets are checked again
// before they are dialled.
func (p *Pipeline) SetScope(s *Scope) {
	if s == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scope.Store(s)
	// Each judged entry is checked against the new policy at its next
	// event: one pass over the fixed-size entries, no target is re-read.
	p.cache.idx.MarkAll(FlagRecheck)
}

// WaitIdle blocks until no event is being placed, no unit is queued or
// being probed and no event waits in the backlog, or ctx ends.
func (p *Pipeline) WaitIdle(ctx context.Context) error {
	for {
		p.mu.Lock()
		busy := p.pending > 0 || p.nSpilled > 0 || p.handling.Load() > 0
		p.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.idle:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stats returns a snapshot of the counters.
func (p *Pipeline) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	waiting, spilled, inFlight, depth := p.waiting, p.nSpilled, p.inFlight, p.fq.units+p.names.units
	return Stats{
		Events: p.events.Load(), Deduped: p.deduped.Load(), Probed: p.probed.Load(), OutOfScope: p.outOfScope.Load(),
		Invalid: p.inval.Load(), Expired: p.expired.Load(),
		ServerProbes: p.srvProbes.Load(), NameProbes: p.nameProbes.Load(), ProbeOK: p.probeOK.Load(),
		Matched: p.matched.Load(), Alerts: p.alerts.Load(), SinkErrors: p.sinkErr.Load(),
		Abandoned: p.abandoned.Load(), Evictions: p.cache.idx.Evictions(), SpilledTotal: p.spilledTotal.Load(),
		Waiting: int64(waiting), Spilled: int64(spilled), InFlight: int64(inFlight), QueueDepth: int64(depth),
		CacheLen: int64(p.cache.len()), BacklogFull: p.backlogAlarm.Load(),
	}
}
