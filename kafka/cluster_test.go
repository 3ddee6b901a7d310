package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/probe"
)

// buildStackprint builds the daemon binary once for this test.
func buildStackprint(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stackprint")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/stackprint/stackprint/cmd/stackprint").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// instance is one stackprint process of the cluster.
type instance struct {
	name    string
	dir     string
	cfg     string
	metrics string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	done    chan error
}

func newInstance(t *testing.T, name, broker string) *instance {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in := &instance{name: name, dir: dir, cfg: filepath.Join(dir, "stackprint.yaml"), metrics: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	cfg := fmt.Sprintf(`db:
  path: %[1]s/db/stackprint.db
  lock_timeout: 5s
inputs:
  - name: sensors
    format: zeek-json
    kafka:
      brokers: [%[2]s]
      topics: [zeek-ssl]
      group: sensors
      session_timeout: 6s
      revoke_wait: 5s
scope:
  allow: [127.0.0.0/8]
probe:
  kinds: [jarm, cert]
  io_timeout: 3s
  deadline: 15s
outputs:
  alerts: %[1]s/alerts.ndjson
  fingerprints: %[1]s/stackprint.log
rules:
  suppress: {"*": 0s}
metrics:
  listen: %[3]s
kafka:
  output:
    brokers: [%[2]s]
    alerts_topic: stackprint.alerts
    fingerprints_topic: stackprint.fingerprint-records
  cluster:
    brokers: [%[2]s]
    session_timeout: 6s
`, dir, broker, in.metrics)
	if err := os.WriteFile(in.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

// start runs the daemon; STACKPRINT_CLUSTER_LOGS=DIR keeps each
// instance's log in DIR/<name>.log.
func (in *instance) start(t *testing.T, bin string) {
	t.Helper()
	in.log = &bytes.Buffer{}
	in.cmd = exec.Command(bin, "run", "-c", in.cfg)
	if p := os.Getenv("STACKPRINT_CLUSTER_LOGS"); p != "" {
		f, err := os.OpenFile(filepath.Join(p, in.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		in.cmd.Stdout, in.cmd.Stderr = io.MultiWriter(in.log, f), io.MultiWriter(in.log, f)
	} else {
		in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	}
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.done = make(chan error, 1)
	go func() { in.done <- in.cmd.Wait() }()
	t.Cleanup(func() {
		if in.cmd.ProcessState == nil {
			_ = in.cmd.Process.Kill()
			<-in.done
		}
	})
}

func (in *instance) ready(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get("http://" + in.metrics + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready: %s\nlog:\n%s", in.name, b, in.log)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\nlog:\n%s", in.name, err, in.log)
		}
		select {
		case err := <-in.done:
			t.Fatalf("%s exited: %v\nlog:\n%s", in.name, err, in.log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (in *instance) stop(t *testing.T) {
	t.Helper()
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("%s: exit %v\nlog:\n%s", in.name, err, in.log)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not stop\nlog:\n%s", in.name, in.log)
	}
}

// metric reads one sample of the instance's /metrics (0 when absent).
func (in *instance) metric(name string) float64 {
	resp, err := http.Get("http://" + in.metrics + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v float64
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, name+" ") {
			fmt.Sscan(strings.TrimPrefix(l, name+" "), &v)
		}
	}
	return v
}

// Several stackprint processes consume one topic in a group: one is
// SIGKILLed and restarted mid-stream, a third joins (a rebalance).
// Afterwards every event has its alert (replays keep the alert_id), each
// server was probed once across the group (connections counted at the
// servers), and the fingerprint DB is identical on every instance.
func TestClusterOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	brokers := startKfake(t, 6, "zeek-ssl", "stackprint.alerts", "stackprint.fingerprint-records",
		"stackprint.probe-requests", "stackprint.observations", "stackprint.fingerprints")
	broker := brokers[0]
	const nServers = 8
	var servers []*tlsServer
	for i := range nServers {
		servers = append(servers, startTLSServer(t, fmt.Sprintf("127.0.0.%d", 30+i)))
	}
	// The JARM of these servers, taken from a twin (same TLS stack) so the
	// counted servers see only the cluster's probes.
	twin := startTLSServer(t, "127.0.0.99")
	eng, err := probe.NewEngine(probe.EngineConfig{Kinds: []string{"jarm", "cert"}, IOTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cost := int64(eng.Conns(nil))
	jr := eng.Probe(context.Background(), stackprint.Target{IP: twin.addr.Addr(), Port: twin.addr.Port()}, twin.addr.Addr().String())
	if !jr.HasJARM() {
		t.Fatalf("twin: %s %s", jr.Status, jr.Error)
	}
	bin := buildStackprint(t)

	a, b, c := newInstance(t, "a", broker), newInstance(t, "b", broker), newInstance(t, "c", broker)
	// The fingerprint is added on A's DB only; the cluster's DB sync
	// carries it to the others.
	if out, err := exec.Command(bin, "db", "add", "-c", a.cfg, "-kind", "jarm", "-value", jr.JARM, "-label", "go-tls-lab", "-confidence", "high").CombinedOutput(); err != nil {
		t.Fatalf("db add: %v\n%s", err, out)
	}

	// Every alert produced to the alerts topic, by uid.
	type alertSeen struct{ ids map[string]int }
	var mu sync.Mutex
	alerts := map[string]*alertSeen{}
	total := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("stackprint.alerts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	go func() {
		for ctx.Err() == nil {
			cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				var al struct {
					ID   string `json:"alert_id"`
					UID  string `json:"uid"`
					Rule string `json:"rule"`
				}
				if json.Unmarshal(r.Value, &al) != nil || al.Rule != "db_match" {
					return
				}
				mu.Lock()
				s := alerts[al.UID]
				if s == nil {
					s = &alertSeen{ids: map[string]int{}}
					alerts[al.UID] = s
				}
				s.ids[al.ID]++
				total++
				mu.Unlock()
			})
		}
	}()
	alerted := func() int { mu.Lock(); defer mu.Unlock(); return len(alerts) }

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	next := 0
	produceEvents := func(n int) {
		var rs []*kgo.Record
		for range n {
			i := next
			next++
			s := servers[i%nServers]
			v := fmt.Sprintf(`{"ssl":{"ts":%d.5,"uid":"C%06d","id.orig_h":"127.0.1.%d","id.orig_p":%d,"id.resp_h":"%s","id.resp_p":%d,"version":"TLSv13","server_name":"srv%d.test","established":true}}`,
				1700000000+i, i, 1+i%50, 20000+i%40000, s.addr.Addr(), s.addr.Port(), i%nServers)
			rs = append(rs, &kgo.Record{Topic: "zeek-ssl", Key: fmt.Appendf(nil, "C%06d", i), Value: []byte(v)})
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	a.start(t, bin)
	a.ready(t, 60*time.Second)
	b.start(t, bin)
	b.ready(t, 60*time.Second)

	// Phase 1: every server is seen; probes run.
	produceEvents(300)
	waitFor(t, "phase 1 alerts", 90*time.Second, func() bool { return alerted() == 300 })

	// Phase 2: B is SIGKILLed mid-stream and restarted.
	for i := range 10 {
		produceEvents(30)
		if i == 3 {
			if err := b.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-b.done
			b.cmd.ProcessState = nil
			time.Sleep(500 * time.Millisecond)
			b.start(t, bin)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.ready(t, 60*time.Second)

	// Phase 3: C joins while events flow (a rebalance).
	c.start(t, bin)
	for range 10 {
		produceEvents(30)
		time.Sleep(100 * time.Millisecond)
	}
	c.ready(t, 60*time.Second)
	waitFor(t, "every event's alert", 120*time.Second, func() bool { return alerted() == next })
	time.Sleep(time.Second) // late duplicates, if any, arrive too

	owned := map[string]float64{}
	for _, in := range []*instance{a, b, c} {
		owned[in.name] = in.metric(`stackprint_kafka_shared_probes_total{what="owned"}`)
	}
	for _, in := range []*instance{a, b, c} {
		in.stop(t)
	}

	mu.Lock()
	dups, split := 0, 0
	for uid, s := range alerts {
		if len(s.ids) != 1 {
			split++
			t.Errorf("%s: %d different alert ids", uid, len(s.ids))
		}
		for _, n := range s.ids {
			dups += n - 1
		}
	}
	// Duplicates: what B had settled since its last offset commit (every
	// 500ms) when it was killed, replayed by the partitions' next owner.
	t.Logf("events %d; alerted %d; alerts %d (replayed duplicates with the same alert_id: %d); owned probes a=%v b(restarted)=%v c=%v",
		next, len(alerts), total, dups, owned["a"], owned["b"], owned["c"])
	mu.Unlock()
	for _, s := range servers {
		t.Logf("server %s: %d connections (one probe: %d)", s.addr, s.conns.Load(), cost)
		if got := s.conns.Load(); got != cost {
			t.Errorf("server %s: %d connections across the group, want one probe's %d", s.addr, got, cost)
		}
	}
	// One fingerprint DB.
	var dumps []string
	for _, in := range []*instance{a, b, c} {
		d, err := db.Open(filepath.Join(in.dir, "db", "stackprint.db"), db.Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		dumps = append(dumps, dumpCurated(t, d))
		d.Close()
	}
	if !strings.Contains(dumps[0], jr.JARM) || dumps[1] != dumps[0] || dumps[2] != dumps[0] {
		t.Errorf("fingerprint DBs differ:\na: %s\nb: %s\nc: %s", dumps[0], dumps[1], dumps[2])
	}
}

// dumpCurated is a DB's fingerprints as curated: without the local store
// time and the sightings, which follow each instance's own probes.
func dumpCurated(t *testing.T, d *db.DB) string {
	t.Helper()
	recs, err := d.List("")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range recs {
		r.Updated, r.FirstSeen, r.LastSeen = time.Time{}, time.Time{}, time.Time{}
		fmt.Fprintf(&b, "%+v\n", r)
	}
	return b.String()
}
