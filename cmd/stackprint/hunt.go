package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/hunt"
	"github.com/stackprint/stackprint/probe"
)

const huntSynopsis = "stackprint hunt [--targets FILE|-] [--ports 443,8443] [--sni-from FILE] [--rate N] [--concurrency N] [--format jsonl|csv|zeek] [--state FILE] [--out FILE] [--allow CIDR] [flags] [FILE…]"

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// huntGCPercent is hunt's GOGC unless the environment sets one.
const huntGCPercent = 400

func cmdHunt(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("hunt", stdout, stderr)
	t := addTargetFlags(fs)
	targets := fs.String("targets", "", "target list: addresses, CIDRs, HOST:PORT lines, masscan -oL/-oJ, zmap or other CSV; - for stdin (default: stdin unless FILEs are given)")
	portsFlag := fs.String("ports", "443", "ports for lines that name none (comma-separated)")
	sniFrom := fs.String("sni-from", "", "file of ADDR[:PORT] NAME… lines: the names to probe each address with")
	rateFlag := fs.Float64("rate", 0, "targets started per second (default: scheduler.probes_per_second of the config)")
	burst := fs.Int("burst", 0, "burst of --rate (default: scheduler.burst of the config)")
	conc := fs.Int("concurrency", 0, "probes at once (default: scheduler.max_in_flight of the config)")
	format := fs.String("format", hunt.FormatJSONL, "record format: "+strings.Join(hunt.Formats(), ", "))
	statePath := fs.String("state", "", "state file: resume a run after an interruption, never probing a target twice")
	outPath := fs.String("out", "", "append records to this file (default: stdout); with --state a resume leaves exactly one record per target in it")
	var allow listFlag
	fs.Var(&allow, "allow", "also allow this prefix (repeatable; added to scope.allow: by default only public unicast addresses are probed)")
	kinds := fs.String("kinds", "", "fingerprint kinds (default: probe.kinds of the config)")
	ioTimeout := fs.Duration("timeout", 0, "timeout of each connect, write and read (default: probe.io_timeout)")
	deadline := fs.Duration("deadline", 0, "deadline of one target (default: probe.deadline)")
	connRate := fs.Float64("conns-per-ip", 0, "new connections per second to one IP (default: probe.conns_per_ip_per_second)")
	noMatch := fs.Bool("no-match", false, "do not read the fingerprint DB")
	progress := fs.String("progress", "auto", "progress on stderr: auto (when stderr is a terminal), always, never")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	enc, err := hunt.NewEncoder(*format)
	if err != nil {
		return fmt.Errorf("hunt: --format: %w", err)
	}
	ports, err := hunt.ParsePorts(*portsFlag)
	if err != nil {
		return fmt.Errorf("hunt: --ports: %w", err)
	}
	if *targets != "" {
		files = append([]string{*targets}, files...)
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	path, _, _, cfg, err := t.resolve()
	if err != nil {
		return err
	}
	for _, a := range allow {
		p := config.ParsePrefixes([]string{a})
		if len(p) != 1 {
			return fmt.Errorf("hunt: --allow %q: not an address or CIDR prefix", a)
		}
		cfg.Scope.Allow = append(cfg.Scope.Allow, p[0].String())
	}
	pcfg := cfg.ProbeEngineConfig()
	if *kinds != "" {
		pcfg.Kinds = strings.Split(*kinds, ",")
	}
	pcfg.IOTimeout = cmp.Or(*ioTimeout, pcfg.IOTimeout)
	pcfg.Deadline = cmp.Or(*deadline, pcfg.Deadline)
	pcfg.ConnRate = -1 // the hunt keeps the per-IP budget, so a waiting target holds no probe slot
	eng, err := probe.NewEngine(pcfg)
	if err != nil {
		return fmt.Errorf("hunt: %w", err)
	}
	var matcher hunt.Matcher
	if !*noMatch {
		m, closeDB, err := huntSnapshot(ctx, t, path, stderr)
		if err != nil {
			return err
		}
		if closeDB != nil {
			defer closeDB()
			matcher = m
		}
	}
	var names *hunt.SNIMap
	var badNames []hunt.BadLine
	if *sniFrom != "" {
		f, err := os.Open(*sniFrom)
		if err != nil {
			return fmt.Errorf("hunt: --sni-from: %w", err)
		}
		names, err = hunt.ReadSNIMap(f, *sniFrom, func(b hunt.BadLine) { badNames = append(badNames, b) })
		f.Close()
		if err != nil {
			return fmt.Errorf("hunt: %w", err)
		}
	}
	sources, closeSources, err := hunt.OpenSources(files, os.Stdin)
	if err != nil {
		return err
	}
	defer closeSources()
	var state *hunt.State
	if *statePath != "" {
		if state, err = hunt.OpenState(*statePath); err != nil {
			return err
		}
		defer state.Close()
		if fin, intr := state.Counts(); fin+intr > 0 {
			fmt.Fprintf(stderr, "hunt: resuming from %s: %d targets finished, %d interrupted (reported, not probed again)\n", *statePath, fin, intr)
		}
	}
	out := hunt.Output{W: stdout, Size: -1}
	if state != nil && *outPath == "" {
		if err := state.SetOutput(""); err != nil {
			return err
		}
	}
	if *outPath != "" {
		f, size, err := hunt.OpenOutput(*outPath, state)
		if err != nil {
			return err
		}
		defer f.Close()
		out = hunt.Output{W: f, Size: size}
	}
	hcfg := hunt.Config{
		Prober: eng, Matcher: matcher, Resolver: net.DefaultResolver, Ports: ports, Names: names,
		Scope:           cfg.Scope.NewScope(),
		JARMSNIObserved: cfg.Probe.JARMSNI == "observed",
		Rate:            cmp.Or(*rateFlag, cfg.Scheduler.ProbesPerSecond),
		Burst:           cmp.Or(*burst, cfg.Scheduler.Burst),
		Concurrency:     cmp.Or(*conc, cfg.Scheduler.MaxInFlight),
		ConnRate:        cmp.Or(*connRate, cfg.Probe.ConnsPerIPPerSecond),
		ConnBurst:       cfg.Probe.ConnsPerIPBurst,
		State:           state, Out: out, Encoder: enc,
	}
	showProgress := *progress == "always" || *progress == "auto" && isTerminal(stderr)
	if showProgress {
		total := -1
		if !slices.Contains(files, "-") {
			total = hunt.CountTargets(files, ports)
		}
		hcfg.Progress = func(p hunt.Progress) { printHuntProgress(stderr, p, total) }
	}
	if os.Getenv("GOGC") == "" {
		// A hunt's live heap is a few MiB (the probes in flight): collecting
		// at 5x instead of 2x of it took a tenth of the client's user CPU
		// off the full fingerprint (bench/hunt.sh's lab, GOGC=400 vs 100).
		debug.SetGCPercent(huntGCPercent)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("hunt: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("hunt: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	sum, err := hunt.Run(ctx, hcfg, sources)
	if showProgress {
		fmt.Fprintln(stderr)
	}
	for _, b := range append(badNames, sum.Bad...) {
		fmt.Fprintf(stderr, "hunt: bad line %s\n", b)
	}
	if more := sum.BadLines - len(sum.Bad); more > 0 {
		fmt.Fprintf(stderr, "hunt: … and %d more bad lines\n", more)
	}
	var st []string
	for s, n := range sum.Statuses {
		st = append(st, fmt.Sprintf("%s=%d", s, n))
	}
	fmt.Fprintf(stderr, "hunt: targets=%d probed=%d matched=%d resumed=%d interrupted=%d out_of_scope=%d duplicates=%d bad_lines=%d seconds=%.1f statuses=%s\n",
		sum.Targets, sum.Probed, sum.Matched, sum.Resumed, sum.Interrupted, sum.OutOfScope, sum.Duplicates, sum.BadLines+len(badNames),
		sum.Elapsed.Seconds(), strings.Join(slices.Sorted(slices.Values(st)), ","))
	if sum.Stopped && err == nil && ctx.Err() != nil {
		fmt.Fprintln(stderr, "hunt: stopped before the end of the input; run again with the same --state to go on")
	}
	return err
}

// huntSnapshot opens the fingerprint DB (through the daemon when one runs
// and owns the file) and snapshots it for the hunt. No DB yet: no
// matcher, said on stderr.
func huntSnapshot(ctx context.Context, t dbTarget, path string, stderr io.Writer) (hunt.Matcher, func(), error) {
	st, _, err := openStoreReadOnly(ctx, t, stderr)
	if err != nil {
		if strings.HasPrefix(err.Error(), "no fingerprint DB at") {
			fmt.Fprintf(stderr, "hunt: %v: records carry no matches\n", err)
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("hunt: %w", err)
	}
	defer st.Close()
	d, closeDB, err := hunt.Snapshot(ctx, st, path)
	if err != nil {
		return nil, nil, err
	}
	n := 0
	if stats, err := d.Stats(); err == nil {
		n = stats.Fingerprints
	}
	fmt.Fprintf(stderr, "hunt: matching against %d fingerprints of %s (exact and near)\n", n, st.Via())
	return d, closeDB, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func printHuntProgress(w io.Writer, p hunt.Progress, total int) {
	secs := p.Elapsed.Seconds()
	line := fmt.Sprintf("\rhunt: %d records, %.1f targets/s, %s elapsed", p.Done, float64(p.Done)/max(secs, 1e-9), p.Elapsed.Round(time.Second))
	if total > 0 && p.Settled > 0 {
		line += fmt.Sprintf(", %.0f%% of ~%d", 100*float64(p.Settled)/float64(total), total)
		if p.Settled < total {
			eta := time.Duration(float64(p.Elapsed) * float64(total-p.Settled) / float64(p.Settled))
			line += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
		}
	}
	fmt.Fprint(w, line+"   ")
}
