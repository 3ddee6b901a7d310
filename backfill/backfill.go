// Package backfill judges the connections of old sensor logs: every
// server in scope is judged from its stored observation when one is fresh,
// else probed, and its connections go through the rules like live ones;
// records and alerts are written to the configured outputs marked
// backfill. Progress is kept in the DB per server, so an interrupted run
// resumes without probing or alerting a finished server again; a server
// probed just before the interruption has a fresh observation and is
// judged from it.
//
// A run has two halves: a Collector groups the connections read from the
// logs by server, and a Runner judges the servers one by one. `stackprint
// scan` runs both in process when no daemon runs; while one runs, the CLI
// collects and the daemon judges (the admin API streams the servers to it,
// one per line, and its Runner probes through the daemon's scheduler).
//
// Judging a stored observation is the same code path a retro-hunt takes
// (observe.JudgeStored): exact and near matches alike.
package backfill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/observe"
)

// Store is the DB: observations, matches, alerts and the run's progress.
type Store interface {
	Observation(t stackprint.Target) (db.Observation, bool, error)
	Match(r stackprint.Result) ([]stackprint.Match, error)
	RecordObservationOf(ev stackprint.Event, r stackprint.Result) error
	RecordAlerts(as []stackprint.Alert) error
	BackfillDone(run, target string) (bool, error)
	MarkBackfillDone(run, target string) error
}

// Prober fingerprints one target with every kind: a probe engine of the
// process's own (EngineProber) or the daemon's scheduler. An error means
// the probe did not happen (ctx ended); a failed probe is a Result.
type Prober interface {
	Probe(ctx context.Context, t stackprint.Target) (stackprint.Result, error)
}

// Sink is the outputs (output.Sink).
type Sink interface {
	Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error
	Alert(a stackprint.Alert) error
	Sync() error
}

// DefaultMaxClients bounds the connections kept per server to be judged
// (the first of each distinct client address).
const DefaultMaxClients = 64

// Config tunes a Runner.
type Config struct {
	// Scope is applied to every server; nil: all are in scope.
	Scope *enrich.Scope
	// Fresh is how old an observation may be and still stand for a probe
	// (the daemon's dedup.ttl).
	Fresh time.Duration
	// Workers judge servers at once; 0 → 4.
	Workers int
	Now     func() time.Time
	// Progress is called after every server; nil: silent.
	Progress func(Progress)
}

// Progress is where a run stands: servers done of total, and the
// summary so far.
type Progress struct {
	Done    int           `json:"done"`
	Total   int           `json:"total"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Summary Summary       `json:"summary"`
}

// Summary counts a run's outcome. Every server in scope ends in exactly one
// of Resumed (finished by an earlier, interrupted run), Cached (judged from
// a fresh observation) or Probed.
type Summary struct {
	Events     int `json:"events"`
	Servers    int `json:"servers"`
	OutOfScope int `json:"out_of_scope"`
	Resumed    int `json:"resumed"`
	Cached     int `json:"cached"`
	Probed     int `json:"probed"`
	ProbeOK    int `json:"probe_ok"`
	Alerts     int `json:"alerts"`
}

// Server is one server of the logs and the connections to judge against
// it: one line of the admin API's upload.
type Server struct {
	// Events are the first connection of each distinct client, up to
	// DefaultMaxClients, all to the same server.
	Events []stackprint.Event `json:"events"`
	// Count is how many connections the logs had to it.
	Count int `json:"count"`
}

// Target is the server probed (its first connection's target).
func (s Server) Target() stackprint.Target {
	t := s.Events[0].Target()
	t.IP = stackprint.CanonicalAddr(t.IP)
	return t
}

// Check reports what makes s unusable: no connection, an invalid
// address, connections to different servers, too many.
func (s Server) Check() error {
	if len(s.Events) == 0 {
		return errors.New("server without connections")
	}
	if len(s.Events) > DefaultMaxClients {
		return fmt.Errorf("%d connections, at most %d", len(s.Events), DefaultMaxClients)
	}
	t := s.Target()
	if !t.IP.IsValid() || t.Port == 0 {
		return fmt.Errorf("invalid server address %s", s.Events[0].Resp)
	}
	k := db.TargetKey(t)
	for i, ev := range s.Events[1:] {
		et := ev.Target()
		et.IP = stackprint.CanonicalAddr(et.IP)
		if db.TargetKey(et) != k {
			return fmt.Errorf("connection %d is to %s, not %s", i+2, et, t)
		}
	}
	if s.Count < len(s.Events) {
		return fmt.Errorf("count %d below its %d connections", s.Count, len(s.Events))
	}
	return nil
}

// collected is a server being collected.
type collected struct {
	Server
	key     string
	clients map[string]bool
}

// Collector groups the connections read from logs by server.
type Collector struct {
	scope   *enrich.Scope
	servers map[string]*collected
	// Events counts the connections taken; OutOfScope those the scope
	// left out.
	Events, OutOfScope int
}

// NewCollector keeps the servers scope allows (nil: all).
func NewCollector(scope *enrich.Scope) *Collector {
	return &Collector{scope: scope, servers: map[string]*collected{}}
}

// Add takes one connection read from a log (a tailer handler).
func (c *Collector) Add(_ context.Context, ev stackprint.Event) error {
	c.Events++
	ev.Backfill = true
	ev.Seq = 0
	t := ev.Target()
	t.IP = stackprint.CanonicalAddr(t.IP)
	if c.scope != nil && !c.scope.Allows(t.Addr()) {
		c.OutOfScope++
		return nil
	}
	k := db.TargetKey(t)
	s := c.servers[k]
	if s == nil {
		s = &collected{key: k, clients: map[string]bool{}}
		c.servers[k] = s
	}
	s.Count++
	o := ev.Orig.Addr().String()
	if !s.clients[o] && len(s.Events) < DefaultMaxClients {
		s.clients[o] = true
		s.Events = append(s.Events, ev)
	}
	return nil
}

// Servers are the servers collected, in target key order.
func (c *Collector) Servers() []Server {
	list := make([]*collected, 0, len(c.servers))
	for _, s := range c.servers {
		list = append(list, s)
	}
	slices.SortFunc(list, func(x, y *collected) int { return cmp.Compare(x.key, y.key) })
	out := make([]Server, len(list))
	for i, s := range list {
		out[i] = s.Server
	}
	return out
}

// Complete adds what the collector left out to a Runner's summary.
func (c *Collector) Complete(s Summary) Summary {
	s.Events += c.OutOfScope
	s.OutOfScope += c.OutOfScope
	return s
}

// Runner judges servers.
type Runner struct {
	cfg    Config
	store  Store
	prober Prober
	judge  observe.Judge
	sink   Sink
}

// NewRunner returns a runner over store, probing with prober, judging
// with judge and writing to sink.
func NewRunner(cfg Config, store Store, prober Prober, judge observe.Judge, sink Sink) *Runner {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{cfg: cfg, store: store, prober: prober, judge: judge, sink: sink}
}

// Run judges servers (total of them, for the progress), taking the next
// one only when a worker is free, so a caller streaming them is held back
// rather than buffered. run names the pass (the same files give the same
// name, so a second run resumes the first). It stops at the first write
// error or when ctx ends; what finished stays finished.
func (b *Runner) Run(ctx context.Context, run string, total int, servers iter.Seq[Server]) (Summary, error) {
	start := b.cfg.Now()
	var (
		mu       sync.Mutex // the summary, progress and the first error
		sum      Summary
		firstErr error
		done     int
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	jobs := make(chan Server)
	for range b.cfg.Workers {
		wg.Go(func() {
			for s := range jobs {
				outcome, alerts, err := b.one(ctx, run, s)
				if outcome == outcomeInterrupted {
					fail(err)
					continue // not judged: neither done nor counted
				}
				mu.Lock()
				done++
				sum.Events += s.Count
				switch outcome {
				case outcomeOutOfScope:
					sum.OutOfScope += s.Count
				case outcomeResumed:
					sum.Resumed++
				case outcomeCached:
					sum.Cached++
				case outcomeProbedOK:
					sum.Probed++
					sum.ProbeOK++
				case outcomeProbed:
					sum.Probed++
				}
				if outcome != outcomeOutOfScope {
					sum.Servers++
				}
				sum.Alerts += alerts
				p := Progress{Done: done, Total: max(total, done), Elapsed: b.cfg.Now().Sub(start), Summary: sum}
				mu.Unlock()
				if err != nil {
					fail(err)
				}
				if b.cfg.Progress != nil {
					b.cfg.Progress(p)
				}
			}
		})
	}
feed:
	for s := range servers {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		select {
		case <-ctx.Done():
			break feed
		case jobs <- s:
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = context.Cause(ctx)
	}
	if err := b.sink.Sync(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("backfill: sync outputs: %w", err)
	}
	return sum, firstErr
}

type outcome int

const (
	outcomeInterrupted outcome = iota // ctx ended before the server's probe
	outcomeResumed
	outcomeOutOfScope
	outcomeCached
	outcomeProbed
	outcomeProbedOK
)

// one judges a server: from a fresh observation or a new probe.
func (b *Runner) one(ctx context.Context, run string, s Server) (outcome, int, error) {
	t := s.Target()
	if b.cfg.Scope != nil && !b.cfg.Scope.Allows(t.Addr()) {
		return outcomeOutOfScope, 0, nil
	}
	key := db.TargetKey(t)
	if ok, err := b.store.BackfillDone(run, key); err != nil {
		return outcomeResumed, 0, err
	} else if ok {
		return outcomeResumed, 0, nil
	}
	first := s.Events[0]
	first.Backfill, first.Seq = true, 0 // whoever sent the server
	var (
		res stackprint.Result
		out = outcomeCached
	)
	o, ok, err := b.store.Observation(t)
	if err != nil {
		return out, 0, err
	}
	now := b.cfg.Now()
	if ok && now.Sub(o.LastProbe) < b.cfg.Fresh && usable(o) {
		res = o.Result()
	} else {
		out = outcomeProbed
		res, err = b.prober.Probe(ctx, t)
		if err != nil {
			return outcomeInterrupted, 0, err // the server is not finished
		}
		// Kept at once, even when the run is being interrupted: a run
		// interrupted from here on finds the server fresh and does not
		// probe it again.
		if err := b.store.RecordObservationOf(first, res); err != nil {
			return out, 0, fmt.Errorf("backfill %s: %w", t, err)
		}
		if ctx.Err() != nil {
			return out, 0, context.Cause(ctx)
		}
		if res.Status == stackprint.StatusOK || res.Status == stackprint.StatusPartial {
			out = outcomeProbedOK
		}
	}
	var ms []stackprint.Match
	if res.Status == stackprint.StatusOK || res.Status == stackprint.StatusPartial {
		if ms, err = b.store.Match(res); err != nil {
			return out, 0, err
		}
	}
	if err := b.sink.Record(first, res, ms); err != nil {
		return out, 0, fmt.Errorf("backfill %s: write record: %w", t, err)
	}
	var alerts []stackprint.Alert
	for _, ev := range s.Events {
		ev.Backfill, ev.Seq = true, 0
		r := res
		r.Target = ev.Target()
		for _, a := range observe.JudgeStored(b.judge, ev, r, ms, b.cfg.Now()) {
			if err := b.sink.Alert(a); err != nil {
				return out, len(alerts), fmt.Errorf("backfill %s: write alert: %w", t, err)
			}
			alerts = append(alerts, a)
		}
	}
	n := len(alerts)
	// Kept for explain in one transaction per server, not one per alert.
	if err := b.store.RecordAlerts(alerts); err != nil {
		return out, n, err
	}
	// Outputs durable before the server counts as finished.
	if err := b.sink.Sync(); err != nil {
		return out, n, fmt.Errorf("backfill %s: sync outputs: %w", t, err)
	}
	return out, n, b.store.MarkBackfillDone(run, key)
}

// usable reports whether an observation can stand for a probe: its last
// probe answered.
func usable(o db.Observation) bool {
	return o.Status == stackprint.StatusOK || o.Status == stackprint.StatusPartial
}

// Engine is a probe engine (probe.Engine).
type Engine interface {
	ProbeWith(ctx context.Context, t stackprint.Target, jarmSNI string, o stackprint.ProbeOptions) stackprint.Result
}

// EngineProber probes through an engine of the process's own, each probe
// bounded by Deadline (probe.deadline; 0 → 30s), JARM sending the IP
// literal as SNI like jarm.py unless JARMSNIObserved (probe.jarm_sni:
// observed).
type EngineProber struct {
	Engine          Engine
	Deadline        time.Duration
	JARMSNIObserved bool
}

func (p EngineProber) Probe(ctx context.Context, t stackprint.Target) (stackprint.Result, error) {
	pctx, cancel := context.WithTimeout(ctx, cmp.Or(p.Deadline, 30*time.Second))
	defer cancel()
	jarmSNI := t.IP.String()
	if p.JARMSNIObserved && t.SNI != "" {
		jarmSNI = t.SNI
	}
	r := p.Engine.ProbeWith(pctx, t, jarmSNI, stackprint.ProbeOptions{})
	if ctx.Err() != nil {
		return r, context.Cause(ctx) // cut short: not the server's answer
	}
	return r, nil
}

// Backfill is a run in one process: Add the connections of the logs,
// then Run.
type Backfill struct {
	col *Collector
	run *Runner
}

// New returns an in-process backfill; cfg.Scope filters as the
// connections are added.
func New(cfg Config, store Store, prober Prober, judge observe.Judge, sink Sink) *Backfill {
	return &Backfill{col: NewCollector(cfg.Scope), run: NewRunner(cfg, store, prober, judge, sink)}
}

// Add takes one connection read from a log (a tailer handler).
func (b *Backfill) Add(ctx context.Context, ev stackprint.Event) error { return b.col.Add(ctx, ev) }

// Run judges every collected server under the run name run.
func (b *Backfill) Run(ctx context.Context, run string) (Summary, error) {
	list := b.col.Servers()
	sum, err := b.run.Run(ctx, run, len(list), slices.Values(list))
	return b.col.Complete(sum), err
}
