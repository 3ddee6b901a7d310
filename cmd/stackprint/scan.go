package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/tailer"
)

const scanSynopsis = "stackprint scan [--no-probe] [-c FILE] [--format zeek|eve] [--capacity N] [--restart] FILE…"

// cmdScan makes one pass over existing logs (plain or .gz) through the real
// parse path (tailer.ReadFile), then the scope filter and the dedup LRU the
// daemon uses, without any network, and prints a one-line summary: the
// ingest benchmark and a dry run of what a backfill would probe.
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
	s := &scanner{
		scope: cfg.Scope.NewScope(),
		// The daemon's dedup index: a fixed-size entry per target, exact
		// LRU. A pass over files takes seconds, far below dedup.ttl:
		// entries are filed with the pass's start time.
		cache:    enrich.NewIndex(*capacity, nil),
		keyer:    enrich.NewKeyer(),
		now:      time.Now(),
		ttl:      cfg.Dedup.TTL,
		distinct: newHashSet(),
	}
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
	var total tailer.Stats
	start, cpu0 := time.Now(), cpuSeconds()
	for _, path := range files {
		f := *format
		if f == "" {
			if f, err = detectFormat(path); err != nil {
				return fmt.Errorf("scan: %w", err)
			}
		}
		st, err := tailer.ReadFile(ctx, tailer.Input{Name: "scan", Path: path, Format: f}, opts, s.handle)
		addStats(&total, st)
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "scan: files=%d lines=%d events=%d parse_errors=%d skipped=%d long_lines=%d distinct_targets=%d deduped=%d out_of_scope=%d to_probe=%d seconds=%.3f lines_per_s=%.0f cpu_seconds=%.3f max_rss_mb=%.1f\n",
		len(files), total.Lines, total.Events, total.ParseErrors, total.Skipped, total.LongLines,
		s.distinct.n, s.deduped, s.outOfScope, s.toProbe, secs, float64(total.Lines)/max(secs, 1e-9), cpuSeconds()-cpu0, maxRSSMB())
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

// scanner is the dedup and scope step of enrich.Pipeline.Handle without the
// prober: a target in the LRU is deduped; a new one is checked against the
// scope and remembered either way.
type scanner struct {
	scope    *enrich.Scope
	cache    *enrich.Index
	keyer    enrich.Keyer
	now      time.Time
	ttl      time.Duration
	distinct *hashSet

	deduped, outOfScope, toProbe uint64
}

func (s *scanner) handle(_ context.Context, ev stackprint.Event) error {
	t := ev.Target()
	k := s.keyer.Key(t, false)
	if _, ok := s.cache.Get(k, s.now); ok {
		s.deduped++ // counted in distinct when it was added
		return nil
	}
	s.distinct.add(k.H1)
	var flags uint8
	if s.scope.Allows(t.Addr()) {
		s.toProbe++
	} else {
		s.outOfScope++
		flags = enrich.FlagOutOfScope
	}
	s.cache.Put(k, s.now.Add(s.ttl), flags)
	return nil
}

func addStats(t *tailer.Stats, s tailer.Stats) {
	t.Lines += s.Lines
	t.Events += s.Events
	t.ParseErrors += s.ParseErrors
	t.Skipped += s.Skipped
	t.LongLines += s.LongLines
}

// detectFormat reads the first non-blank line of a log (decompressed for
// .gz): a Zeek header or a JSON object without event_type is Zeek, one
// with event_type is Suricata eve.
func detectFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if t := bytes.TrimSpace(line); len(t) > 0 {
			if t[0] == '{' && bytes.Contains(line, []byte(`"event_type"`)) {
				return tailer.FormatEve, nil
			}
			return tailer.FormatZeek, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return tailer.FormatZeek, nil // empty: nothing to misread
			}
			return "", fmt.Errorf("%s: %w", path, err)
		}
	}
}

// hashSet counts distinct hashes in 4 bytes per slot (open addressing,
// linear probing, at most half full): 8 MB for a million targets. It keeps
// 32 bits of each 64-bit hash, so two targets in about 10^4 collide at a
// million distinct ones and the count is that much low; exact for the
// counts tests use.
type hashSet struct {
	slots []uint32
	n     int
}

func newHashSet() *hashSet { return &hashSet{slots: make([]uint32, 1<<16)} }

func (h *hashSet) add(x64 uint64) {
	x := uint32(x64 >> 32)
	if x == 0 {
		x = 1 // 0 marks an empty slot
	}
	if 2*(h.n+1) > len(h.slots) {
		old := h.slots
		h.slots, h.n = make([]uint32, 2*len(old)), 0
		for _, v := range old {
			if v != 0 {
				h.insert(v)
			}
		}
	}
	h.insert(x)
}

func (h *hashSet) insert(x uint32) {
	mask := uint32(len(h.slots) - 1)
	// Slot from the low bits of a multiplicative hash of x (x itself is
	// already uniform; the multiply spreads runs of similar values).
	for i := (x * 0x9E3779B1) & mask; ; i = (i + 1) & mask {
		switch h.slots[i] {
		case x:
			return
		case 0:
			h.slots[i] = x
			h.n++
			return
		}
	}
}
