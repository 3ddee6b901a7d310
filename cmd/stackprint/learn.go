package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/time/rate"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/probe"
)

// `stackprint db learn` probes the servers of a block list and a top list
// with the daemon's probe engine, scope and limits, and counts for every
// fingerprint how many block-listed (B) and top-list (T) targets carried
// it: score B/(B+T), docs/ATSF.md §3. Progress is kept in the DB per list
// entry, so an interrupted run resumes where it stopped.
//
// Dependency: github.com/schollz/progressbar/v3, pinned at v3.19.1. docs/DESIGN.md
// lists it for long CLI work; a learn run over a top list takes minutes to
// hours at the configured probe rate, and the bar shows count, rate and
// time left on stderr without touching the results on stdout. The version
// is pinned exactly because the module proxy here serves no version lists.

// learnProber is what learning needs from the probe engine.
type learnProber interface {
	Probe(ctx context.Context, t stackprint.Target, sni string) stackprint.Result
}

// learnResolver resolves the host names of top lists.
type learnResolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// listEntry is one target of a block or top list.
type listEntry struct {
	Line int
	Key  string     // host:port as written to the learn progress
	IP   netip.Addr // valid when the list gave an address
	Host string     // canonical host name when it gave a name
	Port uint16
	Hint string // block lists: the malware family; top lists: the rank
}

// List formats learn reads.
const (
	listFeodo  = "feodo"  // abuse.ch Feodo Tracker ipblocklist.csv
	listTranco = "tranco" // Tranco rank,domain
	listPlain  = "plain"  // ip[:port] or host[:port] per line
)

// parseTargetList reads a block or top list: the abuse.ch Feodo Tracker
// CSV (a header naming dst_ip and dst_port, quoted or not, possibly as a
// # comment), a Tranco list (rank,domain), or plain ip[:port] /
// host[:port] lines (# comments). Entries without a port get defaultPort.
// Invalid lines are returned as rejections; duplicates are dropped.
func parseTargetList(data []byte, defaultPort uint16) (entries []listEntry, rejected []db.Rejection, format string, err error) {
	lines := strings.Split(strings.TrimPrefix(string(data), "\ufeff"), "\n")
	format = listPlain
	var col map[string]int
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
		if strings.Contains(h, "dst_ip") || strings.Contains(h, "dstip") {
			format, col = listFeodo, map[string]int{}
			for i, f := range splitCSV(h) {
				col[strings.ReplaceAll(f, "_", "")] = i
			}
			break
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		if f := splitCSV(l); len(f) == 2 && isDigits(f[0]) {
			format = listTranco
		}
		break
	}
	if format == listFeodo {
		if _, ok := col["dstip"]; !ok {
			return nil, nil, format, fmt.Errorf("feodo list: header has no dst_ip column")
		}
	}
	seen := map[string]bool{}
	for i, raw := range lines {
		n := i + 1
		l := strings.TrimSpace(raw)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		var (
			e   listEntry
			err error
		)
		switch format {
		case listFeodo:
			f := splitCSV(l)
			if strings.Contains(strings.ToLower(l), "dst_ip") || strings.Contains(strings.ToLower(l), "dstip") {
				continue // the header
			}
			get := func(name string) string {
				if j, ok := col[name]; ok && j < len(f) {
					return f[j]
				}
				return ""
			}
			host := get("dstip")
			if p := get("dstport"); p != "" {
				host = net.JoinHostPort(host, p)
			}
			e, err = parseListTarget(host, defaultPort)
			e.Hint = get("malware")
		case listTranco:
			f := splitCSV(l)
			if len(f) != 2 || !isDigits(f[0]) {
				err = fmt.Errorf("want rank,domain")
				break
			}
			e, err = parseListTarget(f[1], defaultPort)
			e.Hint = "rank " + f[0]
		default:
			if j := strings.Index(l, " #"); j >= 0 {
				l = strings.TrimSpace(l[:j])
			}
			e, err = parseListTarget(l, defaultPort)
		}
		if err != nil {
			rejected = append(rejected, db.Rejection{Line: n, Reason: err.Error()})
			continue
		}
		e.Line = n
		if seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		entries = append(entries, e)
	}
	return entries, rejected, format, nil
}

func splitCSV(l string) []string {
	r := csv.NewReader(strings.NewReader(l))
	r.TrimLeadingSpace = true
	r.LazyQuotes = true
	f, err := r.Read()
	if err != nil {
		return strings.Split(l, ",")
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseListTarget parses ip, ip:port, [v6]:port, host or host:port.
func parseListTarget(s string, defaultPort uint16) (listEntry, error) {
	s = strings.TrimSpace(s)
	host, port := s, defaultPort
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, perr := strconv.ParseUint(p, 10, 16)
		if perr != nil || n == 0 {
			return listEntry{}, fmt.Errorf("port %q: want 1..65535", p)
		}
		host, port = h, uint16(n)
	}
	host = strings.Trim(host, "[]")
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = stackprint.CanonicalAddr(ip)
		return listEntry{Key: netip.AddrPortFrom(ip, port).String(), IP: ip, Port: port}, nil
	}
	name := stackprint.CanonicalSNI(host)
	if !validHostname(name) {
		return listEntry{}, fmt.Errorf("%q: not an IP address or host name", s)
	}
	return listEntry{Key: net.JoinHostPort(name, strconv.Itoa(int(port))), Host: name, Port: port}, nil
}

func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// learnJob is one list entry to probe.
type learnJob struct {
	role string
	e    listEntry
}

// learner probes list entries and records them.
type learner struct {
	store       dbStore
	prober      learnProber
	scope       *enrich.Scope
	resolver    learnResolver
	limiter     *rate.Limiter
	workers     int
	deadline    time.Duration // per target, as the daemon's probe.deadline
	dnsTimeout  time.Duration
	sniObserved bool                 // probe.jarm_sni: observed
	onRecord    func(db.LearnResult) // called after each recorded entry (tests)
	progress    *progressbar.ProgressBar

	mu sync.Mutex // serialises store calls: the admin client is one connection
}

// learnSummary counts the outcomes of a run.
type learnSummary struct {
	Todo, Recorded, OK, Failed, OutOfScope, Unresolved int
}

// run probes jobs with l.workers in parallel under the rate limit. It
// returns when all are recorded, ctx ends (the rest stays for the next
// run) or the store fails.
func (l *learner) run(ctx context.Context, jobs []learnJob) (learnSummary, error) {
	sum := learnSummary{Todo: len(jobs)}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan learnJob)
	var (
		wg  sync.WaitGroup
		smu sync.Mutex
	)
	for range max(l.workers, 1) {
		wg.Go(func() {
			for j := range ch {
				lr, ok := l.one(ctx, j)
				if !ok {
					continue // interrupted: not finished, probed again next run
				}
				l.mu.Lock()
				// A finished probe is recorded even if ctx ended meanwhile.
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				_, err := l.store.RecordLearn(rctx, lr)
				rcancel()
				l.mu.Unlock()
				if err != nil {
					cancel(fmt.Errorf("record %s entry %s: %w", j.role, j.e.Key, err))
					continue
				}
				smu.Lock()
				sum.Recorded++
				switch {
				case lr.Status == string(stackprint.StatusOK):
					sum.OK++
				case lr.Status == string(stackprint.StatusOutOfScope):
					sum.OutOfScope++
				case lr.Status == statusDNSError:
					sum.Unresolved++
				default:
					sum.Failed++
				}
				smu.Unlock()
				if l.progress != nil {
					_ = l.progress.Add(1)
				}
				if l.onRecord != nil {
					l.onRecord(lr)
				}
			}
		})
	}
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return sum, err
	}
	return sum, ctx.Err()
}

// statusDNSError is the learn status of a host name that did not resolve.
const statusDNSError = "dns_error"

// one resolves, scopes, rate-limits and probes one entry. ok is false
// when ctx ended before the entry finished.
func (l *learner) one(ctx context.Context, j learnJob) (db.LearnResult, bool) {
	lr := db.LearnResult{Role: j.role, Entry: j.e.Key, Hint: j.e.Hint, At: time.Now().UTC()}
	ip := j.e.IP
	if !ip.IsValid() {
		rctx, cancel := context.WithTimeout(ctx, l.dnsTimeout)
		addrs, err := l.resolver.LookupNetIP(rctx, "ip", j.e.Host)
		cancel()
		if ctx.Err() != nil {
			return lr, false
		}
		if err != nil || len(addrs) == 0 {
			lr.Status, lr.Error = statusDNSError, shortErr(err, "no addresses")
			return lr, true
		}
		ip = pickAddr(addrs)
	}
	t := stackprint.Target{IP: ip, Port: j.e.Port, SNI: j.e.Host}
	lr.Target = t
	if ok, why := l.scope.Check(t.Addr()); !ok {
		lr.Status, lr.Error = string(stackprint.StatusOutOfScope), why
		return lr, true
	}
	if err := l.limiter.Wait(ctx); err != nil {
		return lr, false
	}
	sni := t.IP.String()
	if l.sniObserved && t.SNI != "" {
		sni = t.SNI
	}
	pctx, cancel := context.WithTimeout(ctx, l.deadline)
	res := l.prober.Probe(pctx, t, sni)
	cancel()
	if ctx.Err() != nil {
		return lr, false
	}
	lr.Status, lr.Error, lr.At = string(res.Status), res.Error, res.Started.UTC()
	lr.Fingerprints = db.FingerprintsOf(res)
	return lr, true
}

// pickAddr prefers IPv4, as jarm.py and public JARM lists do.
func pickAddr(addrs []netip.Addr) netip.Addr {
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap()
		}
	}
	return stackprint.CanonicalAddr(addrs[0])
}

func shortErr(err error, def string) string {
	if err == nil {
		return def
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// newLearnProber is the daemon's probe engine, configured as newDaemon
// configures it: kinds, timeouts, per-IP connection limit, caps.
func newLearnProber(cfg *Config) (learnProber, error) {
	return probe.NewEngine(cfg.probeEngineConfig())
}

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
	lists := map[string][]listEntry{}
	for _, l := range []struct{ role, path string }{{db.RoleBlock, *blockPath}, {db.RoleTop, *topPath}} {
		data, err := os.ReadFile(l.path)
		if err != nil {
			return fmt.Errorf("db learn: %w", err)
		}
		entries, rejected, format, err := parseTargetList(data, uint16(*defPort))
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
	var jobs []learnJob
	skipped := 0
	for _, role := range []string{db.RoleBlock, db.RoleTop} {
		done, err := st.LearnFinished(ctx, role)
		if err != nil {
			return fmt.Errorf("db learn: %w", err)
		}
		for _, e := range lists[role] {
			if done[e.Key] {
				skipped++
				continue
			}
			jobs = append(jobs, learnJob{role: role, e: e})
		}
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "resuming: %d entries finished by an earlier run are not probed again (--restart starts over)\n", skipped)
	}
	prober, err := newLearnProber(cfg)
	if err != nil {
		return fmt.Errorf("db learn: %w", err)
	}
	l := newLearner(cfg, st, prober, net.DefaultResolver)
	if !*noProgress && len(jobs) > 0 {
		l.progress = newLearnBar(len(jobs), stderr)
	}
	sum, runErr := l.run(ctx, jobs)
	if l.progress != nil {
		_ = l.progress.Finish()
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
func newLearner(cfg *Config, st dbStore, prober learnProber, res learnResolver) *learner {
	ports := make([]uint16, len(cfg.Scope.Ports))
	for i, p := range cfg.Scope.Ports {
		ports[i] = uint16(p)
	}
	return &learner{
		store:       st,
		prober:      prober,
		scope:       enrich.NewScope(parsePrefixes(cfg.Scope.Allow), parsePrefixes(cfg.Scope.Deny), ports),
		resolver:    res,
		limiter:     rate.NewLimiter(rate.Limit(cfg.Scheduler.ProbesPerSecond), cfg.Scheduler.Burst),
		workers:     cfg.Scheduler.MaxInFlight,
		deadline:    cfg.Probe.Deadline,
		dnsTimeout:  cfg.Probe.IOTimeout,
		sniObserved: cfg.Probe.JARMSNI == "observed",
	}
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
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	// most frequent first
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && (h[keys[j]] > h[keys[j-1]] || h[keys[j]] == h[keys[j-1]] && keys[j] < keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	if len(keys) > 3 {
		keys = keys[:3]
	}
	return strings.Join(keys, ", ")
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
