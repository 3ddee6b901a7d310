package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/time/rate"

	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/learn"
	"github.com/stackprint/stackprint/probe"
)

// `stackprint db learn`: flags, printing and the calls into db (the list
// parsing, the scores) and learn (the probing worker pool).
//
// Dependency: github.com/schollz/progressbar/v3, pinned at v3.19.1. docs/DESIGN.md
// lists it for long CLI work; a learn run over a top list takes minutes to
// hours at the configured probe rate, and the bar shows count, rate and
// time left on stderr without touching the results on stdout. The version
// is pinned exactly because the module proxy here serves no version lists.

func cmdDBLearn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db learn", stdout, stderr)
	t := addTargetFlags(fs)
	blockPath := fs.String("blocklist", "", "block list: abuse.ch Feodo Tracker CSV, or ip[:port] / host[:port] lines")
	topPath := fs.String("toplist", "", "top list (assumed benign): Tranco rank,domain CSV, or ip[:port] / host[:port] lines")
	label := fs.String("label", "", "add the fingerprints that reach --threshold to the DB under this label (default: only report scores)")
	threshold := fs.Float64("threshold", 1.0, "minimum score B/(B+T) to add a fingerprint; 1.0 = only ever seen on block-listed targets")
	minBlock := fs.Uint64("min-block", 2, "minimum block-listed targets a fingerprint needs to be added")
	confidence := fs.String("confidence", "low", "confidence of added fingerprints (default stacks are always low)")
	category := fs.String("category", "c2", "category of added fingerprints")
	source := fs.String("source", "", "source of added fingerprints (default: learn:BLOCKLIST vs TOPLIST)")
	defPort := fs.Uint("port", 443, "port for list entries without one")
	limit := fs.Int("limit", 0, "only the first N entries of each list (0 = all)")
	restart := fs.Bool("restart", false, "forget earlier learn runs (progress and counts) and start over")
	show := fs.Int("show", 20, "fingerprints to show, highest score first (0 = all)")
	noProgress := fs.Bool("no-progress", false, "no progress bar")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *blockPath == "" || *topPath == "" {
		fs.Usage()
		return fmt.Errorf("db learn: --blocklist and --toplist are required")
	}
	if *defPort < 1 || *defPort > 65535 {
		return fmt.Errorf("db learn: --port %d: want 1..65535", *defPort)
	}
	if *label != "" && (*threshold <= 0 || *threshold > 1) {
		return fmt.Errorf("db learn: --threshold %v: want 0 < threshold ≤ 1", *threshold)
	}
	lists := map[string][]db.ListEntry{}
	for _, l := range []struct{ role, path string }{{db.RoleBlock, *blockPath}, {db.RoleTop, *topPath}} {
		data, err := os.ReadFile(l.path)
		if err != nil {
			return fmt.Errorf("db learn: %w", err)
		}
		entries, rejected, format, err := db.ParseTargetList(data, uint16(*defPort))
		if err != nil {
			return fmt.Errorf("db learn: %s: %w", l.path, err)
		}
		for i, r := range rejected {
			if i == 20 {
				fmt.Fprintf(stderr, "%s: %d more lines rejected\n", l.path, len(rejected)-20)
				break
			}
			fmt.Fprintf(stderr, "%s:%d: rejected: %s\n", l.path, r.Line, r.Reason)
		}
		if *limit > 0 && len(entries) > *limit {
			entries = entries[:*limit]
		}
		if len(entries) == 0 {
			return fmt.Errorf("db learn: %s: no usable entries", l.path)
		}
		fmt.Fprintf(stderr, "%s list %s: %d entries (%s format)\n", l.role, l.path, len(entries), format)
		lists[l.role] = entries
	}

	st, cfg, err := openStore(ctx, t, true, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	if *restart {
		if err := st.ResetLearn(ctx); err != nil {
			return fmt.Errorf("db learn: %w", err)
		}
	}
	jobs, skipped, err := learn.PendingJobs(ctx, st, lists)
	if err != nil {
		return fmt.Errorf("db learn: %w", err)
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "resuming: %d entries finished by an earlier run are not probed again (--restart starts over)\n", skipped)
	}
	prober, err := probe.NewEngine(cfg.ProbeEngineConfig())
	if err != nil {
		return fmt.Errorf("db learn: %w", err)
	}
	l := newLearner(cfg, st, prober, net.DefaultResolver)
	var bar *progressbar.ProgressBar
	if !*noProgress && len(jobs) > 0 {
		bar = newLearnBar(len(jobs), stderr)
		l.OnRecord = func(db.LearnResult) { _ = bar.Add(1) }
	}
	sum, runErr := l.Run(ctx, jobs)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	fmt.Fprintf(stdout, "probed %d of %d entries: %d ok, %d failed, %d out of scope, %d unresolved; %d finished earlier\n",
		sum.Recorded, sum.Todo, sum.OK, sum.Failed, sum.OutOfScope, sum.Unresolved, skipped)
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded) {
			return fmt.Errorf("db learn: interrupted with %d entries left; run the same command again to resume", sum.Todo-sum.Recorded)
		}
		return fmt.Errorf("db learn: %w", runErr)
	}

	scores, err := st.LearnScores(ctx)
	if err != nil {
		return fmt.Errorf("db learn: %w", err)
	}
	printScores(stdout, scores, *show)
	if *label == "" {
		return nil
	}
	src := *source
	if src == "" {
		src = fmt.Sprintf("learn:%s vs %s", baseName(*blockPath), baseName(*topPath))
	}
	recs, retro, err := st.Promote(ctx, db.PromoteOptions{
		Label: *label, Category: *category, Source: src, Confidence: *confidence,
		Threshold: *threshold, MinBlock: *minBlock,
	})
	if err != nil {
		return fmt.Errorf("db learn: %w", err)
	}
	for _, r := range recs {
		s, _ := r.Score()
		fmt.Fprintf(stdout, "added %s %s as %q (B=%d T=%d score %.2f, %s confidence)\n", r.Kind, r.Value, r.Label, r.BlockCount, r.TopCount, s, r.Confidence)
	}
	fmt.Fprintf(stdout, "%d fingerprints reached score %.2f with at least %d block-listed targets; added via %s\n", len(recs), *threshold, *minBlock, st.Via())
	if st.Live() {
		fmt.Fprintf(stdout, "retro-hunt: %d retroactive alerts\n", retro)
	}
	return nil
}

// newLearner applies the daemon's scope and limits from cfg.
func newLearner(cfg *config.Config, st learn.Recorder, prober learn.Prober, res learn.Resolver) *learn.Learner {
	return learn.New(learn.Config{
		Store:       st,
		Prober:      prober,
		Scope:       cfg.Scope.NewScope(),
		Resolver:    res,
		Limiter:     rate.NewLimiter(rate.Limit(cfg.Scheduler.ProbesPerSecond), cfg.Scheduler.Burst),
		Workers:     cfg.Scheduler.MaxInFlight,
		Deadline:    cfg.Probe.Deadline,
		DNSTimeout:  cfg.Probe.IOTimeout,
		SNIObserved: cfg.Probe.JARMSNI == "observed",
	})
}

// newLearnBar is the progress bar of a learn run, on stderr.
func newLearnBar(n int, w io.Writer) *progressbar.ProgressBar {
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("learning"),
		progressbar.OptionSetItsString("targets"),
		progressbar.OptionShowIts(),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
	)
}

func printScores(w io.Writer, scores []db.LearnStats, show int) {
	if len(scores) == 0 {
		fmt.Fprintln(w, "no fingerprints learned")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVALUE\tBLOCK\tTOP\tSCORE\tBLOCK LIST NAMES\tNOTE")
	for i, s := range scores {
		if show > 0 && i == show {
			fmt.Fprintf(tw, "…\t%d more\t\t\t\t\t\n", len(scores)-show)
			break
		}
		note := ""
		if ds, ok := db.DefaultStack(s.Kind, s.Value); ok {
			note = "default stack: " + ds
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f\t%s\t%s\n", s.Kind, s.Value, s.Block, s.Top, s.Score(), hintList(s.Hints), note)
	}
	_ = tw.Flush()
}

func hintList(h map[string]uint64) string {
	if len(h) == 0 {
		return "-"
	}
	return strings.Join(db.TopHints(h, 3), ", ")
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
