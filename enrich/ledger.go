package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stackprint/stackprint"
)

// StateStore persists the ledger: checkpoints and parked events move
// together in one transaction (db.DB implements it).
type StateStore interface {
	CommitStateSpill(checkpoints map[string][]byte, park, spill []stackprint.Event, unpark []uint64) ([]uint64, error)
}

// Ledger implements the delivery rule of docs/DESIGN.md: an input's position is
// committed only past events that are settled (judged, outputs written) or
// parked (persisted as pending because their probe is still running).
//
// Each input's events are kept in read order. A commit pops the settled
// or parked prefix and stores the position of the last popped event; events
// still unsettled after a whole commit interval are parked in the same
// transaction so a slow probe cannot hold the checkpoint back. A parked
// event that settles later is removed from the pending store at the next
// commit. A crash between settle and unpark replays the event: at least
// once, with the same alert_id.
type Ledger struct {
	// BeforeCommit, when set, runs at the start of every commit; the
	// daemon makes the outputs durable there (fsync), so a committed
	// position never covers output that is not on disk. Set it before use.
	BeforeCommit func() error

	store StateStore
	pos   func(stackprint.Event) ([]byte, error)
	log   *slog.Logger

	mu        sync.Mutex
	seq       uint64
	inputs    map[string][]*ledgerEntry
	bySeq     map[uint64]*ledgerEntry
	unpark    []uint64
	commits   uint64
	spilling  int           // events spilled but not yet written
	kick      chan struct{} // asks Run for an early commit
	written   chan struct{} // closed after each commit that wrote spills
	syncErr   error         // a failed BeforeCommit: nothing may be committed after it
	committed map[string]Committed
}

// ErrCommitLater, from BeforeCommit, skips a commit without failing: the
// outputs are retrying a failed write and nothing may be committed until
// it succeeds.
var ErrCommitLater = errors.New("outputs not durable yet, commit later")

// Committed is the file position last committed for an input.
type Committed struct {
	Input  string
	File   string
	Offset int64
}

type ledgerEntry struct {
	ev      stackprint.Event
	pos     []byte // precomputed position (Progress entries); nil: encode ev
	settled bool
	parked  bool
	spill   bool   // the pipeline let go of it: persist it in the backlog
	key     uint64 // pending-store key once parked
	seen    uint64 // commit number when first seen unsettled by a commit
}

// NewLedger makes a ledger; pos encodes the tailer position just past an
// event's line, as stored in the checkpoint.
func NewLedger(store StateStore, pos func(stackprint.Event) ([]byte, error), log *slog.Logger) *Ledger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ledger{store: store, pos: pos, log: log, inputs: map[string][]*ledgerEntry{}, bySeq: map[uint64]*ledgerEntry{}, committed: map[string]Committed{},
		kick: make(chan struct{}, 1), written: make(chan struct{})}
}

// CheckpointKey is the key an event's position is committed under: one per
// input and file path (a glob input follows several files).
func CheckpointKey(source, path string) string { return source + "\x00" + path }

// Track registers an event read from an input, before it is handed to the
// pipeline, and returns it with its ledger id set.
func (l *Ledger) Track(ev stackprint.Event) stackprint.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	ev.Seq = l.seq
	e := &ledgerEntry{ev: ev}
	l.inputs[ev.Source] = append(l.inputs[ev.Source], e)
	l.bySeq[ev.Seq] = e
	return ev
}

// Progress records that an input's reader has moved to pos (encoded) in
// file at offset past lines that were no events; it commits once every
// event before it is settled.
func (l *Ledger) Progress(source, file string, offset int64, pos []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := stackprint.Event{Source: source, File: file, Offset: offset}
	l.inputs[source] = append(l.inputs[source], &ledgerEntry{ev: ev, pos: pos, settled: true})
}

// Resume registers an event loaded from the pending store (already parked
// under key), for re-probing after a restart.
func (l *Ledger) Resume(ev stackprint.Event, key uint64) stackprint.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	ev.Seq = l.seq
	l.bySeq[ev.Seq] = &ledgerEntry{ev: ev, parked: true, key: key}
	return ev
}

// Spill is the pipeline's Spill callback: ev is persisted in the backlog
// at the next commit and then forgotten here (the pipeline loads it back
// with Resume). It reports false for an event already parked, which the
// pipeline then keeps in memory.
func (l *Ledger) Spill(ev stackprint.Event) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.bySeq[ev.Seq]
	if !ok || e.parked || e.settled {
		return false
	}
	e.ev, e.spill = ev, true
	l.spilling++
	if l.spilling >= spillFlush {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// spillFlush is how many spilled events make Run commit before its
// interval: a burst of lines is on disk, and out of memory, sooner.
const spillFlush = 2000

// WaitSpills blocks while more spilled events wait for their commit than
// memory should hold (the inputs call it before reading on), or ctx ends.
func (l *Ledger) WaitSpills(ctx context.Context) error {
	for {
		l.mu.Lock()
		n, ch := l.spilling, l.written
		l.mu.Unlock()
		if n < 4*spillFlush {
			return nil
		}
		select {
		case l.kick <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Settled is the pipeline's OnSettled callback.
func (l *Ledger) Settled(ev stackprint.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.bySeq[ev.Seq]
	if !ok {
		return // untracked (e.g. tests)
	}
	delete(l.bySeq, ev.Seq)
	e.settled = true
	if e.parked {
		l.unpark = append(l.unpark, e.key)
	}
}

// Commit writes the positions of every input past its settled prefix,
// parks events that stayed unsettled for a whole interval, and drops
// settled parked events from the store.
func (l *Ledger) Commit() error { return l.commit(false) }

// CommitFinal is the shutdown commit: every unsettled event is parked now,
// so probes abandoned in the queue resume after the restart.
func (l *Ledger) CommitFinal() error { return l.commit(true) }

func (l *Ledger) commit(final bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.commits++
	cps := map[string][]byte{}
	var park, spill []*ledgerEntry
	popped := map[string]int{}
	for src, q := range l.inputs {
		// n ends the prefix that can be committed: settled, parked, or
		// old enough to park now. The walk goes on past it to stamp every
		// unsettled entry, so each is parked one interval after it was
		// first seen, not one entry per interval.
		n := -1
		for i, e := range q {
			if e.settled || e.parked {
				continue
			}
			if e.spill {
				spill = append(spill, e)
				continue
			}
			if e.seen == 0 {
				e.seen = l.commits
			}
			if e.seen == l.commits && !final {
				if n < 0 {
					n = i // give it one interval to settle on its own
				}
				continue
			}
			if n < 0 {
				park = append(park, e)
			}
		}
		if n < 0 {
			n = len(q)
		}
		if n == 0 {
			continue
		}
		// The last popped entry of each file is that file's checkpoint.
		seen := map[string]bool{}
		for i := n - 1; i >= 0; i-- {
			e := q[i]
			key := CheckpointKey(src, e.ev.File)
			if seen[key] {
				continue
			}
			seen[key] = true
			b := e.pos
			if b == nil {
				var err error
				if b, err = l.pos(e.ev); err != nil {
					return fmt.Errorf("encode position of %s: %w", src, err)
				}
			}
			cps[key] = b
		}
		popped[src] = n
	}
	if len(cps) == 0 && len(park) == 0 && len(spill) == 0 && len(l.unpark) == 0 {
		return nil
	}
	evs := make([]stackprint.Event, len(park))
	for i, e := range park {
		evs[i] = e.ev
	}
	sevs := make([]stackprint.Event, len(spill))
	for i, e := range spill {
		sevs[i] = e.ev
	}
	if l.syncErr != nil {
		// A failed fsync may have dropped written data; a later fsync can
		// succeed without it. Never commit past that point again.
		return l.syncErr
	}
	if l.BeforeCommit != nil {
		if err := l.BeforeCommit(); errors.Is(err, ErrCommitLater) {
			return nil // nothing committed; the next interval tries again
		} else if err != nil {
			l.syncErr = fmt.Errorf("make outputs durable before the checkpoint: %w", err)
			return l.syncErr
		}
	}
	keys, err := l.store.CommitStateSpill(cps, evs, sevs, l.unpark)
	if err != nil {
		return err
	}
	l.unpark = l.unpark[:0]
	for i, e := range park {
		e.parked, e.key = true, keys[i]
	}
	if len(spill) > 0 {
		l.spilling -= len(spill)
		close(l.written)
		l.written = make(chan struct{})
	}
	for _, e := range spill {
		// On disk now; the pipeline loads it back through Resume.
		e.parked, e.spill = true, false
		delete(l.bySeq, e.ev.Seq)
		e.ev = stackprint.Event{Source: e.ev.Source, File: e.ev.File, Offset: e.ev.Offset, Ident: e.ev.Ident}
	}
	for src, n := range popped {
		q := l.inputs[src]
		for _, e := range q[:n] {
			l.committed[CheckpointKey(src, e.ev.File)] = Committed{Input: src, File: e.ev.File, Offset: e.ev.Offset}
		}
		clear(q[:n])
		l.inputs[src] = q[n:]
	}
	if len(park) > 0 {
		l.log.Debug("parked events waiting for probes", "count", len(park))
	}
	return nil
}

// Run commits every interval until ctx ends; the caller makes the final
// commit once the pipeline has stopped.
func (l *Ledger) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-l.kick:
		}
		if err := l.Commit(); err != nil {
			return err
		}
	}
}

// Committed returns the last committed position of each input's files.
func (l *Ledger) Committed() map[string]Committed {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Committed, len(l.committed))
	for k, v := range l.committed {
		out[k] = v
	}
	return out
}

// Unsettled reports how many tracked events are neither settled nor
// parked (for metrics and tests).
func (l *Ledger) Unsettled() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, q := range l.inputs {
		for _, e := range q {
			if !e.settled && !e.parked {
				n++
			}
		}
	}
	return n
}
