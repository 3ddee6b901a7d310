package enrich

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// A watched server is probed with every kind each time it is asked for
// (no dedup cache), even in a range the scope keeps out of the logs'
// probes; scope.deny still refuses it without a dial.
func TestProbeNowAllowListsTheTargetButNotPastDeny(t *testing.T) {
	own := netip.MustParseAddr("127.0.0.80")
	denied := netip.MustParseAddr("127.0.0.81")
	pr := &scriptedProber{jarm: map[netip.Addr]string{own: badJARM, denied: badJARM}}
	cfg := fullConfig()
	cfg.Scope = NewScope(nil, []netip.Prefix{netip.PrefixFrom(denied, 32)}, []uint16{443})
	sink := &memSink{}
	p := start(t, cfg, pr, mapMatcher{}, sink)
	ctx := context.Background()
	tgt := stackprint.Target{IP: own, Port: 8443, SNI: "own.example"}
	for range 2 {
		res, err := p.ProbeNow(ctx, tgt, WatchClient)
		if err != nil || res.Status != stackprint.StatusOK || res.JARM != badJARM {
			t.Fatalf("ProbeNow: %+v %v", res, err)
		}
	}
	pr.mu.Lock()
	calls, kinds := slices.Clone(pr.calls), slices.Clone(pr.kinds)
	pr.mu.Unlock()
	if len(calls) != 2 || calls[0] != tgt || !slices.Equal(kinds[0], []string{stackprint.KindJARM, stackprint.KindATSF, stackprint.KindCert}) {
		t.Fatalf("calls %v kinds %v: want two full probes of %s", calls, kinds, tgt)
	}
	res, err := p.ProbeNow(ctx, stackprint.Target{IP: denied, Port: 443}, WatchClient)
	if err != nil || res.Status != stackprint.StatusOutOfScope || pr.count() != 2 {
		t.Fatalf("denied target: %+v %v, %d calls", res, err, pr.count())
	}
	// The same server in a log line is still out of scope (port and range).
	if err := p.Handle(ctx, sniEvent("C1", "127.0.1.1", "127.0.0.80:8443", "own.example")); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, p)
	if pr.count() != 2 {
		t.Fatalf("a logged event probed the watched server (%d calls)", pr.count())
	}
	if records, alerts := sink.snapshot(); len(records) != 1 || len(alerts) != 0 {
		t.Fatalf("ProbeNow wrote records or alerts: %d records, %d alerts", len(records), len(alerts))
	}
}

// ProbeNow pays the destination IP's connection budget like any probe:
// the scripted probe uses one of its four connections, so with one new
// connection per second to the IP the second probe waits for the one
// used, about a second.
func TestProbeNowPaysThePerIPBudget(t *testing.T) {
	own := netip.MustParseAddr("127.0.0.82")
	pr := &scriptedProber{jarm: map[netip.Addr]string{own: badJARM}}
	cfg := testConfig()
	cfg.ServerCost, cfg.ConnsPerIP, cfg.ConnsPerIPBurst = 4, 1, 4
	p := start(t, cfg, pr, mapMatcher{}, &memSink{})
	for range 2 {
		if _, err := p.ProbeNow(context.Background(), stackprint.Target{IP: own, Port: 443}, WatchClient); err != nil {
			t.Fatal(err)
		}
	}
	pr.mu.Lock()
	gap := pr.starts[1].Sub(pr.starts[0])
	pr.mu.Unlock()
	if gap < 800*time.Millisecond { // a lower bound: a loaded machine only makes it longer
		t.Fatalf("second probe %s after the first; one connection per second to the IP", gap)
	}
}

// A ProbeNow whose context ends while it waits in the queue is dropped:
// it is never dialled.
func TestProbeNowCancelledWhileQueuedIsNotProbed(t *testing.T) {
	a, b := netip.MustParseAddr("127.0.0.83"), netip.MustParseAddr("127.0.0.84")
	pr := &scriptedProber{jarm: map[netip.Addr]string{a: badJARM, b: badJARM}, block: make(chan struct{})}
	cfg := testConfig()
	cfg.MaxInFlight = 1
	p := start(t, cfg, pr, mapMatcher{}, &memSink{})
	first := make(chan error, 1)
	go func() {
		_, err := p.ProbeNow(context.Background(), stackprint.Target{IP: a, Port: 443}, WatchClient)
		first <- err
	}()
	for pr.count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.ProbeNow(ctx, stackprint.Target{IP: b, Port: 443}, WatchClient); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued ProbeNow: %v", err)
	}
	close(pr.block)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitIdle(t, p)
	if n := pr.count(); n != 1 {
		t.Fatalf("%d probes, want 1: the cancelled one was dialled", n)
	}
}

// scope.deny refuses a watched IPv6 server too.
func TestCheckDeniedBothFamilies(t *testing.T) {
	s := NewScope(nil, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}, []uint16{443})
	for ap, want := range map[string]bool{"192.0.2.9:8443": false, "[::ffff:192.0.2.9]:443": false, "[2001:db8::1]:443": false,
		"127.0.0.1:8443": true, "[fd00::1]:9443": true} {
		if ok, why := s.CheckDenied(netip.MustParseAddrPort(ap)); ok != want {
			t.Errorf("%s: %v %q, want %v", ap, ok, why, want)
		}
	}
}

// A ProbeNow whose context ends while its unit, taken off the queue, waits
// for the global connection budget is dropped there: never dialled, and
// counted out once (the pipeline still goes idle, later probes run).
func TestProbeNowCancelledWhileWaitingForTheBudgetIsNotProbed(t *testing.T) {
	a, b, c := netip.MustParseAddr("127.0.0.85"), netip.MustParseAddr("127.0.0.86"), netip.MustParseAddr("127.0.0.87")
	pr := &scriptedProber{jarm: map[netip.Addr]string{a: badJARM, b: badJARM, c: badJARM}}
	cfg := testConfig()
	cfg.ProbesPerSecond, cfg.Burst = 0.5, 1 // one probe now, the next in two seconds
	p := start(t, cfg, pr, mapMatcher{}, &memSink{})
	if _, err := p.ProbeNow(context.Background(), stackprint.Target{IP: a, Port: 443}, WatchClient); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.ProbeNow(ctx, stackprint.Target{IP: b, Port: 443}, WatchClient); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ProbeNow waiting for the budget: %v", err)
	}
	time.Sleep(2500 * time.Millisecond) // the budget has room again
	if _, err := p.ProbeNow(context.Background(), stackprint.Target{IP: c, Port: 443}, WatchClient); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, p)
	pr.mu.Lock()
	calls := slices.Clone(pr.calls)
	pr.mu.Unlock()
	for _, call := range calls {
		if call.IP == b {
			t.Fatalf("calls %v: the cancelled probe was dialled", calls)
		}
	}
	if len(calls) != 2 {
		t.Fatalf("calls %v: want %s and %s", calls, a, c)
	}
}
