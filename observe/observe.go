package observe

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
)

// Sink is the next stage: the outputs. Sync makes what was written
// durable.
type Sink interface {
	Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error
	Alert(a stackprint.Alert) error
	Sync() error
}

// Judge runs the rules on a result and its matches.
type Judge interface {
	JudgeRest(ev stackprint.Event, r stackprint.Result, m []stackprint.Match, done []string) []stackprint.Verdict
}

// Store is where observations are kept and fingerprints looked up.
type Store interface {
	RecordObservationOf(ev stackprint.Event, r stackprint.Result) error
	Get(kind, value string) (db.Record, bool, error)
	ObservationsWith(kind, value string, since time.Time) ([]db.Sighting, error)
	PruneObservationsTo(cutoff time.Time, max int) (int, error)
	PruneObservationsOver(max int) (int, error)
	Observations() int
	RecordAlerts(as []stackprint.Alert) error
	ObservationsNear(rec db.Record, since time.Time) ([]db.NearSighting, error)
}

// Stage records observations after the next stage has written each
// record, and runs retro-hunts through it.
type Stage struct {
	next   Sink
	store  Store
	judge  Judge
	window time.Duration // retro-hunt window; 0 = off
	log    *slog.Logger

	mu     sync.Mutex
	alerts []stackprint.Alert // written downstream, not yet kept for explain
}

// maxHeldAlerts bounds the alerts held between two Syncs (group commits).
const maxHeldAlerts = 1024

// New returns the stage in front of next. window is how far back a
// retro-hunt looks (db.retro_window); 0 turns retro-hunts off.
func New(next Sink, store Store, judge Judge, window time.Duration, log *slog.Logger) *Stage {
	return &Stage{next: next, store: store, judge: judge, window: window, log: log}
}

// Record writes the record downstream, then keeps the observation that
// retro-hunts and the exports read.
func (s *Stage) Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error {
	if err := s.next.Record(ev, r, m); err != nil {
		return err
	}
	if err := s.store.RecordObservationOf(ev, r); err != nil {
		return fmt.Errorf("record observation of %s: %w", r.Target, err)
	}
	return nil
}

// Alert passes the alert downstream, then holds it until the next Sync
// keeps it in the DB for explain, with the others of that group commit in
// one transaction. An alert held when the daemon dies is not lost to
// explain: its event was not committed either, so it is judged and
// written again after the restart (same alert id).
func (s *Stage) Alert(a stackprint.Alert) error {
	if err := s.next.Alert(a); err != nil {
		return err
	}
	s.mu.Lock()
	s.alerts = append(s.alerts, a)
	full := len(s.alerts) >= maxHeldAlerts
	s.mu.Unlock()
	if full {
		return s.keepAlerts()
	}
	return nil
}

// Sync makes the outputs durable, then keeps the alerts written since the
// last Sync.
func (s *Stage) Sync() error {
	if err := s.next.Sync(); err != nil {
		return err
	}
	return s.keepAlerts()
}

func (s *Stage) keepAlerts() error {
	s.mu.Lock()
	held := s.alerts
	s.alerts = nil
	s.mu.Unlock()
	if err := s.store.RecordAlerts(held); err != nil {
		// Kept for the next Sync (a full disk is waited out upstream).
		s.mu.Lock()
		s.alerts = append(held, s.alerts...)
		s.mu.Unlock()
		return fmt.Errorf("keep alerts for explain: %w", err)
	}
	return nil
}

// RetroHunt re-checks the stored observations for fingerprints just
// added: every target that carried one within the window gets the alert
// it would have had, marked retroactive, through the next stage. It
// returns the number of alerts written.
func (s *Stage) RetroHunt(keys []db.Key) (int, error) {
	if s.window <= 0 || len(keys) == 0 {
		return 0, nil
	}
	now := time.Now()
	since := now.Add(-s.window)
	n := 0
	for _, k := range keys {
		rec, ok, err := s.store.Get(k.Kind, k.Value)
		if err != nil {
			return n, fmt.Errorf("retro-hunt %s: %w", k, err)
		}
		if !ok {
			continue
		}
		sightings, err := s.store.ObservationsWith(k.Kind, k.Value, since)
		if err != nil {
			return n, fmt.Errorf("retro-hunt %s: %w", k, err)
		}
		near, err := s.store.ObservationsNear(rec, since)
		if err != nil {
			return n, fmt.Errorf("retro-hunt %s: %w", k, err)
		}
		for _, sg := range sightings {
			for _, a := range retroAlerts(s.judge, rec, sg, nil, now) {
				if err := s.Alert(a); err != nil {
					return n, fmt.Errorf("retro-hunt %s: write alert for %s: %w", k, sg.Target(), err)
				}
				n++
			}
		}
		for _, ns := range near {
			for _, a := range retroAlerts(s.judge, rec, ns.Sighting, ns.Near, now) {
				if err := s.Alert(a); err != nil {
					return n, fmt.Errorf("retro-hunt %s: write alert for %s: %w", k, ns.Target(), err)
				}
				n++
			}
		}
		if len(sightings)+len(near) > 0 {
			// No checkpoint commit follows a retro-hunt on a quiet
			// daemon: make its alerts durable before the client is told.
			if err := s.Sync(); err != nil {
				return n, fmt.Errorf("retro-hunt %s: sync alerts: %w", k, err)
			}
			s.log.Info("retro-hunt", "kind", k.Kind, "value", k.Value, "label", rec.Label, "targets", len(sightings), "near", len(near), "since", since.UTC().Format(time.RFC3339))
		}
	}
	return n, nil
}

// retroAlerts are the alerts the rules give a target that carried rec's
// fingerprint (or, near, answered 9 of 10 ClientHellos as rec does) when
// it was last probed. There is no connection to point at: the event is
// the target itself, at the time it carried the fingerprint, from source
// "retro-hunt"; the alert id is deterministic, so repeating the hunt
// yields the same ids.
func retroAlerts(judge Judge, rec db.Record, s db.Sighting, near *stackprint.Near, now time.Time) []stackprint.Alert {
	res := s.Result()
	if near == nil && !s.Fingerprints.Has(rec.Key()) {
		// Carried before a change: judge the set it had then.
		for _, h := range s.History {
			if h.Has(rec.Key()) {
				res = db.Observation{IP: s.IP, Port: s.Port, SNI: s.SNI, Fingerprints: h.Fingerprints, Seen: h.Until, Status: stackprint.StatusOK}.Result()
				break
			}
		}
	}
	res.Started = s.Carried
	t := s.Target()
	ev := stackprint.Event{
		TS:     s.Carried,
		Resp:   netip.AddrPortFrom(t.IP, t.Port),
		SNI:    t.SNI,
		Source: "retro-hunt",
		Kind:   "retro_hunt",
	}
	if c := s.Client; c != nil {
		// The connection that led to the probe: who to look at.
		ev.TS, ev.Orig, ev.UID, ev.FlowID = c.TS, c.Orig, c.UID, c.FlowID
	}
	m := stackprint.Match{Kind: rec.Kind, Value: rec.Value, Label: rec.Label, Source: rec.Source, Confidence: rec.Confidence,
		Category: rec.Category, BlockCount: rec.BlockCount, TopCount: rec.TopCount, Near: near}
	out := JudgeStored(judge, ev, res, []stackprint.Match{m}, now)
	for i := range out {
		out[i].ID = stackprint.AlertID(out[i].Rule, ev, rec.Value) // the fingerprint that matched, not only the JARM
		out[i].Retro = true
	}
	return out
}

// JudgeStored runs the rules on a connection whose server's result comes
// from storage (an observation) rather than a probe just made, with its
// DB matches, exact and near: the one code path of retro-hunts (a
// fingerprint added later) and backfill (connections of old logs).
func JudgeStored(judge Judge, ev stackprint.Event, r stackprint.Result, ms []stackprint.Match, now time.Time) []stackprint.Alert {
	var out []stackprint.Alert
	for _, v := range judge.JudgeRest(ev, r, ms, nil) {
		out = append(out, stackprint.NewAlert(v, ev, r, now))
	}
	return out
}

// Prune drops observations older than keep, and past max (0: no count
// bound) those probed longest ago, hourly until ctx ends, so the DB does
// not grow forever. keep covers what retro-hunts and the dedup TTL can
// use. In between, whenever probing has taken the count a tenth past max,
// the oldest go at once: the file stays near the size of max
// observations however fast new servers come.
func (s *Stage) Prune(ctx context.Context, keep time.Duration, max int) {
	s.prune(ctx, keep, max, time.Hour, pruneCheck)
}

// pruneCheck is how often Prune compares the count with its bound.
const pruneCheck = 5 * time.Second

func (s *Stage) prune(ctx context.Context, keep time.Duration, max int, every, check time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	c := time.NewTicker(check)
	defer c.Stop()
	for {
		if n, err := s.store.PruneObservationsTo(time.Now().Add(-keep), max); err != nil {
			s.log.Warn("prune observations", "err", err)
		} else if n > 0 {
			s.log.Info("pruned old observations", "count", n)
		}
		if !s.pruneOver(ctx, t.C, c.C, max) {
			return
		}
	}
}

// pruneOver keeps the count within a tenth past max at every check until
// the next full prune is due (true) or ctx ends (false).
func (s *Stage) pruneOver(ctx context.Context, full, check <-chan time.Time, max int) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-full:
			return true
		case <-check:
			if max <= 0 || s.store.Observations() <= max+max/10 {
				continue
			}
			if n, err := s.store.PruneObservationsOver(max); err != nil {
				s.log.Warn("prune observations", "err", err)
			} else {
				s.log.Debug("pruned the observations past db.observations_max", "count", n)
			}
		}
	}
}
