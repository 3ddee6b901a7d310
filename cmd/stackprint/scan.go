package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/tailer"
)

const scanSynopsis = "stackprint scan [--no-probe] [-c FILE] [--format zeek|eve] [--capacity N] [--restart] FILE…"

// cmdScan is the backfill of old logs (backfillcmd.go) or, with
// --no-probe, one pass over them (plain or .gz) through the real parse
// path (tailer.ReadFile), then the scope filter and the dedup LRU the
// daemon uses, without any network, and a one-line summary: the ingest
// benchmark and a dry run of what a backfill would probe.
//
// Summary fields: lines read (headers included), events (TLS connections),
// parse_errors, skipped (valid non-TLS records), long_lines, distinct_targets
// (exact count of distinct server ip:port+SNI), deduped (events whose target
// was in the LRU), out_of_scope and to_probe (LRU misses the scope denies
// or allows: what the daemon would record or probe), wall seconds, lines
// per wall second, CPU seconds and the peak RSS.
func cmdScan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scan", stdout, stderr)
	noProbe := fs.Bool("no-probe", false, "only parse, scope and dedup: no network, no outputs (a dry run and the ingest benchmark)")
	restart := fs.Bool("restart", false, "backfill: judge every server again instead of resuming the interrupted run over the same files")
	cfgPath := fs.String("c", "", "config file for scope, dedup and tailer limits (default: the embedded default)")
	format := fs.String("format", "", "zeek or eve (default: detected per file from its first line)")
	capacity := fs.Int("capacity", 0, "dedup LRU capacity (default: dedup.capacity of the config)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the pass to this file (go tool pprof)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return fmt.Errorf("scan: no files given")
	}
	switch *format {
	case "", tailer.FormatZeek, tailer.FormatEve:
	default:
		return fmt.Errorf("scan: --format %q: want %q or %q", *format, tailer.FormatZeek, tailer.FormatEve)
	}
	if !*noProbe {
		return runBackfill(ctx, *cfgPath, *format, files, *restart, stdout, stderr)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit keeps the garbage of a long pass from growing the
		// heap to twice the live data (the LRU dominates it).
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(scanMemoryLimit))
	}
	if *capacity <= 0 {
		*capacity = cfg.Dedup.Capacity
	}
	s := enrich.NewDryRun(cfg.Scope.NewScope(), *capacity, cfg.Dedup.TTL, time.Now())
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := tailer.Options{MaxLineBytes: cfg.Tailer.MaxLineBytes, Logger: log}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("scan: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start, cpu0 := time.Now(), cpuSeconds()
	total, err := tailer.ReadFiles(ctx, "scan", files, *format, opts, s.Handle)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	s.Flush()
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "scan: files=%d lines=%d events=%d parse_errors=%d skipped=%d long_lines=%d distinct_targets=%d deduped=%d out_of_scope=%d to_probe=%d seconds=%.3f lines_per_s=%.0f cpu_seconds=%.3f max_rss_mb=%.1f\n",
		len(files), total.Lines, total.Events, total.ParseErrors, total.Skipped, total.LongLines,
		s.Distinct(), s.Deduped, s.OutOfScope, s.ToProbe, secs, float64(total.Lines)/max(secs, 1e-9), cpuSeconds()-cpu0, maxRSSMB())
	return nil
}

// scanMemoryLimit is the soft memory limit of a scan unless GOMEMLIMIT is
// set.
const scanMemoryLimit = 72 << 20

// cpuSeconds is the user and system CPU time of this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// maxRSSMB is the peak resident set of this process in MiB (0 if unknown).
func maxRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}
