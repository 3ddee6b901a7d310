package enrich

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// scriptedProber answers from a table and records every call; it stands in
// for the network so the scheduler's own logic is what is under test (the
// real prober is exercised in probe/ and the end-to-end tests).
type scriptedProber struct {
	mu     sync.Mutex
	calls  []stackprint.Target
	kinds  [][]string
	starts []time.Time
	jarm   map[netip.Addr]string
	block  chan struct{} // when set, Probe waits on it or ctx
}

func (s *scriptedProber) ProbeWith(ctx context.Context, t stackprint.Target, sni string, o stackprint.ProbeOptions) stackprint.Result {
	s.mu.Lock()
	s.calls = append(s.calls, t)
	s.kinds = append(s.kinds, o.Kinds)
	s.starts = append(s.starts, time.Now())
	s.mu.Unlock()
	if o.Answered != nil {
		if err := o.Answered(ctx); err != nil {
			return stackprint.Result{Target: t, Status: stackprint.StatusTimeout, JARM: stackprint.ZeroJARM, Error: err.Error(), Conns: 1}
		}
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return stackprint.Result{Target: t, Status: stackprint.StatusTimeout, JARM: stackprint.ZeroJARM, Error: "deadline"}
		}
	}
	var kinds []stackprint.KindResult
	for _, k := range o.Kinds {
		kinds = append(kinds, stackprint.KindResult{Kind: k, Status: stackprint.StatusOK})
	}
	if j, ok := s.jarm[t.IP]; ok {
		return stackprint.Result{Target: t, Status: stackprint.StatusOK, JARM: j, Kinds: kinds, Conns: 1}
	}
	for i := range kinds {
		kinds[i].Status = stackprint.StatusRefused
	}
	return stackprint.Result{Target: t, Status: stackprint.StatusRefused, JARM: stackprint.ZeroJARM, Kinds: kinds, Conns: 1}
}

func (s *scriptedProber) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.calls) }

type mapMatcher map[string]stackprint.Match

func (m mapMatcher) Match(r stackprint.Result) ([]stackprint.Match, error) {
	if x, ok := m[r.JARM]; ok && r.HasJARM() {
		return []stackprint.Match{x}, nil
	}
	return nil, nil
}

type judgeAll struct{}

func (judgeAll) JudgeRest(ev stackprint.Event, r stackprint.Result, m []stackprint.Match, done []string) []stackprint.Verdict {
	if len(m) == 0 || slices.Contains(done, "db_match") {
		return nil
	}
	return []stackprint.Verdict{{Rule: "db_match", Severity: "high", Match: m[0]}}
}

type memSink struct {
	mu      sync.Mutex
	records []stackprint.Result
	alerts  []stackprint.Alert
}

func (s *memSink) Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, r)
	return nil
}

func (s *memSink) Alert(a stackprint.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, a)
	return nil
}

func (s *memSink) snapshot() ([]stackprint.Result, []stackprint.Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stackprint.Result(nil), s.records...), append([]stackprint.Alert(nil), s.alerts...)
}

const badJARM = "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"

func testConfig() Config {
	return Config{
		Scope: NewScope([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil, nil),
		TTL:   time.Hour, NegativeTTL: time.Minute, Capacity: 1000,
		ServerKinds: []string{stackprint.KindJARM}, ServerCost: 1, NameCost: 1,
		MaxInFlight: 4, ProbesPerSecond: 1000, Burst: 1000, ConnsPerIP: 1000, ConnsPerIPBurst: 1000, Deadline: 5 * time.Second,
	}
}

func event(uid, resp string) stackprint.Event {
	return stackprint.Event{UID: uid, Orig: netip.MustParseAddrPort("127.0.0.1:50000"), Resp: netip.MustParseAddrPort(resp), TS: time.Unix(1700000000, 0)}
}

func start(t *testing.T, cfg Config, pr Prober, m Matcher, sink Sink) *Pipeline {
	t.Helper()
	p, err := New(cfg, pr, m, judgeAll{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

func waitIdle(t *testing.T, p *Pipeline) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitIdle(ctx); err != nil {
		t.Fatalf("pipeline never went idle: %v (stats %+v)", err, p.Stats())
	}
}

func TestDedupProbesOnceAndAlertsEveryConnection(t *testing.T) {
	pr := &scriptedProber{jarm: map[netip.Addr]string{netip.MustParseAddr("127.0.0.10"): badJARM}, block: make(chan struct{})}
	sink := &memSink{}
	p := start(t, testConfig(), pr, mapMatcher{badJARM: {Label: "test-c2", Confidence: "high"}}, sink)
	ctx := context.Background()
	// 50 connections arrive while the probe is in flight, 50 after.
	for i := range 50 {
		if err := p.Handle(ctx, event("C"+string(rune('a'+i%26))+string(rune('a'+i/26)), "127.0.0.10:443")); err != nil {
			t.Fatal(err)
		}
	}
	close(pr.block)
	waitIdle(t, p)
	for i := range 50 {
		if err := p.Handle(ctx, event("D"+string(rune('a'+i%26))+string(rune('a'+i/26)), "127.0.0.10:443")); err != nil {
			t.Fatal(err)
		}
	}
	if n := pr.count(); n != 1 {
		t.Fatalf("probed %d times, want 1", n)
	}
	recs, alerts := sink.snapshot()
	if len(recs) != 1 || recs[0].JARM != badJARM {
		t.Fatalf("records = %+v, want one with the JARM", recs)
	}
	if len(alerts) != 100 {
		t.Fatalf("alerts = %d, want 100 (one per connection)", len(alerts))
	}
	ids := map[string]bool{}
	for _, a := range alerts {
		ids[a.ID] = true
		if a.Match.Label != "test-c2" || a.Rule != "db_match" {
			t.Fatalf("alert %+v lacks the match", a)
		}
	}
	if len(ids) != 100 {
		t.Fatalf("alert ids not distinct per connection: %d distinct", len(ids))
	}
	st := p.Stats()
	if st.Events != 100 || st.ServerProbes != 1 || st.Probed != 50 || st.Deduped != 50 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSNIIsPartOfTheKey(t *testing.T) {
	pr := &scriptedProber{jarm: map[netip.Addr]string{netip.MustParseAddr("127.0.0.11"): badJARM}}
	cfg := testConfig()
	cfg.NameKinds = []string{stackprint.KindCert}
	p := start(t, cfg, pr, mapMatcher{}, &memSink{})
	for _, sni := range []string{"", "a.example", "b.example", "a.example"} {
		ev := event("C1", "127.0.0.11:443")
		ev.SNI = sni
		if err := p.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, p)
	if n := pr.count(); n != 3 {
		t.Fatalf("probed %d times, want 3 (the server with no sni, then names a.example, b.example)", n)
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if !slices.Equal(pr.kinds[0], []string{"jarm", "cert"}) || !slices.Equal(pr.kinds[1], []string{"cert"}) || !slices.Equal(pr.kinds[2], []string{"cert"}) {
		t.Fatalf("kinds per probe %v: want the server probe with jarm and cert, then cert only per name", pr.kinds)
	}
}

func TestOutOfScopeIsRecordedNotProbed(t *testing.T) {
	pr := &scriptedProber{}
	sink := &memSink{}
	cfg := testConfig()
	cfg.Scope = NewScope(nil, nil, nil)
	p := start(t, cfg, pr, mapMatcher{}, sink)
	for _, a := range []string{"169.254.169.254:443", "10.1.2.3:443", "127.0.0.1:443", "10.1.2.3:443"} {
		if err := p.Handle(context.Background(), event("C1", a)); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, p)
	if n := pr.count(); n != 0 {
		t.Fatalf("prober called %d times for out-of-scope targets", n)
	}
	recs, _ := sink.snapshot()
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3 (one per distinct target)", len(recs))
	}
	for _, r := range recs {
		if r.Status != stackprint.StatusOutOfScope || r.Error == "" {
			t.Fatalf("record %+v, want out_of_scope with a reason", r)
		}
	}
	if st := p.Stats(); st.OutOfScope != 4 || st.Deduped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeadlineBoundsAProbe(t *testing.T) {
	pr := &scriptedProber{block: make(chan struct{})} // never released: a tarpit
	sink := &memSink{}
	cfg := testConfig()
	cfg.Deadline = 200 * time.Millisecond
	p := start(t, cfg, pr, mapMatcher{}, sink)
	t0 := time.Now()
	if err := p.Handle(context.Background(), event("C1", "127.0.0.31:443")); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, p)
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("probe took %s despite a 200ms deadline", d)
	}
	recs, _ := sink.snapshot()
	if len(recs) != 1 || recs[0].Status != stackprint.StatusTimeout {
		t.Fatalf("records %+v, want one timeout", recs)
	}
}

func TestGlobalRateLimit(t *testing.T) {
	pr := &scriptedProber{}
	cfg := testConfig()
	cfg.ProbesPerSecond, cfg.Burst = 20, 1
	p := start(t, cfg, pr, mapMatcher{}, &memSink{})
	for i := range 6 {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)}), 443)
		if err := p.Handle(context.Background(), event("C", addr.String())); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, p)
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if len(pr.starts) != 6 {
		t.Fatalf("%d probes, want 6", len(pr.starts))
	}
	// 6 probes at 20/s with burst 1 cannot span less than 5 intervals of 50ms.
	first, last := pr.starts[0], pr.starts[0]
	for _, s := range pr.starts {
		if s.Before(first) {
			first = s
		}
		if s.After(last) {
			last = s
		}
	}
	if span := last.Sub(first); span < 225*time.Millisecond {
		t.Fatalf("6 probes started within %s: rate limit of 20/s exceeded", span)
	}
}

func TestNegativeResultExpiresSooner(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	pr := &scriptedProber{}
	cfg := testConfig()
	cfg.Now = clock
	p := start(t, cfg, pr, mapMatcher{}, &memSink{})
	ev := event("C1", "127.0.0.41:443")
	_ = p.Handle(context.Background(), ev)
	waitIdle(t, p)
	_ = p.Handle(context.Background(), ev) // cached refusal
	mu.Lock()
	now = now.Add(2 * time.Minute) // past NegativeTTL (1m), before TTL (1h)
	mu.Unlock()
	_ = p.Handle(context.Background(), ev)
	waitIdle(t, p)
	if n := pr.count(); n != 2 {
		t.Fatalf("probed %d times, want 2 (refusal re-probed after negative_ttl)", n)
	}
}

func TestShutdownAbandonsInFlightProbeInsteadOfRecordingTimeout(t *testing.T) {
	pr := &scriptedProber{block: make(chan struct{})} // never answers
	sink := &memSink{}
	var mu sync.Mutex
	var settled []stackprint.Event
	cfg := testConfig()
	cfg.DrainTimeout = 100 * time.Millisecond
	cfg.OnSettled = func(ev stackprint.Event) { mu.Lock(); settled = append(settled, ev); mu.Unlock() }
	p, err := New(cfg, pr, mapMatcher{}, judgeAll{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	if err := p.Handle(ctx, event("C1", "127.0.0.51:443")); err != nil {
		t.Fatal(err)
	}
	for pr.count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("shutdown took %s with a 100ms drain timeout", d)
	}
	recs, _ := sink.snapshot()
	mu.Lock()
	defer mu.Unlock()
	if len(recs) != 0 || len(settled) != 0 {
		t.Fatalf("abandoned probe was recorded (%+v) or settled (%d)", recs, len(settled))
	}
	if st := p.Stats(); st.Abandoned != 1 || st.Probed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestShutdownDrainsProbesThatFinishInTime(t *testing.T) {
	pr := &scriptedProber{block: make(chan struct{}), jarm: map[netip.Addr]string{netip.MustParseAddr("127.0.0.52"): badJARM}}
	sink := &memSink{}
	cfg := testConfig()
	cfg.DrainTimeout = 5 * time.Second
	p, err := New(cfg, pr, mapMatcher{}, judgeAll{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	if err := p.Handle(ctx, event("C1", "127.0.0.52:443")); err != nil {
		t.Fatal(err)
	}
	for pr.count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	close(pr.block) // the probe finishes during the drain
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if recs, _ := sink.snapshot(); len(recs) != 1 || recs[0].Status != stackprint.StatusOK {
		t.Fatalf("drained probe not recorded: %+v", recs)
	}
}

// genMatcher is a matcher whose entries change while the pipeline runs.
type genMatcher struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]stackprint.Match
}

func (g *genMatcher) Match(r stackprint.Result) ([]stackprint.Match, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if x, ok := g.m[r.JARM]; ok {
		return []stackprint.Match{x}, nil
	}
	return nil, nil
}

func (g *genMatcher) Generation() uint64 { g.mu.Lock(); defer g.mu.Unlock(); return g.gen }

func TestDBChangeAppliesToCachedTargets(t *testing.T) {
	pr := &scriptedProber{jarm: map[netip.Addr]string{netip.MustParseAddr("127.0.0.61"): badJARM}}
	sink := &memSink{}
	gm := &genMatcher{gen: 1, m: map[string]stackprint.Match{}}
	p := start(t, testConfig(), pr, gm, sink)
	if err := p.Handle(context.Background(), event("C1", "127.0.0.61:443")); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, p)
	// The operator adds the fingerprint: the next connection alerts
	// without a new probe.
	gm.mu.Lock()
	gm.m[badJARM], gm.gen = stackprint.Match{Label: "added-later"}, 2
	gm.mu.Unlock()
	if err := p.Handle(context.Background(), event("C2", "127.0.0.61:443")); err != nil {
		t.Fatal(err)
	}
	_, alerts := sink.snapshot()
	if len(alerts) != 1 || alerts[0].Event.UID != "C2" || alerts[0].Match.Label != "added-later" {
		t.Fatalf("alerts %+v, want one for C2", alerts)
	}
	// And removing it stops the alerts.
	gm.mu.Lock()
	delete(gm.m, badJARM)
	gm.gen = 3
	gm.mu.Unlock()
	if err := p.Handle(context.Background(), event("C3", "127.0.0.61:443")); err != nil {
		t.Fatal(err)
	}
	if _, alerts := sink.snapshot(); len(alerts) != 1 {
		t.Fatalf("alert after the entry was removed: %+v", alerts)
	}
	if n := pr.count(); n != 1 {
		t.Fatalf("probed %d times, want 1", n)
	}
}

func TestReloadedScopeAppliesToQueuedTargetsAndKeepsProbesSingle(t *testing.T) {
	pr := &scriptedProber{block: make(chan struct{})}
	sink := &memSink{}
	cfg := testConfig()
	cfg.MaxInFlight = 1
	p := start(t, cfg, pr, mapMatcher{}, sink)
	ctx := context.Background()
	// A is probed (blocked), B waits in the queue.
	if err := p.Handle(ctx, event("C1", "127.0.0.71:443")); err != nil {
		t.Fatal(err)
	}
	for pr.count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.Handle(ctx, event("C2", "127.0.0.72:443")); err != nil {
		t.Fatal(err)
	}
	// The operator denies B and reloads.
	p.SetScope(NewScope([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, []netip.Prefix{netip.MustParsePrefix("127.0.0.72/32")}, nil))
	// A new event for A must not start a second probe of A.
	if err := p.Handle(ctx, event("C3", "127.0.0.71:443")); err != nil {
		t.Fatal(err)
	}
	close(pr.block)
	waitIdle(t, p)
	pr.mu.Lock()
	calls := append([]stackprint.Target(nil), pr.calls...)
	pr.mu.Unlock()
	if len(calls) != 1 || calls[0].IP != netip.MustParseAddr("127.0.0.71") {
		t.Fatalf("probes %v, want only 127.0.0.71 once (B denied by the reload)", calls)
	}
	recs, _ := sink.snapshot()
	var sawB bool
	for _, r := range recs {
		if r.Target.IP == netip.MustParseAddr("127.0.0.72") {
			sawB = r.Status == stackprint.StatusOutOfScope
		}
	}
	if !sawB {
		t.Fatalf("queued target denied by the reload not recorded out_of_scope: %+v", recs)
	}
}

// A reload (a daily logrotate HUP) keeps every cached verdict its new
// scope does not change: only targets it now denies are forgotten.
func TestReloadKeepsTheCacheExceptWhatTheNewScopeDenies(t *testing.T) {
	pr := &scriptedProber{jarm: map[netip.Addr]string{netip.MustParseAddr("127.0.0.73"): badJARM, netip.MustParseAddr("127.0.0.74"): badJARM}}
	sink := &memSink{}
	p := start(t, testConfig(), pr, mapMatcher{}, sink)
	ctx := context.Background()
	for _, a := range []string{"127.0.0.73:443", "127.0.0.74:443"} {
		if err := p.Handle(ctx, event("C1", a)); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, p)
	// Same scope again, then one that denies .74.
	p.SetScope(NewScope([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil, nil))
	for _, a := range []string{"127.0.0.73:443", "127.0.0.74:443"} {
		if err := p.Handle(ctx, event("C2", a)); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, p)
	if n := pr.count(); n != 2 {
		t.Fatalf("%d probes after a reload with the same scope, want 2 (the cache kept)", n)
	}
	p.SetScope(NewScope([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, []netip.Prefix{netip.MustParsePrefix("127.0.0.74/32")}, nil))
	for _, a := range []string{"127.0.0.73:443", "127.0.0.74:443"} {
		if err := p.Handle(ctx, event("C3", a)); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, p)
	if n := pr.count(); n != 2 {
		t.Fatalf("%d probes, want still 2", n)
	}
	recs, _ := sink.snapshot()
	if last := recs[len(recs)-1]; last.Target.IP != netip.MustParseAddr("127.0.0.74") || last.Status != stackprint.StatusOutOfScope {
		t.Fatalf("last record %+v, want 127.0.0.74 out_of_scope after the reload denied it", last)
	}
}
