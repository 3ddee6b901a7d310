package kafka

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stackprint/stackprint"
)

// startKfake runs a Kafka-protocol broker on 127.0.0.1 with the topics
// seeded (partitions each).
func startKfake(t *testing.T, partitions int32, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, topics...),
		kfake.GroupMinSessionTimeout(500*time.Millisecond),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func produce(t *testing.T, brokers []string, rs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// zeekSSL is one ssl.log record as Zeek's Kafka writer sends it (JSON,
// epoch timestamps), tagged {"ssl": …} when tag is set.
func zeekSSL(i int, tag bool) []byte {
	rec := fmt.Sprintf(`{"ts":%d.25,"uid":"C%05d","id.orig_h":"127.0.1.%d","id.orig_p":%d,"id.resp_h":"127.0.0.%d","id.resp_p":443,"version":"TLSv13","server_name":"s%d.test","established":true}`,
		1700000000+i, i, 1+i%200, 40000+i, 1+i%5, i%5)
	if tag {
		return []byte(`{"ssl": ` + rec + `}`)
	}
	return []byte(rec)
}

func TestParseRecordZeekKafkaWriter(t *testing.T) {
	ps := func() parser { return (&Input{opts: InputOptions{Name: "k", Format: FormatZeekJSON}}).newParser() }
	for _, tag := range []bool{false, true} {
		ev, ok, err := parseRecord(ps(), FormatZeekJSON, zeekSSL(7, tag))
		if err != nil || !ok {
			t.Fatalf("tag=%v: ok=%v err=%v", tag, ok, err)
		}
		if ev.Resp.String() != "127.0.0.3:443" || ev.SNI != "s2.test" || ev.UID != "C00007" || ev.Kind != "zeek_ssl" {
			t.Fatalf("tag=%v: %+v", tag, ev)
		}
	}
	// Other logs on a shared topic: a tagged x509 record is skipped, not an error.
	if _, ok, err := parseRecord(ps(), FormatZeekJSON, []byte(`{"x509": {"ts":1.5,"id":"F1","certificate.version":3}}`)); ok || err != nil {
		t.Fatalf("x509: ok=%v err=%v", ok, err)
	}
	// A conn record with ssl service is an event; tagged with its log name.
	ev, ok, err := parseRecord(ps(), FormatZeekJSON, []byte(`{"conn":{"ts":1700000000.5,"uid":"Cx","id.orig_h":"127.0.1.1","id.orig_p":5,"id.resp_h":"127.0.0.9","id.resp_p":8443,"proto":"tcp","service":"ssl","conn_state":"SF"}}`))
	if err != nil || !ok || ev.Kind != "zeek_conn" || ev.Resp.Port() != 8443 {
		t.Fatalf("conn: %+v ok=%v err=%v", ev, ok, err)
	}
	// Malformed: an error naming the field.
	if _, _, err := parseRecord(ps(), FormatZeekJSON, []byte(`{"ssl": {"ts":"yesterday","id.orig_h":"127.0.1.1","id.orig_p":1,"id.resp_h":"127.0.0.1","id.resp_p":443}}`)); err == nil || !strings.Contains(err.Error(), "ts") {
		t.Fatalf("bad ts: %v", err)
	}
	if _, _, err := parseRecord(ps(), FormatZeekJSON, []byte(`not json`)); err == nil {
		t.Fatal("not json accepted")
	}
	// Every line of a real Zeek JSON ssl.log, tagged as the writer does.
	f, err := os.Open("../testdata/logs/zeek-json-ssl.maccdc2012.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	p := ps()
	for sc.Scan() {
		ev, ok, err := parseRecord(p, FormatZeekJSON, []byte(`{"ssl":`+sc.Text()+`}`))
		if err != nil || !ok || !ev.Resp.IsValid() {
			t.Fatalf("line %d: ok=%v err=%v", n+1, ok, err)
		}
		n++
	}
	if n != 399 {
		t.Fatalf("%d lines", n)
	}
	// EVE.
	ep := (&Input{opts: InputOptions{Name: "k", Format: FormatEVE}}).newParser()
	ev, ok, err = parseRecord(ep, FormatEVE, []byte(`{"timestamp":"2024-01-02T03:04:05.000000+0000","flow_id":42,"event_type":"tls","src_ip":"127.0.1.5","src_port":5555,"dest_ip":"127.0.0.7","dest_port":443,"proto":"TCP","tls":{"sni":"x.test","version":"TLS 1.3"}}`))
	if err != nil || !ok || ev.Resp.String() != "127.0.0.7:443" || ev.FlowID != 42 {
		t.Fatalf("eve: %+v ok=%v err=%v", ev, ok, err)
	}
}

// collector settles events it is told to and remembers what it saw.
type collector struct {
	mu    sync.Mutex
	seen  []stackprint.Event
	in    *Input
	hold  func(stackprint.Event) bool // true: leave unsettled
	held  []stackprint.Event
	count map[string]int // UID → times handled
}

func (c *collector) handle(_ context.Context, ev stackprint.Event) error {
	c.mu.Lock()
	c.seen = append(c.seen, ev)
	c.count[ev.UID]++
	hold := c.hold != nil && c.hold(ev)
	if hold {
		c.held = append(c.held, ev)
	}
	in := c.in
	c.mu.Unlock()
	if !hold {
		in.Settled(ev)
	}
	return nil
}

func newTestInput(t *testing.T, brokers []string, topic string, c *collector) *Input {
	t.Helper()
	return newTestInputCfg(t, InputConfig{Brokers: brokers, Topics: []string{topic}, Group: "g", SessionTimeout: 6 * time.Second, RevokeWait: 3 * time.Second}, c)
}

func newTestInputCfg(t *testing.T, cfg InputConfig, c *collector) *Input {
	t.Helper()
	var log *slog.Logger
	if os.Getenv("KAFKA_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	in, err := NewInput(cfg,
		InputOptions{Name: "k", Format: FormatZeekJSON, Durable: func() error { return nil }, Handler: c.handle, CommitInterval: 100 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.in = in
	c.mu.Unlock()
	return in
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An instance that stops replays exactly the unsettled tail of each
// partition to the next member of the group: nothing settled is read
// again, nothing unsettled is lost.
func TestInputCommitsOnlyPastSettled(t *testing.T) {
	brokers := startKfake(t, 3, "zeek")
	var rs []*kgo.Record
	for i := range 60 {
		rs = append(rs, &kgo.Record{Topic: "zeek", Partition: int32(i % 3), Value: zeekSSL(i, i%2 == 0)})
	}
	rs = append(rs, &kgo.Record{Topic: "zeek", Partition: 1, Value: []byte(`{"dns": {"ts": 1.0, "query": "x"}}`)}) // no event
	rs = append(rs, &kgo.Record{Topic: "zeek", Partition: 2, Value: []byte(`{"ssl": {"ts": "bad"}}`)})             // malformed
	produce(t, brokers, rs...)

	// Hold event 31 (partition 1) and 44 (partition 2): their partitions
	// commit up to them; partition 0 is committed to its end.
	c1 := &collector{count: map[string]int{}, hold: func(ev stackprint.Event) bool { return ev.UID == "C00031" || ev.UID == "C00044" }}
	in1 := newTestInput(t, brokers, "zeek", c1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in1.Run(ctx) }()
	waitFor(t, "60 events", 20*time.Second, func() bool { c1.mu.Lock(); defer c1.mu.Unlock(); return len(c1.seen) == 60 })
	if err := in1.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	waitFor(t, "commits", 10*time.Second, func() bool {
		for _, s := range in1.Stats() {
			if s.Committed < 0 {
				return false
			}
		}
		return len(in1.Stats()) == 3
	})
	st := in1.Stats()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := in1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Offsets: p0 holds 20 records (0..19): all settled → 20. p1: events
	// 1,4,…,31 are offsets 0..; 31 is offset 10. p2: 44 is offset 14.
	want := map[int32]int64{0: 20, 1: 10, 2: 14}
	for _, s := range st {
		if s.Committed != want[s.Partition] || s.Pending != map[int32]int{0: 0, 1: 1, 2: 1}[s.Partition] {
			t.Errorf("partition %d: %+v, want committed %d", s.Partition, s, want[s.Partition])
		}
	}
	if recs, rej := in1.Counts(); recs != 62 || rej != 1 {
		t.Errorf("records %d rejected %d, want 62 and 1", recs, rej)
	}

	// The next member replays from there: p1 from event 31 on, p2 from 44 on.
	c2 := &collector{count: map[string]int{}}
	in2 := newTestInput(t, brokers, "zeek", c2)
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- in2.Run(ctx2) }()
	var wantUIDs []string
	for i := 31; i < 60; i += 3 {
		wantUIDs = append(wantUIDs, fmt.Sprintf("C%05d", i))
	}
	for i := 44; i < 60; i += 3 {
		wantUIDs = append(wantUIDs, fmt.Sprintf("C%05d", i))
	}
	waitFor(t, "replay", 20*time.Second, func() bool { c2.mu.Lock(); defer c2.mu.Unlock(); return len(c2.seen) >= len(wantUIDs) })
	time.Sleep(300 * time.Millisecond) // nothing more may come
	cancel2()
	<-done2
	_ = in2.Close(context.Background())
	c2.mu.Lock()
	defer c2.mu.Unlock()
	if len(c2.seen) != len(wantUIDs) {
		t.Fatalf("replayed %d events, want %d", len(c2.seen), len(wantUIDs))
	}
	for _, u := range wantUIDs {
		if c2.count[u] != 1 {
			t.Errorf("%s replayed %d times", u, c2.count[u])
		}
	}
	// A replayed event is the same event: the alert id does not change.
	for _, ev := range c2.seen {
		if ev.UID == "C00031" {
			orig := c1.held[0]
			if stackprint.AlertID("r", ev, "j") != stackprint.AlertID("r", orig, "j") {
				t.Error("replayed event has another alert id")
			}
		}
	}
}

// A member joining takes partitions over: the first member hands them
// over after their events settled, so across both every event is settled
// once and none twice.
func TestInputRebalanceHandsOver(t *testing.T) {
	brokers := startKfake(t, 4, "zeek")
	c1 := &collector{count: map[string]int{}}
	// Events of the first member settle late (a probe in flight).
	var mu sync.Mutex
	var late []stackprint.Event
	c1.hold = func(ev stackprint.Event) bool { mu.Lock(); late = append(late, ev); mu.Unlock(); return true }
	in1 := newTestInput(t, brokers, "zeek", c1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = in1.Run(ctx) }()
	stopSettle := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopSettle:
				return
			case <-time.After(200 * time.Millisecond):
			}
			mu.Lock()
			evs := late
			late = nil
			mu.Unlock()
			for _, ev := range evs {
				in1.Settled(ev)
			}
		}
	}()
	defer close(stopSettle)
	var rs []*kgo.Record
	for i := range 80 {
		rs = append(rs, &kgo.Record{Topic: "zeek", Partition: int32(i % 4), Value: zeekSSL(i, true)})
	}
	produce(t, brokers, rs[:40]...)
	waitFor(t, "first member", 20*time.Second, func() bool { return in1.Ready() == nil && len(in1.Stats()) == 4 })
	waitFor(t, "first 40", 20*time.Second, func() bool { c1.mu.Lock(); defer c1.mu.Unlock(); return len(c1.seen) == 40 })

	c2 := &collector{count: map[string]int{}}
	in2 := newTestInput(t, brokers, "zeek", c2)
	go func() { _ = in2.Run(ctx) }()
	waitFor(t, "rebalance", 30*time.Second, func() bool { return len(in1.Stats()) == 2 && len(in2.Stats()) == 2 })
	produce(t, brokers, rs[40:]...)
	waitFor(t, "all 80", 30*time.Second, func() bool {
		c1.mu.Lock()
		n := len(c1.seen)
		c1.mu.Unlock()
		c2.mu.Lock()
		defer c2.mu.Unlock()
		return n+len(c2.seen) >= 80
	})
	time.Sleep(500 * time.Millisecond)
	total := map[string]int{}
	for _, c := range []*collector{c1, c2} {
		c.mu.Lock()
		for u, n := range c.count {
			total[u] += n
		}
		c.mu.Unlock()
	}
	for i := range 80 {
		u := fmt.Sprintf("C%05d", i)
		if total[u] != 1 {
			t.Errorf("%s handled %d times", u, total[u])
		}
	}
	cancel()
	_ = in1.Close(context.Background())
	_ = in2.Close(context.Background())
}

func TestOutputProducesKeyedJSON(t *testing.T) {
	brokers := startKfake(t, 2, "alerts", "fps")
	o, err := NewOutput(OutputConfig{Brokers: brokers, AlertsTopic: "alerts", FingerprintsTopic: "fps"})
	if err != nil {
		t.Fatal(err)
	}
	ev, _, err := parseRecord((&Input{opts: InputOptions{Name: "k", Format: FormatZeekJSON}}).newParser(), FormatZeekJSON, zeekSSL(3, true))
	if err != nil {
		t.Fatal(err)
	}
	res := stackprint.Result{Target: ev.Target(), Status: stackprint.StatusOK, JARM: strings.Repeat("a", 62), Started: time.Unix(1700000000, 0)}
	a := stackprint.NewAlert(stackprint.Verdict{Rule: "db_match", Severity: "high"}, ev, res, time.Unix(1700000001, 0))
	if err := o.Record(ev, res, nil); err != nil {
		t.Fatal(err)
	}
	if err := o.Alert(a); err != nil {
		t.Fatal(err)
	}
	if err := o.Sync(); err != nil {
		t.Fatal(err)
	}
	if o.Produced() != 2 {
		t.Fatalf("produced %d", o.Produced())
	}
	_ = o.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("alerts", "fps"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]*kgo.Record{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(got) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got[r.Topic] = r })
	}
	for _, topic := range []string{"alerts", "fps"} {
		r := got[topic]
		if r == nil {
			t.Fatalf("nothing on %s", topic)
		}
		if string(r.Key) != "127.0.0.4:443" {
			t.Errorf("%s key %q", topic, r.Key)
		}
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("%s: %v: %s", topic, err, r.Value)
		}
		if topic == "alerts" && m["alert_id"] != a.ID {
			t.Errorf("alert: %s", r.Value)
		}
		if topic == "fps" && (m["jarm"] != res.JARM || m["id.resp_p"] != float64(443)) {
			t.Errorf("fingerprint: %s", r.Value)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := InputConfig{Brokers: []string{"nohost"}, Topics: []string{"bad topic"}, Start: "middle",
		SASL: &SASLConfig{Mechanism: "GSSAPI"}, TLS: &TLSConfig{Cert: "/nonexistent.pem"}}
	errs := c.Validate("inputs[0].kafka", "zeek")
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"inputs[0].kafka.brokers[0]", "inputs[0].kafka.topics[0]", "inputs[0].kafka.group", "inputs[0].kafka.start",
		"inputs[0].kafka.sasl.mechanism", "inputs[0].kafka.sasl.user", "inputs[0].kafka.tls", "inputs[0].format"} {
		if !strings.Contains(all, want) {
			t.Errorf("no error for %s in:\n%s", want, all)
		}
	}
	ok := InputConfig{Brokers: []string{"127.0.0.1:9092"}, Topics: []string{"zeek-ssl"}, Group: "stackprint"}
	if errs := ok.Validate("k", FormatEVE); len(errs) > 0 {
		t.Errorf("valid config refused: %v", errs)
	}
	out := OutputConfig{Brokers: []string{"127.0.0.1:9092"}}
	if errs := out.Validate("outputs.kafka"); len(errs) != 1 || errs[0].Field != "outputs.kafka.alerts_topic" {
		t.Errorf("output without topics: %v", errs)
	}
}

// TLS (the broker's certificate checked against a CA file) and SASL
// SCRAM-SHA-256 against kfake; a wrong password is refused.
func TestInputOverTLSAndSASL(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kfake test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "zeek"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "sensor", "s3cret"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	conn := func(pass string) InputConfig {
		return InputConfig{Brokers: brokers, Topics: []string{"zeek"}, Group: "g", SessionTimeout: 6 * time.Second,
			TLS: &TLSConfig{CA: ca}, SASL: &SASLConfig{Mechanism: "SCRAM-SHA-256", User: "sensor", Password: pass}}
	}
	good := conn("s3cret")
	if errs := good.Validate("k", FormatZeekJSON); len(errs) > 0 {
		t.Fatal(errs)
	}
	o, err := NewOutput(OutputConfig{Brokers: brokers, TLS: &TLSConfig{CA: ca}, SASL: &SASLConfig{Mechanism: "SCRAM-SHA-256", User: "sensor", Password: "s3cret"}, AlertsTopic: "zeek"})
	if err != nil {
		t.Fatal(err)
	}
	// The output's client produces the sensor record (same TLS and SASL).
	o.cl.Produce(context.Background(), &kgo.Record{Topic: "zeek", Value: zeekSSL(1, true)}, nil)
	if err := o.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = o.Close()
	c1 := &collector{count: map[string]int{}}
	in := newTestInputCfg(t, conn("s3cret"), c1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	waitFor(t, "the event over TLS and SASL", 20*time.Second, func() bool { c1.mu.Lock(); defer c1.mu.Unlock(); return len(c1.seen) == 1 })
	cancel()
	<-done
	_ = in.Close(context.Background())
	// A wrong password never joins.
	c2 := &collector{count: map[string]int{}}
	bad := newTestInputCfg(t, conn("wrong"), c2)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	_ = bad.Run(ctx2)
	if bad.Ready() == nil || len(c2.seen) != 0 {
		t.Fatalf("wrong password: ready=%v seen=%d", bad.Ready(), len(c2.seen))
	}
	_ = bad.Close(context.Background())
}
