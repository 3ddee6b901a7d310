package output

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/zeeklog"
)

// SinkConfig selects the outputs: each is off when its path is "". It
// has the fields of config.OutputsConfig, which converts to it.
type SinkConfig struct {
	Alerts            string
	AlertsFormat      string
	Fingerprints      string
	AlertLog          string
	ZeekFormat        string
	RotateInterval    time.Duration
	RotateSize        int64
	EVE               string
	ZeekIntel         string
	ZeekIntelDoNotice bool
	SuricataDataset   string
}

// SinkHooks observe the sink; every one may be nil.
type SinkHooks struct {
	OnAlert  func(stackprint.Alert) // after an alert is written (the demo)
	OnRecord func(stackprint.Event, stackprint.Result, []stackprint.Match)
	// OnWriteErr reports a failed write being retried (err) and its
	// recovery (nil), for metrics and the log.
	OnWriteErr func(output string, err error)
}

// Sink writes fingerprint records and alerts to every configured
// output: the fan-out at the end of the pipeline. Each write is handed to the OS before it returns, so readers see
// it at once and a crash of the process cannot lose it; Sync fsyncs every
// file, and the delivery ledger calls it before it commits checkpoints, so
// a checkpoint never gets ahead of what is on disk (group commit: one fsync
// per file per commit instead of one per record). The feeds replace their
// files atomically and fsync on each change.
type Sink struct {
	mu       sync.Mutex
	fp       *FingerprintLog // nil when off
	alerts   *AlertWriter    // nil when off
	alertLog *AlertLog       // nil when off
	eve      *AlertWriter    // nil when off
	feeds    []*ServerFeed
	hooks    SinkHooks

	rotErr error // a failed timed rotation; returned by Sync so no checkpoint covers it

	stop chan struct{} // ends the rotation ticker
	done chan struct{}

	// A failed write (a full disk) is rolled back and retried with backoff
	// while the caller waits, so the outputs hold only whole records and
	// nothing is skipped; meanwhile Sync waits too, so no checkpoint is
	// committed. quit ends the retries (shutdown): the records stay
	// unwritten, their events unsettled, and they are replayed at the next
	// start.
	quit     chan struct{}
	quitOnce sync.Once
	retryMin time.Duration
	retryMax time.Duration
	// failing holds, per output, the write error being retried; an output
	// that recovers clears only its own, so another output still failing
	// keeps the sink degraded.
	failMu  sync.Mutex
	failing map[string]error
}

// errSinkStopped ends a retry at shutdown.
var errSinkStopped = errors.New("outputs stopped while retrying a failed write")

// AbortRetries makes a retrying write give up (shutdown).
func (s *Sink) AbortRetries() { s.quitOnce.Do(func() { close(s.quit) }) }

// Degraded returns the write error being retried, or nil.
func (s *Sink) Degraded() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(s.failing)) {
		return s.failing[name]
	}
	return nil
}

// setFailing records (err) or clears (nil) the failure of one output and
// reports whether that changed whether the output is failing.
func (s *Sink) setFailing(name string, err error) bool {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	_, was := s.failing[name]
	if err == nil {
		delete(s.failing, name)
		return was
	}
	if s.failing == nil {
		s.failing = map[string]error{}
	}
	s.failing[name] = err
	return true
}

// rollbacker is an output whose failed write can be undone.
type rollbacker interface{ Rollback() error }

type noRollback struct{}

func (noRollback) Rollback() error { return nil }

// retry runs step until it succeeds, rolling back out after each failure
// and waiting with backoff, until abortRetries. Callers hold s.mu; it is
// released while waiting, so Sync, Reopen and the metrics do not wait for
// the disk.
func (s *Sink) retry(name string, out rollbacker, step func() error) error {
	wait := s.retryMin
	for {
		err := step()
		if err == nil {
			if s.setFailing(name, nil) && s.hooks.OnWriteErr != nil {
				s.hooks.OnWriteErr(name, nil)
			}
			return nil
		}
		if rerr := out.Rollback(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		s.setFailing(name, err)
		if s.hooks.OnWriteErr != nil {
			s.hooks.OnWriteErr(name, err)
		}
		s.mu.Unlock()
		select {
		case <-s.quit:
			s.mu.Lock()
			return fmt.Errorf("%w: %w", errSinkStopped, err)
		case <-time.After(wait):
		}
		s.mu.Lock()
		wait = min(2*wait, s.retryMax)
	}
}

// OpenSink opens every output cfg names, creating their directories.
func OpenSink(cfg SinkConfig, hooks SinkHooks) (s *Sink, err error) {
	for _, p := range []string{cfg.Alerts, cfg.Fingerprints, cfg.AlertLog, cfg.EVE, cfg.ZeekIntel, cfg.SuricataDataset} {
		if p != "" && p != "-" {
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				return nil, fmt.Errorf("create output directory for %q: %w", p, err)
			}
		}
	}
	s = &Sink{hooks: hooks, quit: make(chan struct{}), retryMin: 50 * time.Millisecond, retryMax: 5 * time.Second}
	defer func() {
		if err != nil {
			s.closeOutputs()
		}
	}()
	zopts := zeeklog.Options{
		Format:         zeeklog.Format(cfg.ZeekFormat),
		RotateInterval: cfg.RotateInterval,
		RotateSize:     cfg.RotateSize,
	}
	if cfg.Fingerprints != "" {
		if s.fp, err = OpenFingerprintLog(cfg.Fingerprints, zopts); err != nil {
			return nil, err
		}
	}
	if cfg.AlertLog != "" {
		if s.alertLog, err = OpenAlertLog(cfg.AlertLog, zopts); err != nil {
			return nil, err
		}
	}
	if cfg.Alerts != "" {
		if s.alerts, err = OpenAlertWriter(cfg.Alerts, AlertFormat(cfg.AlertsFormat)); err != nil {
			return nil, err
		}
	}
	if cfg.EVE != "" {
		if s.eve, err = OpenAlertWriter(cfg.EVE, AlertEVE); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		path string
		kind FeedKind
	}{{cfg.ZeekIntel, FeedZeekIntel}, {cfg.SuricataDataset, FeedSuricataDataset}} {
		if f.path == "" {
			continue
		}
		feed, err := OpenServerFeed(f.path, f.kind, FeedOptions{DoNotice: cfg.ZeekIntelDoNotice})
		if err != nil {
			return nil, err
		}
		s.feeds = append(s.feeds, feed)
	}
	if cfg.RotateInterval > 0 && (s.fp != nil || s.alertLog != nil) {
		// Zeek rotates a quiet log on time too; writes alone would not.
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.rotateLoop(time.Second)
	}
	return s, nil
}

func (s *Sink) rotateLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// A rotation that fails while closing the old file may have
			// lost its last records: remember it, and Sync (before every
			// checkpoint commit) reports it, which stops the daemon with
			// the checkpoint behind those records.
			var errs []error
			if s.fp != nil {
				errs = append(errs, s.fp.MaybeRotate())
			}
			if s.alertLog != nil {
				errs = append(errs, s.alertLog.MaybeRotate())
			}
			if err := errors.Join(errs...); err != nil {
				s.mu.Lock()
				s.rotErr = errors.Join(s.rotErr, err)
				s.mu.Unlock()
			}
		}
	}
}

func (s *Sink) Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fp != nil {
		err := s.retry("fingerprints", s.fp, func() error {
			if err := s.fp.Write(ev, r, m); err != nil {
				return err
			}
			return s.fp.FlushBuffer()
		})
		if err != nil {
			return err
		}
	}
	if s.hooks.OnRecord != nil {
		s.hooks.OnRecord(ev, r, m)
	}
	return nil
}

// Alert writes a to every alert output, then flushes them all, then adds
// its server to the feeds (simulated alerts are left out of those).
func (s *Sink) Alert(a stackprint.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	type writer interface {
		Write(stackprint.Alert) error
		FlushBuffer() error
		rollbacker
	}
	type named struct {
		name string
		w    writer
	}
	var ws []named
	if s.alerts != nil {
		ws = append(ws, named{"alerts", s.alerts})
	}
	if s.alertLog != nil {
		ws = append(ws, named{"alert_log", s.alertLog})
	}
	if s.eve != nil {
		ws = append(ws, named{"eve", s.eve})
	}
	// One output at a time, each retried until it has the whole alert: a
	// retry never writes it twice to an output that already has it.
	for _, o := range ws {
		err := s.retry(o.name, o.w, func() error {
			if err := o.w.Write(a); err != nil {
				return err
			}
			return o.w.FlushBuffer()
		})
		if err != nil {
			return err
		}
	}
	for _, f := range s.feeds {
		// A feed replaces its file atomically: nothing to roll back.
		if err := s.retry("feed", noRollback{}, func() error { _, err := f.Add(a); return err }); err != nil {
			return err
		}
	}
	if s.hooks.OnAlert != nil {
		s.hooks.OnAlert(a)
	}
	return nil
}

// ErrRetrying, from Sync, means a failed write is being retried: nothing
// is durable yet, and no checkpoint may move past it (the daemon turns it
// into the ledger's "commit later").
var ErrRetrying = errors.New("an output write is failing and being retried")

// Sync fsyncs every output file (called before a checkpoint commit). While
// a failed write is being retried it does nothing and returns ErrRetrying:
// no checkpoint moves while an output is failing.
func (s *Sink) Sync() error {
	if err := s.Degraded(); err != nil {
		return fmt.Errorf("%w: %w", ErrRetrying, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := []error{s.rotErr}
	if s.fp != nil {
		errs = append(errs, s.fp.Flush())
	}
	if s.alertLog != nil {
		errs = append(errs, s.alertLog.Flush())
	}
	for _, w := range []*AlertWriter{s.alerts, s.eve} {
		if w != nil {
			errs = append(errs, w.Flush())
		}
	}
	return errors.Join(errs...)
}

// Reopen reopens the alert line files (alerts, eve) for logrotate's
// rename-and-create rotation; call it on SIGHUP. The Zeek logs rotate
// themselves.
func (s *Sink) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, w := range []*AlertWriter{s.alerts, s.eve} {
		if w != nil {
			errs = append(errs, w.Reopen())
		}
	}
	return errors.Join(errs...)
}

func (s *Sink) Close() error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeOutputs()
}

func (s *Sink) closeOutputs() error {
	var errs []error
	if s.alerts != nil {
		errs = append(errs, s.alerts.Close())
	}
	if s.eve != nil {
		errs = append(errs, s.eve.Close())
	}
	if s.alertLog != nil {
		errs = append(errs, s.alertLog.Close())
	}
	if s.fp != nil {
		errs = append(errs, s.fp.Close())
	}
	return errors.Join(errs...)
}
