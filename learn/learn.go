package learn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
)

// Prober is what learning needs from the probe engine.
type Prober interface {
	Probe(ctx context.Context, t stackprint.Target, sni string) stackprint.Result
}

// Resolver resolves the host names of top lists.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Scope says whether a target may be probed, and why not.
type Scope interface {
	Check(netip.AddrPort) (bool, string)
}

// Recorder keeps each entry's result (the DB, directly or through the
// running daemon).
type Recorder interface {
	RecordLearn(ctx context.Context, lr db.LearnResult) (bool, error)
}

// Job is one list entry to probe, with its role (db.RoleBlock or
// db.RoleTop).
type Job struct {
	Role  string
	Entry db.ListEntry
}

// Config is a learn run's collaborators and limits: the daemon's scope,
// probe rate, parallelism and deadlines.
type Config struct {
	Store       Recorder
	Prober      Prober
	Scope       Scope
	Resolver    Resolver
	Limiter     *rate.Limiter
	Workers     int
	Deadline    time.Duration        // per target, as the daemon's probe.deadline
	DNSTimeout  time.Duration        // per host name
	SNIObserved bool                 // probe.jarm_sni: observed
	OnRecord    func(db.LearnResult) // called after each recorded entry (progress, tests)
}

// Learner probes list entries and records them.
type Learner struct {
	Config
	mu sync.Mutex // serialises store calls: the admin client is one connection
}

// New returns a learner with cfg.
func New(cfg Config) *Learner { return &Learner{Config: cfg} }

// Summary counts the outcomes of a run.
type Summary struct {
	Todo, Recorded, OK, Failed, OutOfScope, Unresolved int
}

// Run probes jobs with l.Workers in parallel under the rate limit. It
// returns when all are recorded, ctx ends (the rest stays for the next
// run) or the store fails.
func (l *Learner) Run(ctx context.Context, jobs []Job) (Summary, error) {
	sum := Summary{Todo: len(jobs)}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan Job)
	var (
		wg  sync.WaitGroup
		smu sync.Mutex
	)
	for range max(l.Workers, 1) {
		wg.Go(func() {
			for j := range ch {
				lr, ok := l.one(ctx, j)
				if !ok {
					continue // interrupted: not finished, probed again next run
				}
				l.mu.Lock()
				// A finished probe is recorded even if ctx ended meanwhile.
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				_, err := l.Store.RecordLearn(rctx, lr)
				rcancel()
				l.mu.Unlock()
				if err != nil {
					cancel(fmt.Errorf("record %s entry %s: %w", j.Role, j.Entry.Key, err))
					continue
				}
				smu.Lock()
				sum.Recorded++
				switch {
				case lr.Status == string(stackprint.StatusOK):
					sum.OK++
				case lr.Status == string(stackprint.StatusOutOfScope):
					sum.OutOfScope++
				case lr.Status == StatusDNSError:
					sum.Unresolved++
				default:
					sum.Failed++
				}
				smu.Unlock()
				if l.OnRecord != nil {
					l.OnRecord(lr)
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

// StatusDNSError is the learn status of a host name that did not resolve.
const StatusDNSError = "dns_error"

// one resolves, scopes, rate-limits and probes one entry. ok is false
// when ctx ended before the entry finished.
func (l *Learner) one(ctx context.Context, j Job) (db.LearnResult, bool) {
	lr := db.LearnResult{Role: j.Role, Entry: j.Entry.Key, Hint: j.Entry.Hint, At: time.Now().UTC()}
	ip := j.Entry.IP
	if !ip.IsValid() {
		rctx, cancel := context.WithTimeout(ctx, l.DNSTimeout)
		addrs, err := l.Resolver.LookupNetIP(rctx, "ip", j.Entry.Host)
		cancel()
		if ctx.Err() != nil {
			return lr, false
		}
		if err != nil || len(addrs) == 0 {
			lr.Status, lr.Error = StatusDNSError, shortErr(err, "no addresses")
			return lr, true
		}
		ip = pickAddr(addrs)
	}
	t := stackprint.Target{IP: ip, Port: j.Entry.Port, SNI: j.Entry.Host}
	lr.Target = t
	if ok, why := l.Scope.Check(t.Addr()); !ok {
		lr.Status, lr.Error = string(stackprint.StatusOutOfScope), why
		return lr, true
	}
	if err := l.Limiter.Wait(ctx); err != nil {
		return lr, false
	}
	sni := t.IP.String()
	if l.SNIObserved && t.SNI != "" {
		sni = t.SNI
	}
	pctx, cancel := context.WithTimeout(ctx, l.Deadline)
	res := l.Prober.Probe(pctx, t, sni)
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
