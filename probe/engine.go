package probe

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"

	"github.com/stackprint/stackprint"
)

// Engine defaults.
const (
	DefaultIOTimeout    = 5 * time.Second
	DefaultDeadline     = 15 * time.Second
	DefaultConnRate     = 20              // new connections per second to one destination IP
	DefaultConnBurst    = DefaultMaxConns // one full probe of a fresh IP never waits
	DefaultMaxRateWait  = time.Second
	DefaultMaxConns     = 1 + 10 + 10 + 1 // cert, JARM, ATSF, HTTP
	DefaultRateLimitIPs = 65536
	// DefaultHTTPWait bounds the wait for an HTTP answer's head after
	// GET /: a web server answers at once, a TLS service that is no web
	// server never does.
	DefaultHTTPWait = time.Second
)

// AllKinds returns every fingerprint kind in the order a probe runs them
// (the default selection).
func AllKinds() []string {
	return []string{stackprint.KindJARM, stackprint.KindCert, stackprint.KindHTTP, stackprint.KindATSF}
}

// ParseKinds validates a kind selection and returns it in probe order
// without duplicates. An empty selection is an error: a probe must
// produce something.
func ParseKinds(kinds []string) ([]string, error) {
	all := AllKinds()
	want := map[string]bool{}
	for _, k := range kinds {
		k = strings.ToLower(strings.TrimSpace(k))
		if !slices.Contains(all, k) {
			return nil, fmt.Errorf("unknown probe kind %q (want %s)", k, strings.Join(all, ", "))
		}
		want[k] = true
	}
	if len(want) == 0 {
		return nil, errors.New("no probe kind selected")
	}
	var out []string
	for _, k := range all {
		if want[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// EngineConfig configures the composite prober. The zero value probes
// every kind with the defaults.
type EngineConfig struct {
	Kinds     []string      // subset of jarm, cert, http, atsf; nil → all
	Dialer    Dialer        // nil → a net.Dialer without TCP keep-alive
	IOTimeout time.Duration // per connect, write and read; 0 → DefaultIOTimeout
	Deadline  time.Duration // whole target; 0 → DefaultDeadline
	// Politeness: new connections per second to one destination IP (all
	// targets on that IP share it) and its burst, which must cover the
	// connections of one target. 0 → defaults; a negative ConnRate
	// disables the limit (benchmarks only). A probe reserves all its
	// connections up front and waits at most MaxRateWait for them (0 →
	// DefaultMaxRateWait); a longer wait makes the target rate_limited at
	// once, so a busy IP never ties up a probe slot.
	ConnRate     float64
	ConnBurst    int
	MaxRateWait  time.Duration
	RateLimitIPs int           // destination IPs whose limiter is remembered; 0 → DefaultRateLimitIPs
	MaxConns     int           // connections per target; 0 → DefaultMaxConns
	ReadCap      int           // bytes one ATSF/cert/HTTP connection may read; 0 → DefaultReadCap
	HTTPWait     time.Duration // wait for the HTTP answer's head; 0 → DefaultHTTPWait, capped by IOTimeout
	// StartTLSPorts maps ports to the STARTTLS protocol their connections
	// are upgraded with (Target.StartTLS, the sensor's word, wins); nil →
	// DefaultStartTLSPorts, an empty map: by port never.
	StartTLSPorts map[uint16]string
	Rand          io.Reader
}

// Engine fingerprints a target with every selected kind: JARM, the
// certificate and the HTTP Server header (one connection), then ATSF.
// Kinds run one after the other, each connection after the previous one
// closed. It is safe for concurrent use; the only shared state is the
// per-IP rate limiter.
type Engine struct {
	kinds     []string
	dialer    Dialer
	ioTimeout time.Duration
	deadline  time.Duration
	maxConns  int
	readCap   int
	httpWait  time.Duration
	starttls  map[uint16]string
	rand      io.Reader
	limits    *ipLimits // nil: unlimited
	rateWait  time.Duration
	connsPer  int // connections one target needs with the selected kinds
	atsfDefs  []*atsfDef
	// atsfBaseline runs every ATSF handshake to its end with unbuffered
	// reads, as before the cut; benchmarks compare against it in one run.
	atsfBaseline bool
	readBufs     sync.Pool    // *bufio.Reader of readBufSize for ATSF and certificate connections
	certSuites   []uint16     // allCipherSuites, built once (crypto/tls allocates the list per call)
	atsfCut      atomic.Int64 // ATSF connections closed after the server's flight (tests)
	dummyKey     *ecdh.PrivateKey
}

// NewEngine checks cfg and returns a prober.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	kinds := AllKinds()
	if cfg.Kinds != nil {
		var err error
		if kinds, err = ParseKinds(cfg.Kinds); err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
	}
	e := &Engine{
		kinds:     kinds,
		dialer:    cfg.Dialer,
		ioTimeout: cfg.IOTimeout,
		deadline:  cfg.Deadline,
		maxConns:  cfg.MaxConns,
		readCap:   cfg.ReadCap,
		rand:      cfg.Rand,
	}
	if e.dialer == nil {
		e.dialer = probeDialer()
	}
	if e.ioTimeout <= 0 {
		e.ioTimeout = DefaultIOTimeout
	}
	if e.deadline <= 0 {
		e.deadline = DefaultDeadline
	}
	if e.maxConns <= 0 {
		e.maxConns = DefaultMaxConns
	}
	if e.readCap <= 0 {
		e.readCap = DefaultReadCap
	}
	e.httpWait = cfg.HTTPWait
	if e.httpWait <= 0 {
		e.httpWait = DefaultHTTPWait
	}
	e.httpWait = min(e.httpWait, e.ioTimeout)
	e.starttls = DefaultStartTLSPorts()
	if cfg.StartTLSPorts != nil {
		e.starttls = map[uint16]string{}
		for port, p := range cfg.StartTLSPorts {
			if !stackprint.IsStartTLSProtocol(p) {
				return nil, fmt.Errorf("probe: STARTTLS port %d: unknown protocol %q (want %s)", port, p, strings.Join(stackprint.StartTLSProtocols(), ", "))
			}
			e.starttls[port] = p
		}
	}
	if e.rand == nil {
		e.rand = rand.Reader
	}
	e.connsPer = e.Conns(nil)
	if cfg.ConnRate >= 0 {
		r, b, n := cfg.ConnRate, cfg.ConnBurst, cfg.RateLimitIPs
		if r == 0 {
			r = DefaultConnRate
		}
		if b <= 0 {
			b = DefaultConnBurst
		}
		if n <= 0 {
			n = DefaultRateLimitIPs
		}
		if b < e.connsPer {
			return nil, fmt.Errorf("probe: per-IP connection burst %d is below the %d connections one target needs", b, e.connsPer)
		}
		e.limits = newIPLimits(rate.Limit(r), b, n)
		e.rateWait = cfg.MaxRateWait
		if e.rateWait <= 0 {
			e.rateWait = DefaultMaxRateWait
		}
	}
	e.certSuites = allCipherSuites()
	var err error
	if e.atsfDefs, err = loadATSFDefs(); err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	if e.dummyKey, err = ecdh.P256().GenerateKey(rand.Reader); err != nil {
		return nil, fmt.Errorf("probe: dummy key: %w", err)
	}
	return e, nil
}

// Kinds returns the selected kinds in probe order.
func (e *Engine) Kinds() []string { return slices.Clone(e.kinds) }

// selected is the engine's kinds that are in kinds (nil: all), in probe
// order.
func (e *Engine) selected(kinds []string) []string {
	if kinds == nil {
		return e.kinds
	}
	var out []string
	for _, k := range e.kinds {
		if slices.Contains(kinds, k) {
			out = append(out, k)
		}
	}
	return out
}

// Conns is the most connections a probe of kinds (nil: all the engine's)
// opens: 10 each for JARM and ATSF, one for the certificate and the HTTP
// header together.
func (e *Engine) Conns(kinds []string) int {
	kinds = e.selected(kinds)
	n := 0
	for _, k := range kinds {
		switch k {
		case stackprint.KindJARM, stackprint.KindATSF:
			n += 10
		case stackprint.KindCert:
			n++
		case stackprint.KindHTTP:
			if !slices.Contains(kinds, stackprint.KindCert) {
				n++ // otherwise it shares cert's connection
			}
		}
	}
	return min(n, e.maxConns)
}

// Probe fingerprints t. JARM sends sni verbatim (pass the IP literal for
// public JARM lists, as the daemon does by default); the certificate, HTTP
// and ATSF connections use t.SNI and send no server_name without one (an
// IP literal is never put there). It never panics, returns within ctx's
// deadline and the engine's Deadline (plus the close of the last
// connection), and always sets Status, Kinds, Conns, Started and
// Duration. See the package documentation for the status rules.
func (e *Engine) Probe(ctx context.Context, t stackprint.Target, sni string) stackprint.Result {
	return e.ProbeWith(ctx, t, sni, stackprint.ProbeOptions{})
}

// ProbeWith is Probe with options: o.Kinds restricts the kinds to a subset
// of the engine's (kinds it was not built with are ignored) — the daemon's
// scheduler takes JARM and ATSF once per server and the certificate and
// HTTP header once per name — and o.Answered is called when the target
// has answered its first ClientHello.
func (e *Engine) ProbeWith(ctx context.Context, t stackprint.Target, sni string, o stackprint.ProbeOptions) (res stackprint.Result) {
	res = stackprint.Result{Target: t, Started: time.Now()}
	kinds := e.selected(o.Kinds)
	has := func(k string) bool { return slices.Contains(kinds, k) }
	defer func() {
		if r := recover(); r != nil {
			res.Status, res.Error = stackprint.StatusHandshakeError, fmt.Sprintf("probe: internal error: %v", r)
		}
		res.Duration = time.Since(res.Started)
	}()
	if has(stackprint.KindJARM) {
		res.JARM, res.JARMRaw = stackprint.ZeroJARM, jarmRawEmpty
	}
	ip := t.IP.Unmap()
	if !ip.IsValid() || t.Port == 0 {
		res.Status, res.Error = stackprint.StatusRefused, fmt.Sprintf("probe: invalid target %s", t.Addr())
		return res
	}
	network := "tcp4"
	if ip.Is6() {
		network = "tcp6"
	}
	addr := netip.AddrPortFrom(ip, t.Port).String()
	ctx, cancel := context.WithTimeout(ctx, e.deadline)
	defer cancel()
	// The non-JARM kinds send the observed name, canonical (no IP literal,
	// no trailing dot) even if the caller's target is not.
	named := t
	named.SNI = stackprint.CanonicalSNI(t.SNI)
	// A STARTTLS service gets every connection upgraded before its hello.
	res.StartTLS = e.upgradeFor(t)
	base := e.dialer
	if res.StartTLS != "" {
		host := named.SNI
		if host == "" {
			host = ip.String()
		}
		base = &starttlsDialer{base: e.dialer, proto: res.StartTLS, host: host, timeout: e.ioTimeout}
	}
	d := &targetDialer{base: base, max: e.maxConns}
	if e.limits != nil {
		if err := e.reserve(ctx, ip, e.Conns(kinds)); err != nil {
			st := stackprint.StatusRateLimited
			if ctxDone(ctx) != nil {
				st = stackprint.StatusTimeout
			}
			for _, k := range kinds {
				res.Kinds = append(res.Kinds, stackprint.KindResult{Kind: k, Status: st, Error: k + ": not run: " + err.Error()})
			}
			res.Status, res.Error = st, "probe: "+err.Error()
			return res
		}
	}

	if o.Answered != nil && !has(stackprint.KindJARM) {
		if err := o.Answered(ctx); err != nil {
			for _, k := range kinds {
				res.Kinds = append(res.Kinds, stackprint.KindResult{Kind: k, Status: stackprint.StatusTimeout, Error: k + ": not run: " + err.Error()})
			}
			res.Status, res.Error = stackprint.StatusTimeout, "probe: "+err.Error()
			return res
		}
	}
	var skip string // why the remaining kinds are not run
	var skipStatus stackprint.Status
	notRun := func(kind string) bool {
		switch {
		case skip != "":
			res.Kinds = append(res.Kinds, stackprint.KindResult{Kind: kind, Status: skipStatus, Error: kind + ": not run: " + skip})
		case ctxDone(ctx) != nil:
			res.Kinds = append(res.Kinds, stackprint.KindResult{Kind: kind, Status: stackprint.StatusTimeout, Error: kind + ": not run: target deadline reached"})
		default:
			return false
		}
		return true
	}
	// record files a kind's outcome; mayStop lets a failure stop the
	// remaining kinds.
	record := func(kr stackprint.KindResult, conns0 int, t0 time.Time, mayStop bool) {
		kr.Conns, kr.Duration = d.n-conns0, time.Since(t0)
		if kr.Status != stackprint.StatusOK && d.budgetHit {
			kr.Status = stackprint.StatusBudgetExceeded
		}
		res.Kinds = append(res.Kinds, kr)
		if skip != "" || !mayStop {
			return
		}
		switch {
		case kr.Status == stackprint.StatusRefused, kr.Status == stackprint.StatusNotTLS,
			kr.Status == stackprint.StatusBudgetExceeded:
			skip, skipStatus = fmt.Sprintf("%s said %s", kr.Kind, kr.Status), kr.Status
		case d.connectTimeouts > 0:
			// A silently filtered port: every further connect would wait
			// out the I/O timeout too.
			skip, skipStatus = "connect timed out", stackprint.StatusTimeout
		case kr.Status == stackprint.StatusTimeout && kr.Conns <= 1:
			// A tarpit: it accepted and never answered the first
			// ClientHello. Ten more ClientHellos would each wait out the
			// same timeout; settle the target now.
			skip, skipStatus = "no answer to the first ClientHello", stackprint.StatusTimeout
		}
	}

	if has(stackprint.KindJARM) && !notRun(stackprint.KindJARM) {
		n0, t0 := d.n, time.Now()
		dl, _ := ctx.Deadline()
		jr := NewJARM(JARMConfig{Dialer: d, IOTimeout: e.ioTimeout, Deadline: time.Until(dl), Rand: e.rand, Answered: o.Answered}).Probe(ctx, t, sni)
		res.JARM, res.JARMRaw = jr.JARM, jr.JARMRaw
		record(stackprint.KindResult{Kind: stackprint.KindJARM, Status: jr.Status, Error: jr.Error}, n0, t0, true)
	}
	wantCert, wantHTTP := has(stackprint.KindCert), has(stackprint.KindHTTP)
	if wantCert || wantHTTP {
		first := stackprint.KindCert
		if !wantCert {
			first = stackprint.KindHTTP
		}
		if notRun(first) {
			if wantCert && wantHTTP {
				notRun(stackprint.KindHTTP)
			}
		} else {
			n0, t0 := d.n, time.Now()
			cert, hf, ckr, hkr := e.runCertHTTP(ctx, d, network, addr, named, wantCert, wantHTTP)
			res.Cert, res.HTTP = cert, hf
			if wantCert {
				record(ckr, n0, t0, true)
				n0 = d.n // the shared connection counts once, under cert
			}
			if wantHTTP {
				// With cert, an HTTP failure is HTTP-level (a TLS service
				// that is no web server) and says nothing about the target.
				record(hkr, n0, t0, !wantCert)
			}
		}
	}
	if has(stackprint.KindATSF) && !notRun(stackprint.KindATSF) {
		n0, t0 := d.n, time.Now()
		a, kr := e.runATSF(ctx, d, network, addr, named.SNI)
		res.ATSF = a
		record(kr, n0, t0, true)
	}
	res.Conns = d.n
	res.Status, res.Error = summarize(res.Kinds)
	return res
}

// upgradeFor is the STARTTLS protocol for t: the sensor's, else the
// port's, else "" (direct TLS).
func (e *Engine) upgradeFor(t stackprint.Target) string {
	if stackprint.IsStartTLSProtocol(t.StartTLS) {
		return t.StartTLS
	}
	return e.starttls[t.Port]
}

// summarize is the target status rule shared with the scheduler.
func summarize(kinds []stackprint.KindResult) (stackprint.Status, string) {
	return stackprint.Summarize(kinds)
}

// reserve takes the target's connections from its IP's token bucket,
// waiting if that takes at most rateWait (and fits the deadline).
func (e *Engine) reserve(ctx context.Context, ip netip.Addr, conns int) error {
	r := e.limits.get(ip).ReserveN(time.Now(), conns)
	if !r.OK() {
		return errors.New("per-IP connection rate limit: burst too small") // NewEngine rules this out
	}
	delay := r.Delay()
	if delay == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); delay > e.rateWait || (ok && time.Now().Add(delay).After(dl)) {
		r.Cancel()
		return fmt.Errorf("per-IP connection rate limit: %d connections would wait %v", conns, delay.Round(time.Millisecond))
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return fmt.Errorf("waiting for the per-IP connection rate limit: %w", ctx.Err())
	}
}

// errBudget is returned wrapped with DeadlineExceeded so the JARM prober
// aborts as on a timeout instead of hashing a run with missing probes.
var errBudget = errors.New("per-target connection budget exhausted")

// targetDialer is the dialer of one Probe call: it enforces the connection
// budget and counts attempts. Probes of one target are sequential, so it
// needs no locking.
type targetDialer struct {
	base            Dialer
	max             int
	n               int // dial attempts
	connectTimeouts int
	budgetHit       bool
}

func (d *targetDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.n >= d.max {
		d.budgetHit = true
		return nil, fmt.Errorf("%w (%d): %w", errBudget, d.max, context.DeadlineExceeded)
	}
	d.n++
	c, err := d.base.DialContext(ctx, network, addr)
	if err != nil && isTimeout(err) {
		d.connectTimeouts++
	}
	return c, err
}

// dial opens one connection within one I/O timeout and classifies a failure.
func (e *Engine) dial(ctx context.Context, d *targetDialer, network, addr string) (net.Conn, stackprint.Status, error) {
	dctx, cancel := context.WithTimeout(ctx, e.ioTimeout)
	defer cancel()
	c, err := d.DialContext(dctx, network, addr)
	if err != nil {
		st := classify(ctx, nil, err)
		if st == stackprint.StatusHandshakeError {
			st = stackprint.StatusRefused // unreachable, no route, …: nothing accepted the connection
		}
		return nil, st, fmt.Errorf("connect: %w", err)
	}
	return c, "", nil
}

// classify maps why a connection produced nothing to a status. readErr is
// the record reader's own error (the root cause when the TLS client only
// saw its effect), err the client's.
func classify(ctx context.Context, readErr, err error) stackprint.Status {
	errs := []error{readErr, err}
	has := func(f func(error) bool) bool {
		return slices.ContainsFunc(errs, func(e error) bool { return e != nil && f(e) })
	}
	switch {
	case has(func(e error) bool { return errors.Is(e, errNotTLS) }):
		return stackprint.StatusNotTLS
	case has(func(e error) bool { return errors.Is(e, errBudget) }):
		return stackprint.StatusBudgetExceeded
	case ctxDone(ctx) != nil || has(isTimeout):
		return stackprint.StatusTimeout
	case has(func(e error) bool { return errors.Is(e, syscall.ECONNREFUSED) }):
		return stackprint.StatusRefused
	case has(isReset):
		return stackprint.StatusReset
	}
	return stackprint.StatusHandshakeError
}

// ipLimits holds one token bucket per destination IP in a size-bounded
// LRU (as zgrab2 does), so memory stays bounded however many IPs are
// probed. No TTL: a bucket left alone refills to its burst, so dropping it
// would change nothing, and a TTL would cost the LRU's cleanup goroutine,
// which can never be stopped.
type ipLimits struct {
	mu    sync.Mutex
	lru   *expirable.LRU[netip.Addr, *rate.Limiter]
	limit rate.Limit
	burst int
}

func newIPLimits(limit rate.Limit, burst, size int) *ipLimits {
	return &ipLimits{lru: expirable.NewLRU[netip.Addr, *rate.Limiter](size, nil, 0), limit: limit, burst: burst}
}

func (l *ipLimits) get(ip netip.Addr) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.lru.Get(ip)
	if !ok {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.lru.Add(ip, lim)
	}
	return lim
}
