package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/probe"
	"github.com/stackprint/stackprint/rules"
	"github.com/stackprint/stackprint/tailer"
)

// daemon is the running pipeline: tailers → enrich → probe → db → rules →
// outputs. `run` and `demo` both build it here, so the demo exercises
// exactly the daemon's code.
type daemon struct {
	cfg     *Config
	log     *slog.Logger
	db      *db.DB
	sink    *fileSink
	pipe    *enrich.Pipeline
	rules   *rules.Engine
	ledger  *enrich.Ledger
	tailers []*tailer.Tailer
	metrics *metrics
	cfgPath string // re-read on SIGHUP; "" = the embedded default

	closers []func() error // closed after the tailers have stopped
	running atomic.Bool    // tailers started, not yet stopping
	failed  atomic.Value   // error that stopped a component
}

// daemonHooks lets the demo observe what the daemon writes.
type daemonHooks struct {
	onAlert  func(stackprint.Alert)
	onRecord func(stackprint.Event, stackprint.Result, []stackprint.Match)
	dialer   probe.Dialer // nil: the system dialer
}

func newDaemon(cfg *Config, log *slog.Logger, hooks daemonHooks) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, log: log}
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
	if d.sink, err = openSink(cfg.Outputs, hooks); err != nil {
		return nil, err
	}
	ports := make([]uint16, len(cfg.Scope.Ports))
	for i, p := range cfg.Scope.Ports {
		ports[i] = uint16(p)
	}
	pcfg := cfg.probeEngineConfig()
	pcfg.Dialer = hooks.dialer
	pcfg.ConnRate = -1 // the scheduler keeps the per-IP budget, so waiting costs no probe slot
	prober, err := probe.NewEngine(pcfg)
	if err != nil {
		return nil, fmt.Errorf("probe engine: %w", err)
	}
	d.metrics = newMetrics(d)
	d.sink.onWriteErr = func(name string, err error) {
		if err == nil {
			d.log.Warn("output writes recovered; checkpoints resume")
			_ = sdNotify("STATUS=following " + fmt.Sprint(len(cfg.Inputs)) + " inputs")
			return
		}
		d.metrics.outputErrors.WithLabelValues(name).Inc()
		d.log.Error("output write failed; rolled back to the last whole record, retrying (checkpoints wait)", "output", name, "err", err)
		_ = sdNotify("STATUS=degraded: output " + name + " failing, retrying: " + err.Error())
	}
	if d.rules, err = newRulesEngine(cfg.Rules, log); err != nil {
		return nil, err
	}
	// Events parked by the previous run wait in the backlog; the
	// scheduler loads them back in turn, client by client.
	backlog, err := d.db.RebuildBacklog()
	if err != nil {
		return nil, err
	}
	d.ledger = enrich.NewLedger(d.db, encodePosition, log)
	d.ledger.BeforeCommit = d.sink.Sync
	serverKinds, nameKinds := splitKinds(prober.Kinds(), cfg.Probe.ATSFPerName)
	burst := cfg.Probe.ConnsPerIPBurst
	if burst == 0 {
		burst = probe.DefaultConnBurst
	}
	d.pipe, err = enrich.New(enrich.Config{
		Scope:           enrich.NewScope(parsePrefixes(cfg.Scope.Allow), parsePrefixes(cfg.Scope.Deny), ports),
		TTL:             cfg.Dedup.TTL,
		NegativeTTL:     cfg.Dedup.NegativeTTL,
		Capacity:        cfg.Dedup.Capacity,
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
		Spill:           d.ledger.Spill,
		Load:            d.loadBacklog,
		Backlog:         backlog,
		Logger:          log,
		OnSettled:       d.ledger.Settled,
		DrainTimeout:    cfg.Daemon.ShutdownTimeout,
	}, measuredProber{prober, d.metrics}, d.db, d.rules, measuredSink{observingSink{d.sink, d.db}, d.metrics})
	if err != nil {
		return nil, err
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
		t, err := tailer.New(tailer.Input{Name: in.Name, Path: in.Path, Format: in.Format,
			Archives: in.Archives, FieldNames: in.FieldNames}, opts, track)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
		d.tailers = append(d.tailers, t)
	}
	return d, nil
}

// run follows the inputs until ctx ends or a component fails, then shuts
// down in pipeline order: tailers first, then the probe workers, then the
// outputs and the DB.
func (d *daemon) run(ctx context.Context) error {
	defer d.close()
	defer d.startAdmin(ctx)() // admin socket until run returns (admin.go)
	pctx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	tctx, stopTailers := context.WithCancel(ctx)
	defer stopTailers()

	errc := make(chan error, len(d.tailers)+1)
	pipeDone := make(chan struct{})
	go func() {
		defer close(pipeDone)
		if err := d.pipe.Run(pctx); err != nil {
			errc <- fmt.Errorf("pipeline: %w", err)
		}
	}()
	var err error
	if st := d.pipe.Stats(); st.Spilled > 0 {
		d.log.Info("resuming events parked by the previous run", "count", st.Spilled)
	}
	lctx, stopLedger := context.WithCancel(context.Background())
	defer stopLedger()
	ledgerDone := make(chan struct{})
	go func() {
		defer close(ledgerDone)
		if err := d.ledger.Run(lctx, checkpointInterval); err != nil {
			errc <- fmt.Errorf("commit checkpoints: %w", err)
		}
	}()
	hctx, stopHTTP := context.WithCancel(context.Background())
	defer stopHTTP()
	pruneDone := make(chan struct{})
	go func() { defer close(pruneDone); d.pruneObservations(hctx) }()
	defer func() { stopHTTP(); <-pruneDone }()
	if d.cfg.Metrics.Listen != "" {
		go func() {
			if err := d.serveHTTP(hctx, d.cfg.Metrics.Listen, d.log); err != nil {
				errc <- err
			}
		}()
	}
	var wg sync.WaitGroup
	for i, t := range d.tailers {
		name := d.cfg.Inputs[i].Name
		wg.Go(func() {
			if err := t.Run(tctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("input %q: %w", name, err)
			}
		})
	}
	d.log.Info("stackprint running", "inputs", len(d.tailers), "db", d.cfg.DB.Path,
		"alerts", d.cfg.Outputs.Alerts, "fingerprints", d.cfg.Outputs.Fingerprints)
	d.running.Store(true)
	_ = sdNotify("READY=1\nSTATUS=following " + fmt.Sprint(len(d.tailers)) + " inputs")
	go sdWatchdog(hctx, d.ready)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case err = <-errc:
			d.failed.Store(err)
			break wait
		case <-hup:
			d.reload()
		}
	}
	d.running.Store(false)
	d.sink.abortRetries() // a write waiting for disk space gives up: its event is replayed at the next start
	_ = sdNotify("STOPPING=1")
	stopTailers()
	wg.Wait()
	stopPipe()
	<-pipeDone
	stopLedger()
	<-ledgerDone
	if cerr := d.ledger.CommitFinal(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("final checkpoint commit: %w", cerr))
	}
	st := d.pipe.Stats()
	d.log.Info("stackprint stopped", "events", st.Events, "settled", st.Deduped+st.Probed+st.OutOfScope+st.Invalid+st.Expired,
		"server_probes", st.ServerProbes, "name_probes", st.NameProbes, "alerts", st.Alerts, "parked_for_next_start", st.Waiting+st.Spilled)
	return err
}

// loadBacklog hands the scheduler up to n parked events of a client
// bucket, each resumed in the ledger so settling it unparks it.
func (d *daemon) loadBacklog(bucket uint16, n int) ([]stackprint.Event, error) {
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

// observingSink keeps the DB's observations (latest result per target and
// fingerprint history) that retro-hunts and the exports read.
type observingSink struct {
	enrich.Sink
	db *db.DB
}

func (s observingSink) Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error {
	if err := s.Sink.Record(ev, r, m); err != nil {
		return err
	}
	if err := s.db.RecordObservationOf(ev, r); err != nil {
		return fmt.Errorf("record observation of %s: %w", r.Target, err)
	}
	return nil
}

// pruneObservations drops observations older than what retro-hunts and the
// dedup TTL can use, hourly, so the DB does not grow forever.
func (d *daemon) pruneObservations(ctx context.Context) {
	keep := max(d.cfg.DB.RetroWindow, d.cfg.Dedup.TTL)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := d.db.PruneObservations(time.Now().Add(-keep)); err != nil {
			d.log.Warn("prune observations", "err", err)
		} else if n > 0 {
			d.log.Info("pruned old observations", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ready reports why the daemon cannot do its job, or nil: tailers started,
// no component failed, DB open, output directories writable.
func (d *daemon) ready() error {
	if err, ok := d.failed.Load().(error); ok && err != nil {
		return err
	}
	if !d.running.Load() {
		return errors.New("not running")
	}
	if err := d.db.Ping(); err != nil {
		return fmt.Errorf("db: %w", err)
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

// reload re-reads the config on SIGHUP: a bad file is refused and the
// running config stays; settings that can change live (scope) are swapped,
// the others are reported as needing a restart.
func (d *daemon) reload() {
	cfg, err := LoadConfig(d.cfgPath)
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
	ports := make([]uint16, len(cfg.Scope.Ports))
	for i, p := range cfg.Scope.Ports {
		ports[i] = uint16(p)
	}
	d.pipe.SetScope(enrich.NewScope(parsePrefixes(cfg.Scope.Allow), parsePrefixes(cfg.Scope.Deny), ports))
	// logrotate's rename+create of the NDJSON/EVE alert files.
	if err := d.sink.Reopen(); err != nil {
		d.log.Error("reopen alert files", "err", err)
	}
	old := *d.cfg
	old.Scope, old.Rules = cfg.Scope, cfg.Rules
	if !reflect.DeepEqual(&old, cfg) {
		d.log.Warn("config reload: scope and rules apply live; restart for the other changes")
	}
	d.cfg.Scope, d.cfg.Rules = cfg.Scope, cfg.Rules
	d.metrics.reloaded(true)
	d.log.Info("config reloaded", "scope_allow", cfg.Scope.Allow, "scope_deny", cfg.Scope.Deny)
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
func (d *daemon) resumePositions(input string) ([]tailer.Position, error) {
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

func (d *daemon) close() {
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

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stdout, stderr)
	path := fs.String("c", "", "config file (default: the embedded default, configs/stackprint.yaml)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	if os.Geteuid() == 0 {
		log.Warn("running as root; a dedicated unprivileged user is recommended")
	}
	d, err := newDaemon(cfg, log, daemonHooks{})
	if err != nil {
		return err
	}
	d.cfgPath = *path
	return d.run(ctx)
}
