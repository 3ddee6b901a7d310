package hunt

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"

	"github.com/stackprint/stackprint"
)

// Prober fingerprints one target (probe.Engine).
type Prober interface {
	ProbeWith(ctx context.Context, t stackprint.Target, sni string, o stackprint.ProbeOptions) stackprint.Result
	// Conns is the most connections one probe opens.
	Conns(kinds []string) int
}

// Matcher finds the DB entries a result's fingerprints match, exact and
// near (*db.DB: ATSF entries with 9 of 10 answers equal, JARM entries with
// one equal half). stackprint hunt opens it on a private snapshot of the
// DB taken at start, so a run holds no lock on the live file.
type Matcher interface {
	Match(stackprint.Result) ([]stackprint.Match, error)
}

// Scope decides which addresses may be probed (enrich.Scope).
type Scope interface {
	Check(netip.AddrPort) (bool, string)
}

// Resolver looks host names up (net.DefaultResolver).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Source is one input of targets.
type Source struct {
	Name string // for messages: the file name, or "-"
	R    io.Reader
}

// Defaults.
const (
	DefaultConcurrency = 64
	DefaultConnRate    = 20 // connections per second to one IP, as the daemon
	// DefaultPending bounds the targets admitted and waiting for their IP's
	// connection budget or the global rate.
	DefaultPending  = 4096
	maxBadReported  = 1000
	limiterIPsBound = 65536
)

// Config is one run.
type Config struct {
	Prober   Prober
	Scope    Scope
	Matcher  Matcher  // nil: no matching
	Resolver Resolver // nil: host names are bad lines
	Ports    []uint16 // for lines without a port
	Names    *SNIMap  // --sni-from; nil: none
	// JARMSNIObserved sends the target's name as JARM's server_name; else
	// JARM sends the IP literal (jarm.py's and the daemon's default) when
	// the target has no name.
	JARMSNIObserved bool
	Rate            float64 // targets started per second; <= 0: no global limit
	Burst           int     // of Rate; 0 → 1
	Concurrency     int     // probes at once; 0 → DefaultConcurrency
	ConnRate        float64 // connections per second to one IP; 0 → DefaultConnRate, < 0 none
	ConnBurst       int     // its burst; 0 → one probe's connections
	Pending         int     // 0 → DefaultPending
	State           *State  // nil: not resumable
	Out             Output
	Encoder         *Encoder
	// Progress, when set, is called about once a second and at the end.
	Progress func(Progress)
	Now      func() time.Time
}

// Progress is a snapshot of a running hunt.
type Progress struct {
	Done    int // records written (this run)
	Started int // probes begun
	// Settled counts every target read that needs nothing more: records
	// written plus targets skipped (duplicates, out of scope, finished
	// by a previous run); against the input's expanded size it is the
	// share done.
	Settled int
	Elapsed time.Duration
}

// Summary is what a run did.
type Summary struct {
	Targets     int // distinct targets read (duplicates excluded)
	Probed      int
	Resumed     int // finished by a previous run: skipped
	Interrupted int // started by a previous run and never finished: reported, not probed
	OutOfScope  int
	Duplicates  int
	Unresolved  int
	Matched     int // records with at least one exact DB match
	NearMatched int // records with near matches only
	BadLines    int
	Bad         []BadLine // the first maxBadReported
	Statuses    map[stackprint.Status]int
	Elapsed     time.Duration
	Stopped     bool // ctx ended before the input was done
}

// item is one admitted target.
type item struct {
	t       stackprint.Target
	key     string
	where   string
	ready   time.Time
	seq     uint64
	resumed bool // an interrupted target: only reported
}

type pendingHeap []*item

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if !h[i].ready.Equal(h[j].ready) {
		return h[i].ready.Before(h[j].ready)
	}
	return h[i].seq < h[j].seq
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(*item)) }
func (h *pendingHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// run is the state of one Run.
type run struct {
	cfg     Config
	mu      sync.Mutex // sum, output and the state's D lines
	sum     Summary
	outSize int64
	started int
	seen    map[string]struct{}
	limits  *expirable.LRU[netip.Addr, *rate.Limiter]
	cost    int
	err     error // first output or state error: stops the run
}

// Run reads the sources, probes every new in-scope target once and
// writes its record. Ending ctx stops reading and starting probes; the
// probes under way finish (each within the engine's deadline) and are
// written, so a run stopped by a signal loses nothing.
func Run(ctx context.Context, cfg Config, sources []Source) (Summary, error) {
	if cfg.Prober == nil || cfg.Scope == nil || cfg.Encoder == nil || cfg.Out.W == nil {
		return Summary{}, errors.New("hunt: prober, scope, encoder and output are required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Pending <= 0 {
		cfg.Pending = DefaultPending
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &run{cfg: cfg, seen: map[string]struct{}{}, cost: cfg.Prober.Conns(nil), outSize: cfg.Out.Size}
	r.sum.Statuses = map[stackprint.Status]int{}
	if cfg.ConnRate >= 0 {
		if cfg.ConnRate == 0 {
			cfg.ConnRate = DefaultConnRate
		}
		if cfg.ConnBurst <= 0 {
			cfg.ConnBurst = r.cost
		}
		if cfg.ConnBurst < r.cost {
			return Summary{}, fmt.Errorf("hunt: per-IP connection burst %d is below the %d connections one target needs", cfg.ConnBurst, r.cost)
		}
		r.cfg = cfg
		r.limits = expirable.NewLRU[netip.Addr, *rate.Limiter](limiterIPsBound, nil, 0)
	}
	if cfg.Out.Size <= 0 { // a new file or a stream
		if h := cfg.Encoder.Header(cfg.Now()); len(h) > 0 {
			n, err := cfg.Out.W.Write(h)
			r.outSize += int64(n)
			if err != nil {
				return Summary{}, fmt.Errorf("hunt: write header: %w", err)
			}
		}
	}
	start := cfg.Now()
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	in := make(chan *item, 256)
	readErr := make(chan error, 1)
	go func() {
		defer close(in)
		readErr <- r.read(readCtx, sources, in)
	}()
	work := make(chan *item)
	var wg sync.WaitGroup
	probeCtx := context.WithoutCancel(ctx)
	for range cfg.Concurrency {
		wg.Go(func() {
			for it := range work {
				r.probe(probeCtx, it)
			}
		})
	}
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					cfg.Progress(r.progress(start))
				}
			}
		}()
	}
	stopped := r.dispatch(ctx, in, work)
	close(work)
	wg.Wait()
	stopRead()
	for range in {
	}
	err := <-readErr
	close(progressDone)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sum.Elapsed = cfg.Now().Sub(start)
	r.sum.Stopped = stopped
	if cfg.Progress != nil {
		p := r.progressLocked()
		p.Elapsed = r.sum.Elapsed
		cfg.Progress(p)
	}
	if r.err != nil {
		return r.sum, r.err
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return r.sum, err
	}
	return r.sum, nil
}

func (r *run) progress(start time.Time) Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.progressLocked()
	p.Elapsed = r.cfg.Now().Sub(start)
	return p
}

func (r *run) progressLocked() Progress {
	done := r.sum.Probed + r.sum.Interrupted
	return Progress{Done: done, Started: r.started, Settled: done + r.sum.Duplicates + r.sum.OutOfScope + r.sum.Resumed}
}

func (r *run) bad(b BadLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sum.BadLines++
	if len(r.sum.Bad) < maxBadReported {
		r.sum.Bad = append(r.sum.Bad, b)
	}
}

// read parses and expands the sources into distinct targets; in-scope
// ones go to in, the rest are counted.
func (r *run) read(ctx context.Context, sources []Source, in chan<- *item) error {
	for _, src := range sources {
		err := ReadSpecs(src.R, src.Name, func(s Spec) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if s.Host != "" {
				return r.resolve(ctx, s, in)
			}
			for ip := range prefixAddrs(s.Prefix) {
				if !r.expand(ctx, s, ip, in) {
					return ctx.Err()
				}
			}
			return nil
		}, r.bad)
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *run) resolve(ctx context.Context, s Spec, in chan<- *item) error {
	file, line := s.File, s.Line
	if r.cfg.Resolver == nil {
		r.bad(BadLine{file, line, fmt.Sprintf("host name %q: no resolver", s.Host)})
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	addrs, err := r.cfg.Resolver.LookupNetIP(rctx, "ip", s.Host)
	cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil || len(addrs) == 0 {
		r.mu.Lock()
		r.sum.Unresolved++
		r.mu.Unlock()
		r.bad(BadLine{file, line, fmt.Sprintf("resolve %q: %v", s.Host, err)})
		return nil
	}
	if !r.expand(ctx, s, stackprint.CanonicalAddr(addrs[0]), in) {
		return ctx.Err()
	}
	return nil
}

// expand admits the targets of one address; false when ctx ended.
func (r *run) expand(ctx context.Context, s Spec, ip netip.Addr, in chan<- *item) bool {
	return expand(s, ip, r.cfg.Ports, r.cfg.Names, func(t stackprint.Target) bool {
		t.SNI = stackprint.CanonicalSNI(t.SNI)
		key := Key(t)
		r.mu.Lock()
		if _, dup := r.seen[key]; dup {
			r.sum.Duplicates++
			r.mu.Unlock()
			return true
		}
		r.seen[key] = struct{}{}
		r.sum.Targets++
		r.mu.Unlock()
		it := &item{t: t, key: key, where: s.Where()}
		if st := r.cfg.State; st != nil {
			if seen, finished := st.Previous(key); seen {
				if finished {
					r.mu.Lock()
					r.sum.Resumed++
					r.mu.Unlock()
					return true
				}
				it.resumed = true
			}
		}
		if !it.resumed {
			if ok, _ := r.cfg.Scope.Check(t.Addr()); !ok {
				r.mu.Lock()
				r.sum.OutOfScope++
				r.mu.Unlock()
				return true
			}
		}
		select {
		case in <- it:
			return true
		case <-ctx.Done():
			return false
		}
	})
}

// dispatch hands admitted targets to the workers once their IP's
// connection budget and the global rate allow, other IPs going meanwhile.
// It reports whether ctx stopped it.
func (r *run) dispatch(ctx context.Context, in <-chan *item, work chan<- *item) bool {
	global := rate.NewLimiter(rate.Inf, 1)
	if r.cfg.Rate > 0 {
		global = rate.NewLimiter(rate.Limit(r.cfg.Rate), max(r.cfg.Burst, 1))
	}
	var h pendingHeap
	var seq uint64
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil || r.failed() {
			return true
		}
		now := r.cfg.Now()
		if len(h) > 0 && !h[0].ready.After(now) {
			it := heap.Pop(&h).(*item)
			if !it.resumed {
				if err := global.Wait(ctx); err != nil {
					return true
				}
			}
			select {
			case work <- it:
			case <-ctx.Done():
				return true
			}
			continue
		}
		src := in
		if len(h) >= r.cfg.Pending {
			src = nil
		}
		var wake <-chan time.Time
		if len(h) > 0 {
			timer.Reset(h[0].ready.Sub(now))
			wake = timer.C
		}
		if src == nil && wake == nil {
			return false // input done, nothing waiting
		}
		select {
		case it, ok := <-src:
			if !ok {
				in = nil
				if len(h) == 0 {
					return false
				}
				continue
			}
			it.ready, it.seq = now, seq
			seq++
			if !it.resumed && r.limits != nil {
				lim, ok := r.limits.Get(it.t.IP)
				if !ok {
					lim = rate.NewLimiter(rate.Limit(r.cfg.ConnRate), r.cfg.ConnBurst)
					r.limits.Add(it.t.IP, lim)
				}
				it.ready = now.Add(lim.ReserveN(now, r.cost).DelayFrom(now))
			}
			heap.Push(&h, it)
		case <-wake:
		case <-ctx.Done():
			return true
		}
	}
}

// probe runs one target and writes its record.
func (r *run) probe(ctx context.Context, it *item) {
	jarmSNI := it.t.IP.String()
	if r.cfg.JARMSNIObserved && it.t.SNI != "" {
		jarmSNI = it.t.SNI
	}
	var rec Record
	if it.resumed {
		rec = recordOf(stackprint.Result{Target: it.t, Started: r.cfg.Now(), Status: StatusInterrupted,
			Error: "a previous run began to probe this target and never finished; not probed again"}, jarmSNI, it.where, nil)
	} else {
		if st := r.cfg.State; st != nil {
			if err := st.Started(it.key); err != nil {
				r.fail(err)
				return
			}
		}
		r.mu.Lock()
		r.started++
		r.mu.Unlock()
		res := r.cfg.Prober.ProbeWith(ctx, it.t, jarmSNI, stackprint.ProbeOptions{})
		var matches []stackprint.Match
		if r.cfg.Matcher != nil {
			m, err := r.cfg.Matcher.Match(res)
			if err != nil {
				res.Error = joinErr(res.Error, "match: "+err.Error())
			}
			matches = m
		}
		rec = recordOf(res, jarmSNI, it.where, matches)
	}
	line, err := r.encode(rec)
	if err != nil {
		r.fail(fmt.Errorf("hunt: encode %s: %w", it.key, err))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	n, err := r.cfg.Out.W.Write(line)
	if r.outSize >= 0 {
		r.outSize += int64(n)
	}
	if err != nil {
		r.err = fmt.Errorf("hunt: write record: %w", err)
		return
	}
	if st := r.cfg.State; st != nil {
		if err := st.Finished(it.key, r.outSize); err != nil {
			r.err = err
			return
		}
	}
	if it.resumed {
		r.sum.Interrupted++
	} else {
		r.sum.Probed++
	}
	r.sum.Statuses[rec.Status]++
	switch exact := stackprint.ExactMatches(rec.Matches); {
	case len(exact) > 0:
		r.sum.Matched++
	case len(rec.Matches) > 0:
		r.sum.NearMatched++
	}
}

// encode serialises one record; the encoder's buffer is shared.
func (r *run) encode(rec Record) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := r.cfg.Encoder.Encode(rec)
	return append([]byte(nil), b...), err
}

func (r *run) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err != nil
}

func (r *run) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// prefixAddrs yields every address of p in order.
func prefixAddrs(p netip.Prefix) func(func(netip.Addr) bool) {
	return func(yield func(netip.Addr) bool) {
		a := p.Masked().Addr()
		for p.Contains(a) {
			if !yield(a) {
				return
			}
			n := a.Next()
			if !n.IsValid() {
				return
			}
			a = n
		}
	}
}
