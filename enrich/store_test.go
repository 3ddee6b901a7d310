package enrich

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
)

// boltResults is the daemon's store: a real bbolt result cache.
type boltResults struct {
	c *db.ResultCache

	mu    sync.Mutex
	gets  int
	lying bool // answer every read with the first row written (a collision)
	first []db.CachedResult
}

func (b *boltResults) ApplyResults(ops []ResultOp) error {
	rows := make([]db.CachedResult, len(ops))
	for i, o := range ops {
		rows[i] = db.CachedResult{Key: o.Key.Bytes(), Tag: o.Tag, Result: o.Result}
	}
	b.mu.Lock()
	if b.first == nil && len(rows) > 0 && rows[0].Result != nil {
		b.first = rows[:1]
	}
	b.mu.Unlock()
	return b.c.Apply(rows)
}

func (b *boltResults) GetResult(k Key) ([]byte, stackprint.Result, bool, error) {
	b.mu.Lock()
	b.gets++
	lying, first := b.lying, b.first
	b.mu.Unlock()
	if lying && first != nil {
		return b.c.Get(first[0].Key)
	}
	return b.c.Get(k.Bytes())
}

func newBoltResults(t *testing.T) *boltResults {
	t.Helper()
	c, err := db.OpenResultCache(filepath.Join(t.TempDir(), "results.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &boltResults{c: c}
}

// storeConfig keeps one full result in memory: every other judged target
// is read back from the bbolt store.
func storeConfig(t *testing.T) (Config, *boltResults) {
	cfg := testConfig()
	st := newBoltResults(t)
	cfg.Results, cfg.HotResults = st, 1
	return cfg, st
}

// TestStoredResultsGiveTheSameVerdicts: 40 servers (every 4th listed),
// two names each; with only one full result in memory, every repeated
// connection is judged from the store, without a probe, with exactly the
// alerts a probe gave.
func TestStoredResultsGiveTheSameVerdicts(t *testing.T) {
	cfg, st := storeConfig(t)
	pr := &scriptedProber{jarm: map[netip.Addr]string{}}
	for i := range 40 {
		j := "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5"
		if i%4 == 0 {
			j = badJARM
		}
		pr.jarm[netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)})] = j
	}
	sink := &memSink{}
	p := start(t, cfg, pr, mapMatcher{badJARM: {Label: "c2", Confidence: "high"}}, sink)
	ctx := context.Background()
	send := func(round int) {
		for i := range 40 {
			for _, sni := range []string{"a.example", "b.example"} {
				ev := event(fmt.Sprintf("C%d-%d-%s", round, i, sni), fmt.Sprintf("127.0.1.%d:443", i+1))
				ev.SNI = sni
				if err := p.Handle(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitIdle(t, p)
	}
	send(0)
	probes := pr.count()
	_, alerts := sink.snapshot()
	if len(alerts) != 20 {
		t.Fatalf("first round: %d alerts, want 20 (10 listed servers × 2 names)", len(alerts))
	}
	if n := st.c.Len(); n != 40+80 {
		t.Fatalf("store holds %d rows, want 120 (40 servers, 80 names)", n)
	}
	deduped := p.Stats().Deduped
	for round := 1; round <= 3; round++ {
		send(round)
	}
	if n := pr.count(); n != probes {
		t.Fatalf("%d probes after the repeats, want still %d", n, probes)
	}
	_, alerts = sink.snapshot()
	if len(alerts) != 80 {
		t.Fatalf("%d alerts after four rounds, want 80", len(alerts))
	}
	for _, a := range alerts {
		if a.Match.Label != "c2" || a.Event.Resp.Addr().As4()[3]%4 != 1 {
			t.Fatalf("alert %+v: not a listed server", a)
		}
	}
	if s := p.Stats(); s.Deduped-deduped != 3*80 {
		t.Fatalf("deduped %d in the repeats, want 240", s.Deduped-deduped)
	}
	if st.gets < 200 {
		t.Fatalf("%d store reads: the results did not come from the store", st.gets)
	}
}

// TestAStoredRowOfAnotherTargetIsNeverUsed: the store answers every read
// with the row of the first target written (a listed server), as a hash
// collision would; no other target gets its verdict: each is probed again
// instead.
func TestAStoredRowOfAnotherTargetIsNeverUsed(t *testing.T) {
	cfg, st := storeConfig(t)
	listed := netip.MustParseAddr("127.0.2.1")
	pr := &scriptedProber{jarm: map[netip.Addr]string{listed: badJARM}}
	sink := &memSink{}
	p := start(t, cfg, pr, mapMatcher{badJARM: {Label: "c2", Confidence: "high"}}, sink)
	ctx := context.Background()
	if err := p.Handle(ctx, event("C0", "127.0.2.1:443")); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, p)
	for i := 2; i <= 6; i++ {
		if err := p.Handle(ctx, event(fmt.Sprint("C", i), fmt.Sprintf("127.0.2.%d:443", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, p)
	st.mu.Lock()
	st.lying = true
	st.mu.Unlock()
	before := pr.count()
	for i := 2; i <= 6; i++ {
		if err := p.Handle(ctx, event(fmt.Sprint("D", i), fmt.Sprintf("127.0.2.%d:443", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, p)
	_, alerts := sink.snapshot()
	if len(alerts) != 1 || alerts[0].Event.Resp.Addr() != listed {
		t.Fatalf("alerts %+v, want only the listed server's", alerts)
	}
	if n := pr.count() - before; n < 4 {
		t.Fatalf("%d probes after the lying reads, want the targets probed again (>= 4)", n)
	}
}

// TestStoredResultsExpireExactly: a success lives TTL, a failure
// NegativeTTL, to the nanosecond, whether its result is in memory or in
// the store.
func TestStoredResultsExpireExactly(t *testing.T) {
	cfg, _ := storeConfig(t)
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(d time.Duration) { mu.Lock(); now = time.Unix(1700000000, 0).Add(d); mu.Unlock() }
	good := netip.MustParseAddr("127.0.3.1")
	pr := &scriptedProber{jarm: map[netip.Addr]string{good: badJARM}}
	p := start(t, cfg, pr, mapMatcher{}, &memSink{})
	ctx := context.Background()
	ok, bad := event("C1", "127.0.3.1:443"), event("C2", "127.0.3.2:443") // .2 refuses
	send := func() {
		for _, ev := range []stackprint.Event{ok, bad} {
			if err := p.Handle(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		waitIdle(t, p)
	}
	send()
	for _, c := range []struct {
		at     time.Duration
		probes int
	}{
		{time.Minute - time.Nanosecond, 2}, // both cached
		{time.Minute, 3},                   // the failure expired (NegativeTTL 1m after it was filed)
		{time.Hour - time.Nanosecond, 4},   // the failure again (re-filed at 1m, expired at 2m); the success not yet
		{time.Hour, 5},                     // the success (the failure was re-filed just before)
	} {
		set(c.at)
		send()
		if n := pr.count(); n != c.probes {
			t.Fatalf("at +%v: %d probes, want %d", c.at, n, c.probes)
		}
	}
}

// BenchmarkJudgedHit: the cost of an event whose target is judged, with
// its result in memory against read back from the bbolt store (matched
// again, checked against its exact key).
func BenchmarkJudgedHit(b *testing.B) {
	for _, c := range []struct {
		name string
		hot  int
	}{{"in-memory", 4096}, {"from-store", 1}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := testConfig()
			st, err := db.OpenResultCache(filepath.Join(b.TempDir(), "results.db"), time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			cfg.Results, cfg.HotResults = &boltResults{c: st}, c.hot
			pr := &scriptedProber{jarm: map[netip.Addr]string{}}
			const n = 1000
			for i := range n {
				pr.jarm[netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)})] = badJARM
			}
			p, err := New(cfg, pr, mapMatcher{}, judgeAll{}, &memSink{})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- p.Run(ctx) }()
			evs := make([]stackprint.Event, n)
			for i := range evs {
				evs[i] = event(fmt.Sprint("C", i), fmt.Sprintf("127.1.%d.%d:443", i>>8, i&255))
				if err := p.Handle(ctx, evs[i]); err != nil {
					b.Fatal(err)
				}
			}
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			if err := p.WaitIdle(wctx); err != nil {
				b.Fatal(err)
			}
			wcancel()
			p.flushStore(1)
			b.ResetTimer()
			for i := range b.N {
				if err := p.Handle(ctx, evs[i%n]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cancel()
			<-done
		})
	}
}
