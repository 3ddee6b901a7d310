package observe

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
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
	RecordAlert(a stackprint.Alert) error
}

// Stage records observations after the next stage has written each
// record, and runs retro-hunts through it.
type Stage struct {
	next   Sink
	store  Store
	judge  Judge
	window time.Duration // retro-hunt window; 0 = off
	log    *slog.Logger
}

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

// Alert passes the alert downstream, then keeps it in the DB for explain.
func (s *Stage) Alert(a stackprint.Alert) error {
	if err := s.next.Alert(a); err != nil {
		return err
	}
	if err := s.store.RecordAlert(a); err != nil {
		return fmt.Errorf("record alert %s: %w", a.ID, err)
	}
	return nil
}

// Sync makes the outputs durable.
func (s *Stage) Sync() error { return s.next.Sync() }

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
		for _, sg := range sightings {
			for _, a := range retroAlerts(s.judge, rec, sg, now) {
				if err := s.Alert(a); err != nil {
					return n, fmt.Errorf("retro-hunt %s: write alert for %s: %w", k, sg.Target(), err)
				}
				n++
			}
		}
		if len(sightings) > 0 {
			// No checkpoint commit follows a retro-hunt on a quiet
			// daemon: make its alerts durable before the client is told.
			if err := s.next.Sync(); err != nil {
				return n, fmt.Errorf("retro-hunt %s: sync alerts: %w", k, err)
			}
			s.log.Info("retro-hunt", "kind", k.Kind, "value", k.Value, "label", rec.Label, "targets", len(sightings), "since", since.UTC().Format(time.RFC3339))
		}
	}
	return n, nil
}

// retroAlerts are the alerts the rules give a target that carried rec's
// fingerprint when it was last probed with it. There is no connection to
// point at: the event is the target itself, at the time it carried the
// fingerprint, from source "retro-hunt"; the alert id is deterministic,
// so repeating the hunt yields the same ids.
func retroAlerts(judge Judge, rec db.Record, s db.Sighting, now time.Time) []stackprint.Alert {
	fps := s.Fingerprints
	if !fps.Has(rec.Key()) {
		for _, h := range s.History {
			if h.Has(rec.Key()) {
				fps = h.Fingerprints
				break
			}
		}
	}
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
	res := stackprint.Result{Target: t, Started: s.Carried, Status: stackprint.StatusOK, JARM: fps.JARM}
	if fps.ATSF != "" {
		res.ATSF = &stackprint.ATSF{ID: fps.ATSF}
	}
	if fps.CertSHA256 != "" || fps.CertSHA1 != "" {
		res.Cert = &stackprint.CertFacts{SHA256: fps.CertSHA256, SHA1: fps.CertSHA1}
	}
	m := stackprint.Match{Kind: rec.Kind, Value: rec.Value, Label: rec.Label, Source: rec.Source, Confidence: rec.Confidence,
		Category: rec.Category, BlockCount: rec.BlockCount, TopCount: rec.TopCount}
	var out []stackprint.Alert
	for _, v := range judge.JudgeRest(ev, res, []stackprint.Match{m}, nil) {
		a := stackprint.NewAlert(v, ev, res, now)
		a.ID = stackprint.AlertID(v.Rule, ev, rec.Value) // the fingerprint that matched, not only the JARM
		a.Retro = true
		out = append(out, a)
	}
	return out
}

// Prune drops observations older than keep, and past max (0: no count
// bound) those probed longest ago, hourly until ctx ends, so the DB does
// not grow forever. keep covers what retro-hunts and the dedup TTL can
// use.
func (s *Stage) Prune(ctx context.Context, keep time.Duration, max int) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.store.PruneObservationsTo(time.Now().Add(-keep), max); err != nil {
			s.log.Warn("prune observations", "err", err)
		} else if n > 0 {
			s.log.Info("pruned old observations", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
