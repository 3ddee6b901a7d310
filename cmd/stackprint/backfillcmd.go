package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/stackprint/stackprint/admin"
	"github.com/stackprint/stackprint/backfill"
	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/output"
	"github.com/stackprint/stackprint/probe"
	"github.com/stackprint/stackprint/rules"
	"github.com/stackprint/stackprint/tailer"
)

// runBackfill is `stackprint scan FILE…` without --no-probe: the
// connections of old logs judged and written to the configured outputs,
// marked backfill (package backfill).
func runBackfill(ctx context.Context, cfgPath, format string, files []string, restart bool, stdout, stderr io.Writer) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	run, err := backfill.RunName(files) // reads every file first: a bad name fails before the DB opens
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if restart {
		run += "@" + time.Now().UTC().Format(time.RFC3339Nano)
	}
	if sock := cfg.DB.AdminSocketPath(); sock != "" {
		c, err := admin.Dial(ctx, sock)
		switch {
		case err == nil:
			defer c.Close()
			return backfillViaDaemon(ctx, c, cfg, format, files, run, stdout, stderr)
		case !errors.Is(err, admin.ErrNoDaemon):
			return fmt.Errorf("scan: %w", err)
		}
	}
	d, err := db.Open(cfg.DB.Path, db.Options{Timeout: cfg.DB.LockTimeout})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	defer d.Close()
	sink, err := output.OpenSink(output.SinkConfig(cfg.Outputs), output.SinkHooks{})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	defer sink.Close()
	eng, err := probe.NewEngine(cfg.ProbeEngineConfig())
	if err != nil {
		return fmt.Errorf("scan: probe engine: %w", err)
	}
	ropts, err := cfg.Rules.Options()
	if err != nil {
		return err
	}
	judge, err := rules.New(ropts)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	bcfg := backfill.Config{
		Scope:    cfg.Scope.NewScope(),
		Fresh:    cfg.Dedup.TTL,
		Workers:  cfg.Scheduler.MaxInFlight,
		Progress: progressIfTerminal(stderr),
	}
	prober := backfill.EngineProber{Engine: eng, Deadline: cfg.Probe.Deadline, JARMSNIObserved: cfg.Probe.JARMSNI == "observed"}
	b := backfill.New(bcfg, d, prober, judge, sink)
	start := time.Now()
	total, err := tailer.ReadFiles(ctx, "backfill", files, format, backfillReadOptions(cfg, stderr), b.Add)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	sum, err := b.Run(ctx, run)
	return backfillSummary(stdout, stderr, bcfg.Progress != nil, len(files), total, sum, start, err)
}

// backfillViaDaemon is the backfill while a daemon runs: this process
// reads the logs (the daemon may not be allowed to) and groups them by
// server, the daemon judges them through its own scope, scheduler, rules
// and outputs, streamed over the admin socket (admin.Client.Backfill).
// The scope of this config applies first, the daemon's then.
func backfillViaDaemon(ctx context.Context, c *admin.Client, cfg *config.Config, format string, files []string, run string, stdout, stderr io.Writer) error {
	col := backfill.NewCollector(cfg.Scope.NewScope())
	start := time.Now()
	total, err := tailer.ReadFiles(ctx, "backfill", files, format, backfillReadOptions(cfg, stderr), col.Add)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	progress := progressIfTerminal(stderr)
	servers := col.Servers()
	fmt.Fprintf(stderr, "scan: %d servers to judge through %s\n", len(servers), c.Via())
	sum, err := c.Backfill(ctx, run, servers, progress)
	if err != nil {
		err = fmt.Errorf("through %s: %w", c.Via(), err)
	}
	return backfillSummary(stdout, stderr, progress != nil, len(files), total, col.Complete(sum), start, err)
}

func backfillReadOptions(cfg *config.Config, stderr io.Writer) tailer.Options {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return tailer.Options{MaxLineBytes: cfg.Tailer.MaxLineBytes, Logger: log}
}

// backfillSummary prints the summary line of a backfill, interrupted or
// not.
func backfillSummary(stdout, stderr io.Writer, bar bool, files int, total tailer.Stats, sum backfill.Summary, start time.Time, err error) error {
	if bar {
		fmt.Fprintln(stderr)
	}
	fmt.Fprintf(stdout, "scan: backfill files=%d lines=%d events=%d parse_errors=%d servers=%d out_of_scope_events=%d resumed=%d cached=%d probed=%d probe_ok=%d alerts=%d seconds=%.1f\n",
		files, total.Lines, sum.Events, total.ParseErrors, sum.Servers, sum.OutOfScope, sum.Resumed, sum.Cached, sum.Probed, sum.ProbeOK, sum.Alerts, time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("scan: backfill interrupted (run it again to resume): %w", err)
	}
	return nil
}

// progressIfTerminal is a progress bar on a terminal, else nil.
func progressIfTerminal(w io.Writer) func(backfill.Progress) {
	if isTerminal(w) {
		return progressBar(w)
	}
	return nil
}

// progressBar draws "[####    ] done/total servers  rate/s  ETA" on one
// terminal line.
func progressBar(w io.Writer) func(backfill.Progress) {
	return func(p backfill.Progress) {
		const width = 30
		filled := 0
		if p.Total > 0 {
			filled = width * p.Done / p.Total
		}
		// Servers an earlier run finished cost nothing: not in the rate.
		rate := float64(p.Done-p.Summary.Resumed) / max(p.Elapsed.Seconds(), 1e-3)
		eta := "-"
		if rate > 0 {
			eta = (time.Duration(float64(p.Total-p.Done)/rate) * time.Second).Round(time.Second).String()
		}
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = ' '
			if i < filled {
				bar[i] = '#'
			}
		}
		fmt.Fprintf(w, "\r[%s] %d/%d servers  %.1f/s  ETA %s ", bar, p.Done, p.Total, rate, eta)
	}
}
