// Package enrich turns sensor events into judged probe results: the scope
// filter, the dedup cache, the probe scheduler (bounded queue, in-flight
// cap, global rate limit, per-target deadline) and the hand-off to the DB
// matcher, the rules and the outputs.
//
// It declares what it needs from those as small interfaces (Prober,
// Matcher, Judge, Sink); cmd/stackprint wires the real implementations.
package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"

	"github.com/stackprint/stackprint"
)

// Prober fingerprints one target; it must return within ctx's deadline.
type Prober interface {
	Probe(ctx context.Context, t stackprint.Target, sni string) stackprint.Result
}

// Matcher looks a result's fingerprints up in the fingerprint DB.
type Matcher interface {
	Match(r stackprint.Result) ([]stackprint.Match, error)
}

// Judge turns an event, its target's result and the DB matches into verdicts.
type Judge interface {
	Judge(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) []stackprint.Verdict
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
	Scope           *Scope
	TTL             time.Duration // cache lifetime of a successful result
	NegativeTTL     time.Duration // cache lifetime of a failed or out-of-scope result
	Capacity        int           // dedup LRU size
	QueueSize       int
	MaxInFlight     int
	ProbesPerSecond float64
	Burst           int
	Deadline        time.Duration // hard per-target budget
	DrainTimeout    time.Duration // at shutdown, how long probes in flight may finish; default 5s
	JARMSNIObserved bool          // send the observed SNI instead of the IP literal
	MaxWaiters      int           // events parked on one pending target; default 10000
	// OnSettled is called once per event when it is fully judged: its
	// record and alerts are written (or it was counted as dropped). The
	// delivery ledger moves checkpoints with it. Optional.
	OnSettled func(stackprint.Event)
	Logger    *slog.Logger
	Now       func() time.Time
}

// Stats counts event outcomes; every event lands in exactly one of
// Deduped, OutOfScope, Queued, DroppedQueueFull, RateLimited or Invalid
// (an event parked on a busy target and then refused also counts in
// WaitersDropped, on top of Deduped).
type Stats struct {
	Events, Deduped, OutOfScope, Queued, DroppedQueueFull, Invalid uint64
	WaitersDropped, Probed, ProbeOK, Matched, Alerts, SinkErrors   uint64
	RateLimited, Abandoned, Evictions                              uint64 // judged by a cached queue-full verdict; probes cut by shutdown; LRU evictions
	Pending, InFlight, QueueDepth, CacheLen                        int64
}

type entry struct {
	gen     uint64 // matcher generation the matches were computed at
	done    bool
	result  stackprint.Result
	matches []stackprint.Match
	waiters []stackprint.Event
	expires time.Time
}

type job struct {
	target stackprint.Target
	sni    string
	e      *entry
}

// Pipeline is safe for concurrent Handle calls from several tailers.
type Pipeline struct {
	cfg     Config
	prober  Prober
	matcher Matcher
	judge   Judge
	sink    Sink
	log     *slog.Logger
	limiter *rate.Limiter
	scope   atomic.Pointer[Scope]
	queue   chan job

	mu    sync.Mutex
	cache *expirable.LRU[stackprint.Target, *entry]

	idle                                                chan struct{} // signalled when pending drops to 0
	events, deduped, outOfScope, queued, dropped, inval atomic.Uint64
	waitDrop, probed, probeOK, matched, alerts, sinkErr atomic.Uint64
	pending, inFlight                                   atomic.Int64
	abandoned, evictions, rateLimited                   atomic.Uint64
	fatal                                               chan error
}

// New checks cfg and builds a pipeline; call Run to start its workers.
func New(cfg Config, prober Prober, matcher Matcher, judge Judge, sink Sink) (*Pipeline, error) {
	if cfg.Scope == nil {
		return nil, errors.New("enrich: a scope is required")
	}
	if cfg.Capacity < 1 || cfg.QueueSize < 1 || cfg.MaxInFlight < 1 || cfg.ProbesPerSecond <= 0 || cfg.Burst < 1 || cfg.Deadline <= 0 || cfg.TTL <= 0 {
		return nil, fmt.Errorf("enrich: invalid limits %+v", cfg)
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = cfg.TTL
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.MaxWaiters <= 0 {
		cfg.MaxWaiters = 10000
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
	// Lifetimes are enforced per entry on lookup (entry.expires): a
	// success and a failure live differently long, which the library's one
	// TTL cannot express, and its background expiry goroutine cannot be
	// stopped in v2.0.7 (it would outlive the pipeline). So the LRU runs
	// without a TTL and only its capacity bound evicts.
	p := &Pipeline{
		cfg: cfg, prober: prober, matcher: matcher, judge: judge, sink: sink,
		log:     cfg.Logger,
		limiter: rate.NewLimiter(rate.Limit(cfg.ProbesPerSecond), cfg.Burst),
		queue:   make(chan job, cfg.QueueSize),
		idle:    make(chan struct{}, 1),
		fatal:   make(chan error, 1),
	}
	p.scope.Store(cfg.Scope)
	p.cache = expirable.NewLRU(cfg.Capacity, func(stackprint.Target, *entry) { p.evictions.Add(1) }, 0)
	return p, nil
}

// Handle judges one event. It never blocks on the network: a new target is
// queued for probing (or recorded as dropped when the queue is full), a
// known one is judged from the cache. An error means an output failed.
func (p *Pipeline) Handle(ctx context.Context, ev stackprint.Event) error {
	p.events.Add(1)
	t := ev.Target()
	if !t.IP.IsValid() {
		p.inval.Add(1)
		p.cfg.OnSettled(ev)
		return nil
	}
	now := p.cfg.Now()
	p.mu.Lock()
	if e, ok := p.cache.Get(t); ok && (!e.done || now.Before(e.expires)) {
		switch {
		case e.done && e.result.Status == stackprint.StatusOutOfScope:
			p.outOfScope.Add(1)
		case e.done && e.result.Status == stackprint.StatusRateLimited:
			p.rateLimited.Add(1)
		default:
			p.deduped.Add(1)
		}
		if !e.done {
			if len(e.waiters) < p.cfg.MaxWaiters {
				e.waiters = append(e.waiters, ev)
				p.mu.Unlock()
				return nil
			}
			p.mu.Unlock()
			p.waitDrop.Add(1)
			p.log.Warn("too many events waiting on one target; event judged without alert", "target", t.String())
			p.cfg.OnSettled(ev)
			return nil
		}
		res, m, gen := e.result, e.matches, e.gen
		p.mu.Unlock()
		if cur := p.generation(); cur != gen && matchable(res.Status) {
			// The DB changed since this target was matched (an operator
			// added or removed an entry): match again, at once.
			var err error
			if m, err = p.matcher.Match(res); err != nil {
				return fmt.Errorf("match %s: %w", t, err)
			}
			p.mu.Lock()
			e.matches, e.gen = m, cur
			p.mu.Unlock()
		}
		return p.settle(ev, p.verdicts(ev, res, m))
	}
	if ok, why := p.scope.Load().Check(t.Addr()); !ok {
		res := stackprint.Result{Target: t, Started: now, Status: stackprint.StatusOutOfScope, Error: why}
		p.cache.Add(t, &entry{done: true, result: res, expires: now.Add(p.cfg.NegativeTTL)})
		p.mu.Unlock()
		p.outOfScope.Add(1)
		p.log.Debug("target out of scope", "target", t.String(), "reason", why)
		return p.settle(ev, p.record(ev, res, nil))
	}
	sni := t.IP.String()
	if p.cfg.JARMSNIObserved && t.SNI != "" {
		sni = t.SNI
	}
	e := &entry{waiters: []stackprint.Event{ev}}
	select {
	case p.queue <- job{target: t, sni: sni, e: e}:
		p.cache.Add(t, e)
		p.pending.Add(1)
		p.mu.Unlock()
		p.queued.Add(1)
		return nil
	default:
		// One record per target and retry window, not per event: a flood
		// must not turn into a flood of writes. Later events of the target
		// count as rate_limited until the window ends, then it is retried.
		res := stackprint.Result{Target: t, Started: now, Status: stackprint.StatusRateLimited, Error: "probe queue full"}
		p.cache.Add(t, &entry{done: true, result: res, expires: now.Add(min(p.cfg.NegativeTTL, rateLimitedRetry))})
		p.mu.Unlock()
		p.dropped.Add(1)
		p.log.Warn("probe queue full; target recorded as rate_limited", "target", t.String(), "queue_size", p.cfg.QueueSize)
		return p.settle(ev, p.record(ev, res, nil))
	}
}

// rateLimitedRetry is how long a target refused by a full queue waits
// before a later event of it may queue it again.
const rateLimitedRetry = 30 * time.Second

// Run starts MaxInFlight workers and returns when ctx ends or an output
// fails. At shutdown the workers stop taking jobs and probes in flight get
// DrainTimeout to finish; a probe cut short by shutdown is abandoned, not
// recorded as a timeout: its events stay unsettled, so the ledger parks
// them and the next run probes again. Queued jobs are left the same way.
func (p *Pipeline) Run(ctx context.Context) error {
	take, stopTaking := context.WithCancel(ctx)
	defer stopTaking()
	probeCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	var wg sync.WaitGroup
	for range p.cfg.MaxInFlight {
		wg.Go(func() { p.worker(take, probeCtx) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-p.fatal:
		abort()
	}
	stopTaking()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(p.cfg.DrainTimeout):
		abort()
		<-done
	}
	return err
}

func (p *Pipeline) worker(take, probeCtx context.Context) {
	for {
		var j job
		select {
		case <-take.Done():
			return
		case j = <-p.queue:
		}
		if err := p.limiter.Wait(take); err != nil {
			p.abandoned.Add(1)
			return // shutting down before the probe started
		}
		p.probe(probeCtx, j)
	}
}

func (p *Pipeline) probe(ctx context.Context, j job) {
	var res stackprint.Result
	if ok, why := p.scope.Load().Check(j.target.Addr()); !ok {
		// The scope changed (reload) while the target waited in the
		// queue: policy wins over the queue, the target is not dialled.
		res = stackprint.Result{Target: j.target, Started: p.cfg.Now(), Status: stackprint.StatusOutOfScope, Error: why}
	} else {
		p.inFlight.Add(1)
		pctx, cancel := context.WithTimeout(ctx, p.cfg.Deadline)
		res = p.prober.Probe(pctx, j.target, j.sni)
		cancel()
		p.inFlight.Add(-1)
	}
	if ctx.Err() != nil {
		p.abandoned.Add(1)
		return
	}
	p.probed.Add(1)
	var matches []stackprint.Match
	gen := p.generation()
	if res.Status == stackprint.StatusOK {
		p.probeOK.Add(1)
	}
	if matchable(res.Status) {
		var err error
		if matches, err = p.matcher.Match(res); err != nil {
			p.fail(fmt.Errorf("match %s: %w", j.target, err))
			return
		}
		if len(matches) > 0 {
			p.matched.Add(1)
		}
	}
	ttl := p.cfg.TTL
	switch res.Status {
	case stackprint.StatusOK:
	case stackprint.StatusRateLimited: // the prober's per-IP budget: retry soon
		ttl = min(p.cfg.NegativeTTL, rateLimitedRetry)
	default:
		ttl = p.cfg.NegativeTTL
	}
	p.mu.Lock()
	j.e.done, j.e.result, j.e.matches, j.e.gen = true, res, matches, gen
	j.e.expires = p.cfg.Now().Add(ttl)
	waiters := j.e.waiters
	j.e.waiters = nil
	p.mu.Unlock()
	p.log.Debug("probed", "target", j.target.String(), "status", res.Status, "jarm", res.JARM, "matches", len(matches))

	err := p.record(waiters[0], res, matches)
	if cur := p.generation(); err == nil && cur != gen && matchable(res.Status) {
		// The DB changed during the probe (an online add whose retro-hunt
		// could not see this target yet): judge with the new entries.
		if matches, err = p.matcher.Match(res); err == nil {
			p.mu.Lock()
			j.e.matches, j.e.gen = matches, cur
			p.mu.Unlock()
		}
	}
	for _, ev := range waiters {
		if err != nil {
			break
		}
		err = p.settle(ev, p.verdicts(ev, res, matches))
	}
	if err != nil {
		p.fail(err)
	}
	if p.pending.Add(-1) == 0 {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
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

func (p *Pipeline) verdicts(ev stackprint.Event, res stackprint.Result, m []stackprint.Match) error {
	if res.Status == stackprint.StatusOutOfScope || res.Status == stackprint.StatusRateLimited {
		return nil // never probed: nothing for a rule to judge
	}
	// Rules are judged on every event, not only on DB matches: drift and
	// header rules fire without one.
	for _, v := range p.judge.Judge(ev, res, m) {
		a := stackprint.NewAlert(v, ev, res, p.cfg.Now())
		if err := p.sink.Alert(a); err != nil {
			p.sinkErr.Add(1)
			return fmt.Errorf("write alert %s: %w", a.ID, err)
		}
		p.alerts.Add(1)
	}
	return nil
}

func (p *Pipeline) fail(err error) {
	p.log.Error("pipeline output failed", "err", err)
	select {
	case p.fatal <- err:
	default:
	}
}

// SetScope swaps the scope policy (config reload) and forgets cached
// verdicts, so the new policy applies to targets seen before too; queued
// targets are checked again before they are dialled.
func (p *Pipeline) SetScope(s *Scope) {
	if s == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scope.Store(s)
	// Forget finished verdicts only: a target being probed keeps its
	// entry, so a new event cannot start a second, concurrent probe of it.
	for _, t := range p.cache.Keys() {
		if e, ok := p.cache.Peek(t); ok && e.done {
			p.cache.Remove(t)
		}
	}
}

// WaitIdle blocks until no target is queued or being probed, or ctx ends.
func (p *Pipeline) WaitIdle(ctx context.Context) error {
	for p.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.idle:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (p *Pipeline) Stats() Stats {
	return Stats{
		Events: p.events.Load(), Deduped: p.deduped.Load(), OutOfScope: p.outOfScope.Load(),
		Queued: p.queued.Load(), DroppedQueueFull: p.dropped.Load(), Invalid: p.inval.Load(),
		WaitersDropped: p.waitDrop.Load(), Probed: p.probed.Load(), ProbeOK: p.probeOK.Load(),
		Matched: p.matched.Load(), Alerts: p.alerts.Load(), SinkErrors: p.sinkErr.Load(),
		Pending: p.pending.Load(), InFlight: p.inFlight.Load(), Abandoned: p.abandoned.Load(),
		Evictions: p.evictions.Load(), RateLimited: p.rateLimited.Load(), QueueDepth: int64(len(p.queue)), CacheLen: int64(p.cache.Len()),
	}
}
