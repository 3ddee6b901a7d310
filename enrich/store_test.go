package enrich

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
)

// fileResults is the daemon's store, a real ResultFile, counting reads;
// lying makes it answer every read with the first record written (what a
// hash collision would hand back).
type fileResults struct {
	f *ResultFile

	mu    sync.Mutex
	gets  int
	slots map[uint32]bool
	lying bool
	first *ResultOp
}

func (r *fileResults) ApplyResults(ops []ResultOp) error {
	r.mu.Lock()
	for i := range ops {
		if r.first == nil {
			op := ops[i]
			r.first = &op
		}
		r.slots[ops[i].Slot] = true
	}
	r.mu.Unlock()
	return r.f.ApplyResults(ops)
}

func (r *fileResults) GetResult(slot uint32, k Key, expires int64) (Stored, bool, error) {
	r.mu.Lock()
	r.gets++
	lying, first := r.lying, r.first
	r.mu.Unlock()
	if lying && first != nil {
		return r.f.GetResult(first.Slot, first.Key, first.Expires)
	}
	return r.f.GetResult(slot, k, expires)
}

func (r *fileResults) rows() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.slots) }

func newFileResults(t testing.TB, capacity, block int) *fileResults {
	t.Helper()
	f, err := OpenResultFile(filepath.Join(t.TempDir(), "results"), capacity, block)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fileResults{f: f, slots: map[uint32]bool{}}
}

// storeConfig keeps one full result in memory: every other judged target
// is read back from the bbolt store.
func storeConfig(t *testing.T) (Config, *fileResults) {
	cfg := testConfig()
	st := newFileResults(t, cfg.Capacity, 1024)
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
	if n := st.rows(); n != 40+80 {
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

// boltJSONStore is the store as it was before the result file, kept here
// as BenchmarkJudgedHit's baseline: a bbolt file keyed by the index key,
// the result as JSON, matched again on every read.
type boltJSONStore struct{ db *bolt.DB }

func newBoltJSONStore(b *testing.B) *boltJSONStore {
	d, err := bolt.Open(filepath.Join(b.TempDir(), "results.db"), 0o600, &bolt.Options{NoSync: true, NoGrowSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	if err := d.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("r")); return err }); err != nil {
		b.Fatal(err)
	}
	return &boltJSONStore{d}
}

func (s *boltJSONStore) ApplyResults(ops []ResultOp) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range ops {
			j, err := json.Marshal(o.Result)
			if err != nil {
				return err
			}
			k := o.Key.Bytes()
			if err := tx.Bucket([]byte("r")).Put(k[:], append(binary.AppendUvarint(nil, uint64(len(o.Tag))), append(o.Tag, j...)...)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltJSONStore) GetResult(_ uint32, k Key, _ int64) (Stored, bool, error) {
	var st Stored
	ok := false
	err := s.db.View(func(tx *bolt.Tx) error {
		kb := k.Bytes()
		v := tx.Bucket([]byte("r")).Get(kb[:])
		if v == nil {
			return nil
		}
		n, w := binary.Uvarint(v)
		st.Tag = append([]byte(nil), v[w:w+int(n)]...)
		ok = true
		return json.Unmarshal(v[w+int(n):], &st.Result)
	})
	st.Gen = math.MaxUint64 // never current: matched again, as it was
	return st, ok, err
}

// richProber answers like the probe engine: a full JARM result (the ten
// raw answers), and with every kind an ATSF answer set, a certificate and
// an HTTP head.
type richProber struct{ full bool }

func (r richProber) ProbeWith(_ context.Context, t stackprint.Target, _ string, o stackprint.ProbeOptions) stackprint.Result {
	raw := make([]string, 10)
	for i := range raw {
		raw[i] = fmt.Sprintf("c02%d|0303|h2|0000-0017-ff01-000b-0023-0010-000%d", i, i)
	}
	res := stackprint.Result{Target: t, Started: time.Unix(1700000000, 0), Duration: 40 * time.Millisecond, Status: stackprint.StatusOK,
		Conns: 10, JARM: badJARM, JARMRaw: strings.Join(raw, ",")}
	for _, k := range o.Kinds {
		res.Kinds = append(res.Kinds, stackprint.KindResult{Kind: k, Status: stackprint.StatusOK, Conns: 10, Duration: 40 * time.Millisecond})
	}
	if r.full {
		a := &stackprint.ATSF{ID: strings.Repeat("ab", 32)}
		var parts []string
		for i := range 10 {
			h := stackprint.ATSFHello{Name: fmt.Sprintf("random%d", 4500+i), Raw: fmt.Sprintf("771,4865,0-51-43-%d,23,h2,alert:none,%s", i, strings.Repeat("x", 60)), Version: 0x0304}
			a.Hellos = append(a.Hellos, h)
			parts = append(parts, h.Raw)
		}
		a.Fingerprint = strings.Join(parts, "|")
		res.ATSF = a
		res.Cert = &stackprint.CertFacts{SHA256: strings.Repeat("cd", 32), SHA1: strings.Repeat("ef", 20), Subject: "CN=bench.test", Issuer: "CN=bench.test",
			Serial: "0123456789abcdef", SANs: []string{"bench.test", "www.bench.test"}, NotBefore: time.Unix(1700000000, 0).UTC(), NotAfter: time.Unix(1800000000, 0).UTC(),
			SelfSigned: true, KeyType: "ECDSA", KeyBits: 256, SigAlg: "ECDSA-SHA256", ChainLen: 1, SPKISHA256: strings.Repeat("01", 32)}
		res.HTTP = &stackprint.HTTPFacts{StatusCode: 204, Server: "bench-go"}
	}
	return res
}

// BenchmarkJudgedHit: the cost of an event whose target is judged, with
// its result in memory against read back from the store, matched by the
// daemon's matcher (a real DB listing the servers' JARM): the result file
// (slot read with pread, the matches kept with the result) against the
// bbolt store it replaced (JSON, matched again on every read). jarm: the
// result of a JARM probe; full: with an ATSF answer set, a certificate and
// an HTTP head.
func BenchmarkJudgedHit(b *testing.B) {
	for _, kinds := range []string{"jarm", "full"} {
		for _, c := range []struct {
			name  string
			hot   int
			store func(b *testing.B, capacity int) ResultStore
		}{
			{"in-memory", 4096, func(b *testing.B, capacity int) ResultStore { return newFileResults(b, capacity, 1024).f }},
			{"from-bbolt-json", 1, func(b *testing.B, _ int) ResultStore { return newBoltJSONStore(b) }},
			{"from-result-file", 1, func(b *testing.B, capacity int) ResultStore {
				return newFileResults(b, capacity, ResultBlock([]string{kinds})).f
			}},
		} {
			b.Run(kinds+"/"+c.name, func(b *testing.B) {
				benchJudgedHit(b, kinds == "full", c.hot, c.store)
			})
		}
	}
}

func benchJudgedHit(b *testing.B, full bool, hot int, store func(*testing.B, int) ResultStore) {
	cfg := testConfig()
	cfg.Results, cfg.HotResults = store(b, cfg.Capacity), hot
	d, err := db.Open(filepath.Join(b.TempDir(), "fp.db"), db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := d.Add(db.Record{Kind: "jarm", Value: badJARM, Label: "c2", Source: "bench", Confidence: "high"}); err != nil {
		b.Fatal(err)
	}
	p, err := New(cfg, richProber{full}, d, judgeAll{}, nullSink{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	const n = 400 // targets: two entries each, within the capacity
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
	deduped := p.Stats().Deduped
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := range b.N {
		if err := p.Handle(ctx, evs[i%n]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// The machine may be shared: the process's CPU time per event says
	// more than the wall time.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if got := p.Stats().Deduped - deduped; got != uint64(b.N) {
		b.Fatalf("%d of %d events judged from the cache", got, b.N)
	}
	cancel()
	<-done
}

// nullSink takes the verdicts and keeps nothing.
type nullSink struct{}

func (nullSink) Record(stackprint.Event, stackprint.Result, []stackprint.Match) error { return nil }
func (nullSink) Alert(stackprint.Alert) error                                         { return nil }

// cpuTime is the user and system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
