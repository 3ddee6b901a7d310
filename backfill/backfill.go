// Package backfill judges the connections of old sensor logs: every
// server in scope is judged from its stored observation when one is fresh,
// else probed through the daemon's prober, and its connections go through
// the rules like live ones; records and alerts are written to the
// configured outputs marked backfill. Progress is kept in the DB per
// server, so an interrupted run resumes without probing or alerting a
// finished server again; a server probed just before the interruption has
// a fresh observation and is judged from it.
//
// Judging a stored observation is the same code path a retro-hunt takes
// (observe.JudgeStored): exact and near matches alike.
package backfill

import (
	"cmp"
	"context"
	"fmt"
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

// Prober fingerprints one target (probe.Engine).
type Prober interface {
	ProbeWith(ctx context.Context, t stackprint.Target, jarmSNI string, o stackprint.ProbeOptions) stackprint.Result
}

// Sink is the outputs (output.Sink).
type Sink interface {
	Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error
	Alert(a stackprint.Alert) error
	Sync() error
}

// Config tunes a run.
type Config struct {
	Scope *enrich.Scope
	// Fresh is how old an observation may be and still stand for a probe
	// (the daemon's dedup.ttl).
	Fresh time.Duration
	// Workers probe at once (scheduler.max_in_flight); 0 → 4.
	Workers int
	// Deadline bounds one probe (probe.deadline); 0 → 30s.
	Deadline time.Duration
	// JARMSNIObserved sends the observed SNI in the JARM ClientHellos
	// (probe.jarm_sni: observed); by default the IP literal, like jarm.py.
	JARMSNIObserved bool
	// MaxClients bounds the connections kept per server to be judged
	// (the first of each distinct client address); 0 → 64.
	MaxClients int
	Now        func() time.Time
	// Progress is called after every server; nil: silent.
	Progress func(Progress)
}

// Progress is where a run stands.
type Progress struct {
	Done, Total int
	Elapsed     time.Duration
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

// server is one target and the connections to judge against it.
type server struct {
	t       stackprint.Target
	key     string
	events  []stackprint.Event
	clients map[string]bool
}

// Backfill collects the connections of old logs (Add), then judges them
// (Run).
type Backfill struct {
	cfg     Config
	store   Store
	prober  Prober
	judge   observe.Judge
	sink    Sink
	servers map[string]*server
	sum     Summary
}

// New returns a backfill over store, probing with prober, judging with
// judge and writing to sink.
func New(cfg Config, store Store, prober Prober, judge observe.Judge, sink Sink) *Backfill {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = 30 * time.Second
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Backfill{cfg: cfg, store: store, prober: prober, judge: judge, sink: sink, servers: map[string]*server{}}
}

// Add takes one connection read from a log (a tailer handler).
func (b *Backfill) Add(_ context.Context, ev stackprint.Event) error {
	b.sum.Events++
	ev.Backfill = true
	ev.Seq = 0
	t := ev.Target()
	t.IP = stackprint.CanonicalAddr(t.IP)
	if b.cfg.Scope != nil && !b.cfg.Scope.Allows(t.Addr()) {
		b.sum.OutOfScope++
		return nil
	}
	k := db.TargetKey(t)
	s := b.servers[k]
	if s == nil {
		s = &server{t: t, key: k, clients: map[string]bool{}}
		b.servers[k] = s
	}
	c := ev.Orig.Addr().String()
	if !s.clients[c] && len(s.events) < b.cfg.MaxClients {
		s.clients[c] = true
		s.events = append(s.events, ev)
	}
	return nil
}

// Run judges every collected server; run names the pass (the same files
// give the same name, so a second run resumes the first). It stops at the
// first write error or when ctx ends; what finished stays finished.
func (b *Backfill) Run(ctx context.Context, run string) (Summary, error) {
	list := make([]*server, 0, len(b.servers))
	for _, s := range b.servers {
		list = append(list, s)
	}
	slices.SortFunc(list, func(x, y *server) int { return cmp.Compare(x.key, y.key) })
	b.sum.Servers = len(list)
	start := b.cfg.Now()

	jobs := make(chan *server)
	var (
		mu       sync.Mutex // the summary, progress and the first error
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
	for range b.cfg.Workers {
		wg.Go(func() {
			for s := range jobs {
				outcome, alerts, err := b.one(ctx, run, s)
				mu.Lock()
				done++
				switch outcome {
				case outcomeResumed:
					b.sum.Resumed++
				case outcomeCached:
					b.sum.Cached++
				case outcomeProbedOK:
					b.sum.Probed++
					b.sum.ProbeOK++
				case outcomeProbed:
					b.sum.Probed++
				}
				b.sum.Alerts += alerts
				p := Progress{Done: done, Total: len(list), Elapsed: b.cfg.Now().Sub(start)}
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
	for _, s := range list {
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
		firstErr = ctx.Err()
	}
	if err := b.sink.Sync(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("backfill: sync outputs: %w", err)
	}
	return b.sum, firstErr
}

type outcome int

const (
	outcomeResumed outcome = iota
	outcomeCached
	outcomeProbed
	outcomeProbedOK
)

// one judges a server: from a fresh observation or a new probe.
func (b *Backfill) one(ctx context.Context, run string, s *server) (outcome, int, error) {
	if ok, err := b.store.BackfillDone(run, s.key); err != nil {
		return outcomeResumed, 0, err
	} else if ok {
		return outcomeResumed, 0, nil
	}
	first := s.events[0]
	var (
		res stackprint.Result
		out = outcomeCached
	)
	o, ok, err := b.store.Observation(s.t)
	if err != nil {
		return out, 0, err
	}
	now := b.cfg.Now()
	if ok && now.Sub(o.LastProbe) < b.cfg.Fresh && usable(o) {
		res = o.Result()
	} else {
		out = outcomeProbed
		pctx, cancel := context.WithTimeout(ctx, b.cfg.Deadline)
		jarmSNI := s.t.IP.String()
		if b.cfg.JARMSNIObserved && s.t.SNI != "" {
			jarmSNI = s.t.SNI
		}
		t := s.t
		t.StartTLS = first.Target().StartTLS
		res = b.prober.ProbeWith(pctx, t, jarmSNI, stackprint.ProbeOptions{})
		cancel()
		if ctx.Err() != nil {
			return out, 0, ctx.Err() // interrupted: the server is not finished
		}
		// Kept at once: a run interrupted from here on finds the server
		// fresh and does not probe it again.
		if err := b.store.RecordObservationOf(first, res); err != nil {
			return out, 0, fmt.Errorf("backfill %s: %w", s.t, err)
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
		return out, 0, fmt.Errorf("backfill %s: write record: %w", s.t, err)
	}
	var alerts []stackprint.Alert
	for _, ev := range s.events {
		r := res
		r.Target = ev.Target()
		for _, a := range observe.JudgeStored(b.judge, ev, r, ms, b.cfg.Now()) {
			if err := b.sink.Alert(a); err != nil {
				return out, len(alerts), fmt.Errorf("backfill %s: write alert: %w", s.t, err)
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
		return out, n, fmt.Errorf("backfill %s: sync outputs: %w", s.t, err)
	}
	return out, n, b.store.MarkBackfillDone(run, s.key)
}

// usable reports whether an observation can stand for a probe: its last
// probe answered.
func usable(o db.Observation) bool {
	return o.Status == stackprint.StatusOK || o.Status == stackprint.StatusPartial
}
