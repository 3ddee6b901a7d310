package daemon

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/admin"
	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/observe"
	"github.com/stackprint/stackprint/output"
	"github.com/stackprint/stackprint/probe"
	"github.com/stackprint/stackprint/rules"
	"github.com/stackprint/stackprint/tailer"
	"github.com/stackprint/stackprint/watch"
)

// Daemon is the running pipeline: tailers → enrich → probe → db → rules →
// observe → outputs. `run` and `demo` both build it here, so the demo
// exercises exactly the daemon's code.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	db      *db.DB
	sink    *output.Sink
	observe *observe.Stage
	pipe    *enrich.Pipeline
	rules   *rules.Engine
	ledger  *enrich.Ledger
	tailers []*tailer.Tailer
	tnames  []string      // the tailers' input names
	kafka   *kafkaParts   // Kafka inputs, output, shared probing and DB (kafka.go)
	watch   *watch.Runner // the watch list's re-probes (watch.go)
	metrics *metrics
	cfgPath string                       // re-read on SIGHUP; "" = the embedded default
	scope   atomic.Pointer[enrich.Scope] // as the pipeline has it: backfill jobs start with it

	closers []func() error        // closed after the tailers have stopped
	running atomic.Bool           // tailers started, not yet stopping
	failed  atomic.Pointer[error] // the first error that stopped a component
}

// Options are what a caller adds to the config.
type Options struct {
	// ConfigPath is re-read on SIGHUP; "" = the embedded default.
	ConfigPath string
	// OnAlert and OnRecord see what the outputs write (the demo, tests).
	OnAlert  func(stackprint.Alert)
	OnRecord func(stackprint.Event, stackprint.Result, []stackprint.Match)
	Dialer   probe.Dialer // nil: the system dialer
}

// New opens the DB and the outputs and builds every stage from cfg;
// Run starts them.
func New(cfg *config.Config, log *slog.Logger, o Options) (_ *Daemon, err error) {
	d := &Daemon{cfg: cfg, log: log, cfgPath: o.ConfigPath}
	defer func() {
		if err != nil {
			d.close() // what was opened before the failure
		}
	}()
	if err := os.MkdirAll(filepath.Dir(cfg.DB.Path), 0o750); err != nil {
		return nil, fmt.Errorf("create db directory: %w", err)
	}
	if d.db, err = db.Open(cfg.DB.Path, db.Options{Timeout: cfg.DB.LockTimeout}); err != nil {
		return nil, err
	}
	d.metrics = newMetrics(d)
	if d.sink, err = output.OpenSink(output.SinkConfig(cfg.Outputs), output.SinkHooks{
		OnAlert: o.OnAlert, OnRecord: o.OnRecord, OnWriteErr: d.onWriteErr,
	}); err != nil {
		return nil, err
	}
	pcfg := cfg.ProbeEngineConfig()
	pcfg.Dialer = o.Dialer
	pcfg.ConnRate = -1 // the scheduler keeps the per-IP budget, so waiting costs no probe slot
	prober, err := probe.NewEngine(pcfg)
	if err != nil {
		return nil, fmt.Errorf("probe engine: %w", err)
	}
	// Opened once the DB's lock is held: a second daemon on the same DB
	// fails above instead of emptying this file under the first.
	results, err := enrich.OpenResultFile(cfg.DB.Path+".results", cfg.Dedup.Capacity, enrich.ResultBlock(prober.Kinds()))
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, results.Close)
	if d.rules, err = newRulesEngine(cfg.Rules, log); err != nil {
		return nil, err
	}
	if err := d.newKafkaParts(cfg, pcfg); err != nil {
		return nil, err
	}
	// The observation stage sits before the outputs; the metrics count
	// what reaches them, retro-hunt alerts included.
	d.observe = observe.New(measuredSink{d.outputs(), d.metrics}, d.db, d.rules, cfg.DB.RetroWindow, log)
	if d.kafka.dbsync != nil {
		d.kafka.dbsync.OnApplied = d.retroOnApplied
	}
	// Events parked by the previous run wait in the backlog; the
	// scheduler loads them back in turn, client by client.
	backlog, err := d.db.RebuildBacklog()
	if err != nil {
		return nil, err
	}
	d.ledger = enrich.NewLedger(d.db, encodePosition, log)
	d.ledger.BeforeCommit = d.syncOutputs
	serverKinds, nameKinds := splitKinds(prober.Kinds(), cfg.Probe.ATSFPerName)
	burst := cfg.Probe.ConnsPerIPBurst
	if burst == 0 {
		burst = probe.DefaultConnBurst
	}
	d.scope.Store(cfg.Scope.NewScope())
	d.pipe, err = enrich.New(enrich.Config{
		Scope:           d.scope.Load(),
		TTL:             cfg.Dedup.TTL,
		NegativeTTL:     cfg.Dedup.NegativeTTL,
		Capacity:        cfg.Dedup.Capacity,
		Results:         results,
		HotResults:      cfg.Dedup.HotResults,
		ServerKinds:     serverKinds,
		NameKinds:       nameKinds,
		ServerCost:      prober.Conns(nil),
		NameCost:        prober.Conns(nameKinds),
		MaxInFlight:     cfg.Scheduler.MaxInFlight,
		ProbesPerSecond: cfg.Scheduler.ProbesPerSecond,
		Burst:           cfg.Scheduler.Burst,
		ConnsPerIP:      cmp.Or(cfg.Probe.ConnsPerIPPerSecond, probe.DefaultConnRate),
		ConnsPerIPBurst: burst,
		Deadline:        cfg.Probe.Deadline,
		JARMSNIObserved: cfg.Probe.JARMSNI == "observed",
		MemEvents:       cfg.Scheduler.QueueSize,
		BacklogMax:      cfg.Scheduler.BacklogMax,
		MaxWait:         cfg.Scheduler.MaxWait,
		Spill:           d.spill,
		Load:            d.loadBacklog,
		Backlog:         backlog,
		Logger:          log,
		OnSettled:       d.settled,
		DrainTimeout:    cfg.Daemon.ShutdownTimeout,
	}, measuredProber{d.prober(prober), d.metrics}, d.db, d.rules, d.observe)
	if err != nil {
		return nil, err
	}
	// Own servers on the watch list are re-probed on their schedule,
	// through the scheduler; their alerts skip the observation stage.
	d.watch = watch.NewRunner(d.db, watchProber{d.pipe}, measuredSink{d.sink, d.metrics}, cfg.Watch.Policy(), log)
	d.watch.Record = d.recordWatchProbe
	if err := d.importBaselines(); err != nil {
		return nil, fmt.Errorf("import rules.baselines into the watch list: %w", err)
	}
	track := func(ctx context.Context, ev stackprint.Event) error {
		// While the backlog is full the inputs wait here, before the
		// ledger tracks the line.
		if err := d.pipe.WaitRoom(ctx); err != nil {
			return err
		}
		if err := d.ledger.WaitSpills(ctx); err != nil {
			return err
		}
		return d.pipe.Handle(ctx, d.ledger.Track(ev))
	}
	opts := tailer.Options{
		PollInterval:  cfg.Tailer.PollInterval,
		MaxLineBytes:  cfg.Tailer.MaxLineBytes,
		FromEnd:       cfg.Tailer.FromEnd,
		RotateWait:    cfg.Tailer.RotateWait,
		MaxCatchUpAge: cfg.Tailer.MaxCatchUpAge,
		Logger:        log,
	}
	watcher := tailer.NewDirWatcher(log)
	d.closers = append(d.closers, watcher.Close)
	for _, in := range cfg.Inputs {
		if in.Kafka != nil {
			if err := d.addKafkaInput(in); err != nil {
				return nil, err
			}
			continue
		}
		opts := opts
		opts.Watcher = watcher
		if opts.Resume, err = d.resumePositions(in.Name); err != nil {
			return nil, err
		}
		if len(opts.Resume) > 0 {
			opts.FromEnd = false // a checkpoint says where to start
		}
		name := in.Name
		opts.Progress = func(p tailer.Position) {
			if b, err := json.Marshal(p); err == nil {
				d.ledger.Progress(name, p.Path, p.Offset, b)
			}
		}
		// The first position of a path without a checkpoint is committed
		// at once, not at the next ledger interval: a daemon killed
		// before its first checkpoint then resumes there, and reads the
		// generations rotated while it was down (docs/TAILER-CASES.md C2).
		opts.Started = func(p tailer.Position) error {
			b, err := json.Marshal(p)
			if err != nil {
				return err
			}
			_, err = d.db.CommitStateSpill(map[string][]byte{enrich.CheckpointKey(name, p.Path): b}, nil, nil, nil)
			return err
		}
		t, err := tailer.New(tailer.Input{Name: in.Name, Path: in.Path, Format: in.Format,
			Archives: in.Archives, FieldNames: in.FieldNames}, opts, track)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
		d.tailers = append(d.tailers, t)
		d.tnames = append(d.tnames, in.Name)
	}
	return d, nil
}

// Run follows the inputs until ctx ends or a component fails, then shuts
// down in pipeline order: the inputs first, then the probe workers, then
// the checkpoint ledger and its final commit, then the HTTP listener and
// housekeeping, the admin socket, and last the outputs and the DB.
//
// Each tier runs in an errgroup under a context of its own, cancelled only
// once the tier feeding it has returned, so no stage stops while an
// upstream one can still hand it work. A component that fails cancels the
// inputs' context, which starts that shutdown; the first failure is what
// Run returns.
func (d *Daemon) Run(ctx context.Context) (err error) {
	defer d.close()
	defer d.startAdmin(ctx)() // admin socket until Run returns
	fctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	failed := func(err error) error {
		if err != nil {
			d.failed.CompareAndSwap(nil, &err)
			fail(err)
		}
		return err
	}
	type tier struct {
		g    errgroup.Group
		ctx  context.Context
		stop context.CancelFunc
	}
	newTier := func() *tier {
		t := &tier{}
		t.ctx, t.stop = context.WithCancel(context.WithoutCancel(ctx))
		return t
	}
	pipe, ledger, aux := newTier(), newTier(), newTier()
	defer func() { // an early return stops every tier too
		for _, t := range []*tier{pipe, ledger, aux} {
			t.stop()
			_ = t.g.Wait()
		}
	}()

	pipe.g.Go(func() error {
		if err := d.pipe.Run(pipe.ctx); err != nil {
			return failed(fmt.Errorf("pipeline: %w", err))
		}
		return nil
	})
	if st := d.pipe.Stats(); st.Spilled > 0 {
		d.log.Info("resuming events parked by the previous run", "count", st.Spilled)
	}
	ledger.g.Go(func() error {
		if err := d.ledger.Run(ledger.ctx, checkpointInterval); err != nil {
			return failed(fmt.Errorf("commit checkpoints: %w", err))
		}
		return nil
	})
	aux.g.Go(func() error {
		d.observe.Prune(aux.ctx, max(d.cfg.DB.RetroWindow, d.cfg.Dedup.TTL), d.cfg.DB.ObservationsMax)
		return nil
	})
	aux.g.Go(func() error {
		// A file from before obs_near: indexed in batches while the daemon
		// runs; near retro-hunts read every observation until it is done.
		if n, err := d.db.BuildObsNearIndex(aux.ctx); err != nil && aux.ctx.Err() == nil {
			d.log.Warn("index the observations' ATSF answers for near retro-hunts", "err", err)
		} else if n > 0 {
			d.log.Info("indexed the observations' ATSF answers for near retro-hunts", "observations", n)
		}
		return nil
	})
	if k := d.kafka; k.shared != nil {
		// Probes asked of other instances are answered while the pipeline
		// drains: the shared prober stops with the ledger tier.
		ledger.g.Go(func() error { return failed(k.shared.Run(ledger.ctx)) })
	}
	if k := d.kafka; k.dbsync != nil {
		aux.g.Go(func() error {
			if err := k.dbsync.Run(aux.ctx); err != nil && aux.ctx.Err() == nil {
				return failed(fmt.Errorf("kafka fingerprint sync: %w", err))
			}
			return nil
		})
	}
	if d.cfg.Metrics.Listen != "" {
		aux.g.Go(func() error { return failed(d.serveHTTP(aux.ctx, d.cfg.Metrics.Listen, d.log)) })
	}
	inputs, ictx := errgroup.WithContext(fctx)
	for _, in := range d.kafka.inputs {
		inputs.Go(func() error {
			if err := in.Run(ictx); err != nil && !errors.Is(err, context.Canceled) {
				return failed(fmt.Errorf("input %q: %w", in.Name(), err))
			}
			return nil
		})
	}
	for i, t := range d.tailers {
		name := d.tnames[i]
		inputs.Go(func() error {
			if err := t.Run(ictx); err != nil && !errors.Is(err, context.Canceled) {
				return failed(fmt.Errorf("input %q: %w", name, err))
			}
			return nil
		})
	}
	// The watch list is an input too: it stops with the tailers, before
	// the scheduler it submits to.
	inputs.Go(func() error {
		if err := d.watch.Run(ictx); err != nil {
			return failed(fmt.Errorf("watch list: %w", err))
		}
		return nil
	})
	d.log.Info("stackprint running", "inputs", len(d.tailers), "db", d.cfg.DB.Path,
		"alerts", d.cfg.Outputs.Alerts, "fingerprints", d.cfg.Outputs.Fingerprints)
	d.running.Store(true)
	_ = sdNotify("READY=1\nSTATUS=following " + fmt.Sprint(len(d.tailers)) + " inputs")
	aux.g.Go(func() error { sdWatchdog(aux.ctx, d.Ready); return nil })
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ictx.Done():
			break wait
		case <-hup:
			d.Reload()
		}
	}
	d.running.Store(false)
	d.sink.AbortRetries() // a write waiting for disk space gives up: its event is replayed at the next start
	_ = sdNotify("STOPPING=1")
	_ = inputs.Wait()
	pipe.stop()
	_ = pipe.g.Wait()
	ledger.stop()
	_ = ledger.g.Wait()
	if p := d.failed.Load(); p != nil {
		err = *p
	}
	if cerr := d.ledger.CommitFinal(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("final checkpoint commit: %w", cerr))
	}
	kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	if kerr := d.closeKafka(kctx); kerr != nil {
		err = errors.Join(err, fmt.Errorf("kafka final commit: %w", kerr))
	}
	kcancel()
	st := d.pipe.Stats()
	d.log.Info("stackprint stopped", "events", st.Events, "settled", st.Deduped+st.Probed+st.OutOfScope+st.Invalid+st.Expired,
		"server_probes", st.ServerProbes, "name_probes", st.NameProbes, "alerts", st.Alerts, "parked_for_next_start", st.Waiting+st.Spilled)
	return err
}

// startAdmin opens the admin socket and serves it until ctx ends or the
// returned stop is called. A socket that cannot be opened is logged, not
// fatal: the CLI then reports the locked file and that no daemon answered.
func (d *Daemon) startAdmin(ctx context.Context) (stop func()) {
	path := d.cfg.DB.AdminSocketPath()
	s, err := admin.Listen(admin.ServerConfig{Socket: path, DB: d.db, Hunter: d.observe, Watch: d.watch, Rules: explainRules(d.rules), Backfill: d, Logger: d.log})
	if err != nil {
		d.log.Error("admin socket unavailable; `stackprint db` cannot reach this daemon", "socket", path, "err", err)
		return func() {}
	}
	d.log.Info("admin socket listening", "socket", path)
	return s.Start(ctx)
}

// syncOutputs makes the outputs durable before a checkpoint commit; while
// an output write is being retried the ledger commits later.
func (d *Daemon) syncOutputs() error {
	// Through the observe stage: the outputs (files, Kafka), then the
	// alerts of this group commit kept for explain in one transaction.
	err := d.observe.Sync()
	if errors.Is(err, output.ErrRetrying) {
		return fmt.Errorf("%w: %w", enrich.ErrCommitLater, err)
	}
	return err
}

// onWriteErr reports an output write failing (err) or recovering (nil).
func (d *Daemon) onWriteErr(name string, err error) {
	if err == nil {
		d.log.Warn("output writes recovered; checkpoints resume")
		_ = sdNotify("STATUS=following " + fmt.Sprint(len(d.cfg.Inputs)) + " inputs")
		return
	}
	d.metrics.outputErrors.WithLabelValues(name).Inc()
	d.log.Error("output write failed; rolled back to the last whole record, retrying (checkpoints wait)", "output", name, "err", err)
	_ = sdNotify("STATUS=degraded: output " + name + " failing, retrying: " + err.Error())
}

// Stats are the pipeline's counters.
func (d *Daemon) Stats() enrich.Stats { return d.pipe.Stats() }

// WaitIdle waits until the pipeline has settled every event it was handed
// (the demo).
func (d *Daemon) WaitIdle(ctx context.Context) error { return d.pipe.WaitIdle(ctx) }

// DB is the daemon's open fingerprint DB (tests record observations in it).
func (d *Daemon) DB() *db.DB { return d.db }

// loadBacklog hands the scheduler up to n parked events of a client
// bucket, each resumed in the ledger so settling it unparks it.
func (d *Daemon) loadBacklog(bucket uint16, n int) ([]stackprint.Event, error) {
	pend, err := d.db.LoadBacklog(bucket, n)
	if err != nil {
		return nil, err
	}
	out := make([]stackprint.Event, len(pend))
	for i, p := range pend {
		out[i] = d.ledger.Resume(p.Event, p.Key)
	}
	return out, nil
}

// splitKinds divides the probe kinds into those probed once per server
// (JARM with the IP literal; ATSF with the first name unless perName) and
// those fetched per name (certificate, HTTP Server).
func splitKinds(kinds []string, atsfPerName bool) (server, name []string) {
	for _, k := range kinds {
		switch {
		case k == stackprint.KindJARM, k == stackprint.KindATSF && !atsfPerName:
			server = append(server, k)
		default:
			name = append(name, k)
		}
	}
	return server, name
}

// Ready reports why the daemon cannot do its job, or nil: tailers started,
// no component failed, DB open, output directories writable.
func (d *Daemon) Ready() error {
	if p := d.failed.Load(); p != nil {
		return *p
	}
	if !d.running.Load() {
		return errors.New("not running")
	}
	if err := d.db.Ping(); err != nil {
		return fmt.Errorf("db: %w", err)
	}
	if err := d.kafkaReady(); err != nil {
		return err
	}
	for _, p := range []string{d.cfg.Outputs.Alerts, d.cfg.Outputs.Fingerprints} {
		if p == "-" {
			continue
		}
		if err := syscall.Access(filepath.Dir(p), 2 /* W_OK */); err != nil {
			return fmt.Errorf("output directory of %s not writable: %w", p, err)
		}
	}
	return nil
}

// Reload re-reads the config (SIGHUP): a bad file is refused and the
// running config stays; settings that can change live (scope) are swapped,
// the others are reported as needing a restart.
func (d *Daemon) Reload() {
	cfg, err := config.Load(d.cfgPath)
	if err != nil {
		d.metrics.reloaded(false)
		d.log.Error("config reload refused; keeping the running config", "err", err)
		return
	}
	if err := reloadRules(d.rules, cfg.Rules, d.log); err != nil {
		d.metrics.reloaded(false)
		d.log.Error("config reload refused: rules do not load; keeping the running config", "err", err)
		return
	}
	scope := cfg.Scope.NewScope()
	d.pipe.SetScope(scope)
	d.scope.Store(scope)
	d.watch.SetPolicy(cfg.Watch.Policy())
	// logrotate's rename+create of the NDJSON/EVE alert files.
	if err := d.sink.Reopen(); err != nil {
		d.log.Error("reopen alert files", "err", err)
	}
	old := *d.cfg
	old.Scope, old.Rules, old.Watch = cfg.Scope, cfg.Rules, cfg.Watch
	if !reflect.DeepEqual(&old, cfg) {
		d.log.Warn("config reload: scope, rules and watch apply live; restart for the other changes")
	}
	d.cfg.Scope, d.cfg.Rules, d.cfg.Watch = cfg.Scope, cfg.Rules, cfg.Watch
	d.metrics.reloaded(true)
	d.log.Info("config reloaded", "scope_allow", cfg.Scope.Allow, "scope_deny", cfg.Scope.Deny,
		"watch_every", cfg.Watch.Every, "watch_unreachable_after", cfg.Watch.UnreachableAfter, "watch_cert_expiry_days", cfg.Watch.CertExpiryDays)
}

// checkpointInterval is how often input positions are committed; a crash
// replays at most about two intervals of already-judged lines.
const checkpointInterval = 500 * time.Millisecond

// encodePosition is the checkpoint of an input: the position just past
// the event's line.
func encodePosition(ev stackprint.Event) ([]byte, error) {
	p, err := tailer.PositionOf(ev)
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// resumePositions loads an input's committed positions.
func (d *Daemon) resumePositions(input string) ([]tailer.Position, error) {
	cps, err := d.db.Checkpoints(enrich.CheckpointKey(input, ""))
	if err != nil {
		return nil, err
	}
	var out []tailer.Position
	for k, b := range cps {
		var p tailer.Position
		if err := json.Unmarshal(b, &p); err != nil {
			d.log.Warn("ignoring an unreadable checkpoint", "key", k, "err", err)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func (d *Daemon) close() {
	if d.kafka != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := d.closeKafka(ctx); err != nil {
			d.log.Warn("close kafka", "err", err)
		}
		cancel()
	}
	for _, c := range d.closers {
		if err := c(); err != nil {
			d.log.Warn("close", "err", err)
		}
	}
	d.closers = nil
	if d.sink != nil {
		if err := d.sink.Close(); err != nil {
			d.log.Error("close outputs", "err", err)
		}
	}
	if d.db != nil {
		if err := d.db.Close(); err != nil {
			d.log.Error("close db", "err", err)
		}
	}
}
