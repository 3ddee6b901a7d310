package watch

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stackprint/stackprint"
)

// Prober probes one watched server now, with every kind, outside the dedup
// cache but within the daemon's budgets (enrich.Pipeline.ProbeNow).
type Prober interface {
	ProbeNow(ctx context.Context, t stackprint.Target) (stackprint.Result, error)
}

// Store is the watch list's storage (the DB).
type Store interface {
	WatchList() ([]Entry, error)
	// WatchUpdate runs fn on the stored entry of key in one transaction:
	// fn's error rolls it back. It reports false when there is no such
	// entry (removed meanwhile).
	WatchUpdate(key string, fn func(*Entry) error) (bool, error)
}

// AlertSink writes alerts; they must be durable when Alert returns or, if
// the sink has a Sync method, when Sync returns.
type AlertSink interface {
	Alert(a stackprint.Alert) error
}

// Runner re-probes the watched servers when they are due and files the
// results (Observe).
type Runner struct {
	store  Store
	prober Prober
	sink   AlertSink
	log    *slog.Logger
	now    func() time.Time
	policy atomic.Pointer[Policy]
	wake   chan struct{}
	// MaxConcurrent bounds the probes waiting in the scheduler at once.
	MaxConcurrent int
	// Record, when set, writes the fingerprint record of every watch probe
	// (the daemon: stackprint.log and the observations retro-hunts read);
	// an error stops Run, as the alert sink's does.
	Record func(ev stackprint.Event, r stackprint.Result) error

	probes, alerts, failures atomic.Uint64
	watched                  atomic.Int64
}

// NewRunner builds a runner; call Run.
func NewRunner(store Store, prober Prober, sink AlertSink, p Policy, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{store: store, prober: prober, sink: sink, log: log, now: time.Now, wake: make(chan struct{}, 1), MaxConcurrent: 16}
	r.SetPolicy(p)
	return r
}

// SetPolicy swaps the policy (config reload); the entries on the default
// interval are rescheduled by the new one.
func (r *Runner) SetPolicy(p Policy) {
	if p.Every <= 0 {
		p.Every = DefaultPolicy().Every
	}
	r.policy.Store(&p)
	r.Changed()
}

// Changed tells the runner the list changed (add, rm, accept, import):
// new entries are probed at once, removed ones are dropped, the others
// are rescheduled by their (maybe new) interval from their last probe.
func (r *Runner) Changed() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// RunnerStats counts the runner's work.
type RunnerStats struct {
	Watched              int
	Probes, Alerts, Fail uint64
}

type outcome struct {
	key string
	t   stackprint.Target
	res stackprint.Result
	err error
}

// Run probes due entries until ctx ends. It returns an error when the
// store or the alert sink fails.
func (r *Runner) Run(ctx context.Context) error {
	sched := newSchedule()
	every := map[string]time.Duration{}
	// targets holds what each entry is probed as (its STARTTLS protocol
	// is not part of its key); reloaded with the list.
	targets := map[string]stackprint.Target{}
	inFlight := map[string]bool{}
	results := make(chan outcome)
	var wg sync.WaitGroup
	defer wg.Wait()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()

	load := func() error {
		list, err := r.store.WatchList()
		if err != nil {
			return fmt.Errorf("watch list: %w", err)
		}
		now := r.now()
		seen := map[string]bool{}
		for _, e := range list {
			k := e.Key()
			seen[k] = true
			every[k], targets[k] = e.Every, e.Target()
			if inFlight[k] {
				continue // rescheduled when its result is filed
			}
			due := now
			if !e.State.LastProbe.IsZero() {
				next := r.interval(e.Every)
				if e.State.Pending != nil {
					next = min(next, ConfirmAfter)
				}
				due = e.State.LastProbe.Add(next)
			}
			sched.set(k, due) // a past due time is probed at once
		}
		for k := range every {
			if !seen[k] {
				delete(every, k)
				delete(targets, k)
				sched.remove(k)
			}
		}
		r.watched.Store(int64(len(every)))
		return nil
	}
	if err := load(); err != nil {
		return err
	}
	r.log.Info("watch list loaded", "servers", len(every))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := r.now()
		for len(inFlight) < max(1, r.MaxConcurrent) {
			k, ok := sched.popDue(now)
			if !ok {
				break
			}
			if _, listed := every[k]; !listed {
				continue
			}
			inFlight[k] = true
			t := targets[k]
			wg.Go(func() {
				res, err := r.prober.ProbeNow(pctx, t)
				select {
				case results <- outcome{k, t, res, err}:
				case <-pctx.Done():
				}
			})
		}
		if next, ok := sched.next(); ok {
			timer.Reset(max(0, next.Sub(now)))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
			if err := load(); err != nil {
				return err
			}
		case <-timer.C:
		case o := <-results:
			delete(inFlight, o.key)
			if o.err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.log.Warn("watch probe not made; retrying", "target", o.key, "err", o.err)
				sched.set(o.key, r.now().Add(min(time.Minute, r.interval(every[o.key]))))
				continue
			}
			if r.Record != nil {
				t := o.t
				o.res.Target = t
				ev := stackprint.Event{TS: r.now(), Resp: t.Addr(), SNI: t.SNI, Source: Source, Kind: "watch"}
				if err := r.Record(ev, o.res); err != nil {
					return fmt.Errorf("watch %s: record: %w", o.key, err)
				}
			}
			pending, err := r.file(o.key, o.res)
			if err != nil {
				return err
			}
			if _, listed := every[o.key]; listed {
				next := r.interval(every[o.key])
				if pending {
					next = min(next, ConfirmAfter) // confirm a change soon
				}
				sched.set(o.key, r.now().Add(next))
			}
		}
	}
}

func (r *Runner) interval(every time.Duration) time.Duration {
	if every > 0 {
		return every
	}
	return r.policy.Load().Every
}

// ConfirmAfter is how soon a server whose fingerprints changed is probed
// again to confirm the change before a drift alert (at most its interval).
const ConfirmAfter = 10 * time.Second

// file records one result and writes its alerts, inside the entry's
// update: an alert that cannot be written leaves the state as it was, so
// the next probe raises it again. pending reports a change to confirm.
func (r *Runner) file(key string, res stackprint.Result) (pending bool, _ error) {
	r.probes.Add(1)
	if failed(res) {
		r.failures.Add(1)
	}
	p := *r.policy.Load()
	var written []stackprint.Alert
	found, err := r.store.WatchUpdate(key, func(e *Entry) error {
		now := r.now()
		hadBaseline := e.Baseline != nil
		next, alerts := Observe(*e, res, now, p)
		for _, a := range alerts {
			if err := r.sink.Alert(a); err != nil {
				return fmt.Errorf("write %s alert for %s: %w", a.Rule, key, err)
			}
		}
		if s, ok := r.sink.(interface{ Sync() error }); ok && len(alerts) > 0 {
			if err := s.Sync(); err != nil {
				return fmt.Errorf("sync alerts: %w", err)
			}
		}
		if !hadBaseline && next.Baseline != nil {
			r.log.Info("watch: baseline recorded", "target", key, "jarm", next.Baseline.JARM, "atsf", next.Baseline.ATSF)
		}
		*e, written = next, alerts
		pending = next.State.Pending != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("watch %s: %w", key, err)
	}
	if !found {
		return false, nil // removed while it was probed
	}
	for _, a := range written {
		r.alerts.Add(1)
		r.log.Warn("watch alert", "rule", a.Rule, "target", key, "detail", a.Detail)
	}
	r.log.Debug("watch probe filed", "target", key, "status", res.Status, "alerts", len(written), "unconfirmed_change", pending)
	return pending, nil
}

// Stats returns the runner's counters.
func (r *Runner) Stats() RunnerStats {
	return RunnerStats{Watched: int(r.watched.Load()), Probes: r.probes.Load(), Alerts: r.alerts.Load(), Fail: r.failures.Load()}
}

// schedule is a heap of due times by entry key.
type schedule struct {
	h  dueHeap
	at map[string]*dueItem
}

type dueItem struct {
	key string
	due time.Time
	idx int
}

type dueHeap []*dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *dueHeap) Push(x any)        { it := x.(*dueItem); it.idx = len(*h); *h = append(*h, it) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

func newSchedule() *schedule { return &schedule{at: map[string]*dueItem{}} }

// set (re)schedules key at due.
func (s *schedule) set(key string, due time.Time) {
	if it, ok := s.at[key]; ok {
		it.due = due
		heap.Fix(&s.h, it.idx)
		return
	}
	it := &dueItem{key: key, due: due}
	s.at[key] = it
	heap.Push(&s.h, it)
}

func (s *schedule) remove(key string) {
	if it, ok := s.at[key]; ok {
		heap.Remove(&s.h, it.idx)
		delete(s.at, key)
	}
}

// popDue takes the earliest key due at or before now.
func (s *schedule) popDue(now time.Time) (string, bool) {
	if len(s.h) == 0 || s.h[0].due.After(now) {
		return "", false
	}
	it := heap.Pop(&s.h).(*dueItem)
	delete(s.at, it.key)
	return it.key, true
}

// next is the earliest due time.
func (s *schedule) next() (time.Time, bool) {
	if len(s.h) == 0 {
		return time.Time{}, false
	}
	return s.h[0].due, true
}
