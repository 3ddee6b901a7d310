package enrich

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// fullConfig is testConfig with the daemon's split: JARM and ATSF per
// server, the certificate per name, and connection costs as the engine
// counts them.
func fullConfig() Config {
	cfg := testConfig()
	cfg.ServerKinds = []string{stackprint.KindJARM, stackprint.KindATSF}
	cfg.NameKinds = []string{stackprint.KindCert}
	cfg.ServerCost, cfg.NameCost = 21, 1
	cfg.ConnsPerIP, cfg.ConnsPerIPBurst = 20, 22
	return cfg
}

func sniEvent(uid, client, resp, sni string) stackprint.Event {
	ev := event(uid, resp)
	ev.Orig = netip.MustParseAddrPort(client + ":50000")
	ev.SNI = sni
	return ev
}

func TestEveryNameOfAListedServerIsAlertedWithoutWaitingForItsOwnProbe(t *testing.T) {
	c2 := netip.MustParseAddr("127.0.0.60")
	pr := &scriptedProber{jarm: map[netip.Addr]string{c2: badJARM}}
	sink := &memSink{}
	cfg := fullConfig()
	cfg.ConnsPerIP = 0.5 // name probes crawl: the verdicts must not wait for them
	cfg.ConnsPerIPBurst = 21
	p := start(t, cfg, pr, mapMatcher{badJARM: {Label: "c2", Confidence: "high"}}, sink)
	for i := range 10 {
		if err := p.Handle(context.Background(), sniEvent(fmt.Sprintf("C%d", i), "127.0.1.1", "127.0.0.60:443", fmt.Sprintf("n%d.example", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, alerts := sink.snapshot()
		if len(alerts) == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d alerts within 5s, want 10 (stats %+v)", len(alerts), p.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := p.Stats(); st.ServerProbes != 1 {
		t.Fatalf("%d server probes for one server, want 1", st.ServerProbes)
	}
	// Let two name probes finish: their complete verdicts must not alert
	// db_match again.
	time.Sleep(2500 * time.Millisecond)
	_, alerts := sink.snapshot()
	ids := map[string]int{}
	for _, a := range alerts {
		ids[a.Event.UID]++
	}
	for uid, n := range ids {
		if n != 1 {
			t.Fatalf("connection %s alerted %d times, want once", uid, n)
		}
	}
	if st := p.Stats(); st.NameProbes == 0 {
		t.Fatalf("no name probe ran in 2.5s at 0.5 connections/s (stats %+v)", st)
	}
}

func TestABusyIPDoesNotHoldBackOtherServers(t *testing.T) {
	busy := netip.MustParseAddr("127.0.0.70")
	jarm := map[netip.Addr]string{busy: badJARM}
	pr := &scriptedProber{jarm: jarm}
	cfg := fullConfig()
	cfg.ProbesPerSecond, cfg.Burst = 20, 1 // 420 connections/s
	p := start(t, cfg, pr, mapMatcher{}, &memSink{})
	ctx := context.Background()
	for i := range 300 {
		if err := p.Handle(ctx, sniEvent(fmt.Sprintf("B%d", i), "127.0.1.1", "127.0.0.70:443", fmt.Sprintf("n%d.example", i))); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	for i := range 40 {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 2, byte(i + 1)}), 443)
		if err := p.Handle(ctx, sniEvent(fmt.Sprintf("O%d", i), "127.0.1.1", addr.String(), "")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pr.mu.Lock()
		others := 0
		for _, c := range pr.calls {
			if c.IP != busy {
				others++
			}
		}
		pr.mu.Unlock()
		if others == 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 40 other servers probed in 10s behind one busy IP", others)
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(t0)
	// 40 servers × 21 connections at 420/s is 2s; the busy IP may take its
	// 20/s of that.
	if took > 4*time.Second {
		t.Fatalf("40 other servers took %s behind a busy IP (want about 2s)", took)
	}
	st := p.Stats()
	if st.NameProbes > uint64(20*took.Seconds()+22) {
		t.Fatalf("busy IP got %d name probes in %s: over its 20 connections/s", st.NameProbes, took)
	}
	t.Logf("40 other servers in %s while the busy IP had %d name probes", took.Round(time.Millisecond), st.NameProbes)
}

func TestAFloodingClientDoesNotDelayAnother(t *testing.T) {
	pr := &scriptedProber{}
	sink := &memSink{}
	cfg := testConfig()
	cfg.ProbesPerSecond, cfg.Burst = 50, 1
	p := start(t, cfg, pr, mapMatcher{}, sink)
	ctx := context.Background()
	for i := range 2000 {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 3, byte(i / 250), byte(i%250 + 1)}), 443)
		if err := p.Handle(ctx, sniEvent(fmt.Sprintf("D%d", i), "127.0.1.1", addr.String(), "")); err != nil {
			t.Fatal(err)
		}
	}
	before := pr.count()
	if err := p.Handle(ctx, sniEvent("C2", "127.0.1.2", "127.0.0.80:443", "")); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for !slices.ContainsFunc(pr.snapshotCalls(), func(c stackprint.Target) bool { return c.IP == netip.MustParseAddr("127.0.0.80") }) {
		if time.Since(t0) > 5*time.Second {
			t.Fatal("the other client's server was not probed within 5s behind 2000 decoys")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Decoys probed before the C2 line was handled do not count: from
	// then on, the other client's turn comes within the next few probes.
	if pos := slices.IndexFunc(pr.snapshotCalls(), func(c stackprint.Target) bool { return c.IP == netip.MustParseAddr("127.0.0.80") }); pos-before > 3 {
		t.Fatalf("the other client's server was probe #%d after its line, want within its first turns", pos-before+1)
	}
}

func (s *scriptedProber) snapshotCalls() []stackprint.Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// memBacklog stands in for the ledger and the DB backlog.
type memBacklog struct {
	mu  sync.Mutex
	evs map[uint16][]stackprint.Event
}

func (b *memBacklog) spill(ev stackprint.Event) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := stackprint.ClientBucket(ev.Orig.Addr())
	b.evs[c] = append(b.evs[c], ev)
	return true
}

func (b *memBacklog) load(c uint16, n int) ([]stackprint.Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.evs[c]
	n = min(n, len(q))
	out := slices.Clone(q[:n])
	b.evs[c] = q[n:]
	return out, nil
}

func TestFullMemorySpillsTheFloodingClientAndEveryEventGetsAVerdict(t *testing.T) {
	pr := &scriptedProber{block: make(chan struct{})}
	var mu sync.Mutex
	settled := map[string]bool{}
	bl := &memBacklog{evs: map[uint16][]stackprint.Event{}}
	cfg := testConfig()
	cfg.MemEvents, cfg.Spill, cfg.Load = 50, bl.spill, bl.load
	cfg.OnSettled = func(ev stackprint.Event) { mu.Lock(); settled[ev.UID] = true; mu.Unlock() }
	p := start(t, cfg, pr, mapMatcher{}, &memSink{})
	ctx := context.Background()
	for i := range 500 {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 4, byte(i / 250), byte(i%250 + 1)}), 443)
		if err := p.Handle(ctx, sniEvent(fmt.Sprintf("D%d", i), "127.0.1.1", addr.String(), "")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Handle(ctx, sniEvent("C2", "127.0.1.2", "127.0.0.90:443", "")); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Spilled != 450 || st.Waiting != 51 {
		t.Fatalf("stats %+v: want 450 of the flooding client's events spilled and the other client's kept in memory", st)
	}
	close(pr.block)
	waitIdle(t, p)
	mu.Lock()
	defer mu.Unlock()
	if len(settled) != 501 {
		t.Fatalf("%d of 501 events settled", len(settled))
	}
	if st := p.Stats(); st.Probed != 501 || st.Spilled != 0 || st.Waiting != 0 {
		t.Fatalf("stats %+v: want every event judged with its probe", st)
	}
}

func TestOnlyTheAgeLimitEndsAnEventUnjudged(t *testing.T) {
	pr := &scriptedProber{}
	sink := &memSink{}
	var settled []stackprint.Event
	cfg := testConfig()
	cfg.MaxWait = time.Hour
	cfg.OnSettled = func(ev stackprint.Event) { settled = append(settled, ev) }
	p := start(t, cfg, pr, mapMatcher{}, sink)
	ev := event("Cold", "127.0.0.95:443")
	ev.Queued = time.Now().Add(-2 * time.Hour) // parked by an earlier run
	if err := p.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	recs, _ := sink.snapshot()
	if len(recs) != 1 || recs[0].Status != stackprint.StatusExpired || len(settled) != 1 || pr.count() != 0 {
		t.Fatalf("records %+v settled %d probes %d: want one expired record, settled, not probed", recs, len(settled), pr.count())
	}
	if st := p.Stats(); st.Expired != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// tarpitProber never answers the IPs in tarpits (no Answered call, waits
// for the deadline) and answers the others at once.
type tarpitProber struct {
	scriptedProber
	tarpits map[netip.Addr]bool
}

func (tp *tarpitProber) ProbeWith(ctx context.Context, t stackprint.Target, sni string, o stackprint.ProbeOptions) stackprint.Result {
	if !tp.tarpits[t.IP] {
		return tp.scriptedProber.ProbeWith(ctx, t, sni, o)
	}
	tp.mu.Lock()
	tp.calls = append(tp.calls, t)
	tp.starts = append(tp.starts, time.Now())
	tp.mu.Unlock()
	<-ctx.Done()
	return stackprint.Result{Target: t, Status: stackprint.StatusTimeout, JARM: stackprint.ZeroJARM, Conns: 1}
}

func TestTarpitsHoldTheGlobalBudgetOnlyWhileAnAnswerIsDue(t *testing.T) {
	tp := &tarpitProber{tarpits: map[netip.Addr]bool{}}
	cfg := fullConfig()
	cfg.ProbesPerSecond, cfg.Burst = 2, 1 // 42 connections/s, a burst of one full probe
	cfg.Deadline = 3 * time.Second
	cfg.AnswerGrace = 50 * time.Millisecond
	cfg.MaxInFlight = 256 // probes waiting on the network are cheap
	for i := range 8 {
		tp.tarpits[netip.AddrFrom4([4]byte{127, 5, 0, byte(i + 1)})] = true // before any probe reads it
	}
	p := start(t, cfg, tp, mapMatcher{}, &memSink{})
	ctx := context.Background()
	for i := range 8 {
		ip := netip.AddrFrom4([4]byte{127, 5, 0, byte(i + 1)})
		if err := p.Handle(ctx, sniEvent(fmt.Sprintf("T%d", i), "127.0.1.1", netip.AddrPortFrom(ip, 443).String(), "")); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	good := netip.MustParseAddr("127.0.0.99")
	if err := p.Handle(ctx, sniEvent("G", "127.0.1.1", "127.0.0.99:443", "")); err != nil {
		t.Fatal(err)
	}
	for !slices.ContainsFunc(tp.snapshotCalls(), func(c stackprint.Target) bool { return c.IP == good }) {
		if time.Since(t0) > cfg.Deadline {
			t.Fatal("the good server waited for the tarpits' deadline: they held the global budget while not answering")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// 8 tarpits each hold a full probe for 50ms, then one connection:
	// about 0.4s, not 8 × 21 connections at 42/s (4s).
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("good server started after %s behind 8 tarpits", d)
	} else {
		t.Logf("good server started %s after 8 tarpits", d.Round(time.Millisecond))
	}
}
