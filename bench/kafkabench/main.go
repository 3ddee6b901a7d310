// Command kafkabench measures stackprint consuming Kafka: a kfake broker
// on 127.0.0.1, loopback TLS servers, and one or more instances of the
// built daemon in one consumer group with shared probing and the Kafka
// alert output. bench/kafka.sh runs it.
//
//	go run ./bench/kafkabench -bin ./stackprint -events 30000 -instances 1,3
//
// For each instance count it prints events/s (every event of a burst
// produced at once, until its last alert is on the alerts topic; every
// server already probed and cached, so this is the consume → judge →
// alert path) and the latency from producing one event to its alert
// arriving, one event at a time (p50, p99). Nothing is asserted.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/internal/lab"
	"github.com/stackprint/stackprint/probe"
)

func main() {
	bin := flag.String("bin", "", "stackprint binary")
	events := flag.Int("events", 30000, "events in the throughput burst")
	insts := flag.String("instances", "1,3", "instance counts to run")
	samples := flag.Int("latency", 300, "events for the latency figure")
	nServers := flag.Int("servers", 16, "loopback TLS servers")
	flag.Parse()
	if *bin == "" {
		log.Fatal("-bin is required")
	}
	work, err := os.MkdirTemp("", "kafkabench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)

	var servers []netip.AddrPort
	for i := range *nServers {
		servers = append(servers, startTLS(fmt.Sprintf("127.0.0.%d", 40+i)))
	}
	twin := startTLS("127.0.0.120")
	eng, err := probe.NewEngine(probe.EngineConfig{Kinds: []string{"jarm", "cert"}, IOTimeout: 3 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	jr := eng.Probe(context.Background(), stackprint.Target{IP: twin.Addr(), Port: twin.Port()}, twin.Addr().String())
	if !jr.HasJARM() {
		log.Fatalf("twin server: %s", jr.Error)
	}

	for _, s := range strings.Split(*insts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			log.Fatalf("bad -instances %q", *insts)
		}
		run(*bin, filepath.Join(work, "run"+s), n, *events, *samples, servers, jr.JARM)
	}
}

func startTLS(ip string) netip.AddrPort {
	cert, err := lab.SelfSigned("ecdsa", ip)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := lab.StartGoTLS(ip, ip, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		log.Fatal(err)
	}
	return srv.Addr
}

// run measures n instances against a fresh broker.
func run(bin, dir string, n, events, samples int, servers []netip.AddrPort, jarm string) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(500*time.Millisecond),
		kfake.SeedTopics(6, "zeek-ssl", "stackprint.alerts", "stackprint.probe-requests", "stackprint.observations", "stackprint.fingerprints"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	broker := c.ListenAddrs()[0]
	var procs []*exec.Cmd
	var readyz []string
	for i := range n {
		idir := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(idir, 0o755); err != nil {
			log.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		metrics := ln.Addr().String()
		ln.Close()
		cfg := filepath.Join(idir, "stackprint.yaml")
		body := fmt.Sprintf(`db: {path: %[1]s/db/stackprint.db}
inputs:
  - name: sensors
    format: zeek-json
    kafka: {brokers: [%[2]s], topics: [zeek-ssl], group: sensors, session_timeout: 3s}
scope: {allow: [127.0.0.0/8]}
probe: {kinds: [jarm, cert], io_timeout: 3s}
outputs: {alerts: %[1]s/alerts.ndjson, fingerprints: %[1]s/stackprint.log}
rules: {suppress: {"*": 0s}}
log: {level: warn}
metrics: {listen: %[3]s, pprof: %[4]v}
kafka:
  output: {brokers: [%[2]s], alerts_topic: stackprint.alerts}
  cluster: {brokers: [%[2]s], session_timeout: 3s}
`, idir, broker, metrics, os.Getenv("KAFKABENCH_PPROF") != "")
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			log.Fatal(err)
		}
		if i == 0 {
			if out, err := exec.Command(bin, "db", "add", "-c", cfg, "-kind", "jarm", "-value", jarm, "-label", "bench", "-confidence", "high").CombinedOutput(); err != nil {
				log.Fatalf("db add: %v %s", err, out)
			}
		}
		p := exec.Command(bin, "run", "-c", cfg)
		p.Stderr = os.Stderr
		p.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := p.Start(); err != nil {
			log.Fatal(err)
		}
		procs = append(procs, p)
		readyz = append(readyz, "http://"+metrics+"/readyz")
		waitReady(readyz[i])
		if os.Getenv("KAFKABENCH_PPROF") != "" {
			fmt.Printf("instance %d: pprof on http://%s/debug/pprof/\n", i, metrics)
		}
	}
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}()
	ctx := context.Background()
	prod, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("stackprint.alerts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(10*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer cons.Close()
	var mu sync.Mutex
	seen := map[string]time.Time{}
	cond := sync.NewCond(&mu)
	go func() {
		for {
			fs := cons.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				var a struct {
					UID string `json:"uid"`
				}
				if json.Unmarshal(r.Value, &a) == nil {
					mu.Lock()
					if _, ok := seen[a.UID]; !ok {
						seen[a.UID] = now
					}
					mu.Unlock()
				}
			})
			mu.Lock()
			cond.Broadcast()
			mu.Unlock()
		}
	}()
	next := 0
	record := func() (*kgo.Record, string) {
		i := next
		next++
		s := servers[i%len(servers)]
		uid := fmt.Sprintf("C%08d", i)
		v := fmt.Sprintf(`{"ssl":{"ts":%d.5,"uid":"%s","id.orig_h":"127.0.1.%d","id.orig_p":%d,"id.resp_h":"%s","id.resp_p":%d,"server_name":"srv%d.test","established":true}}`,
			1700000000+i, uid, 1+i%200, 1024+i%60000, s.Addr(), s.Port(), i%len(servers))
		return &kgo.Record{Topic: "zeek-ssl", Key: []byte(uid), Value: []byte(v)}, uid
	}
	waitAll := func(uids []string, d time.Duration) bool {
		deadline := time.Now().Add(d)
		mu.Lock()
		defer mu.Unlock()
		for {
			all := true
			for _, u := range uids {
				if _, ok := seen[u]; !ok {
					all = false
					break
				}
			}
			if all {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
		}
	}
	// Warm-up: every server probed once (shared) and cached everywhere.
	var warm []string
	var rs []*kgo.Record
	for range 4 * len(servers) * n {
		r, u := record()
		rs = append(rs, r)
		warm = append(warm, u)
	}
	if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		log.Fatal(err)
	}
	if !waitAll(warm, 2*time.Minute) {
		log.Fatal("warm-up alerts missing")
	}
	// Throughput: one burst.
	rs, warm = rs[:0], warm[:0]
	for range events {
		r, u := record()
		rs = append(rs, r)
		warm = append(warm, u)
	}
	start := time.Now()
	if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		log.Fatal(err)
	}
	produced := time.Since(start)
	if !waitAll(warm, 10*time.Minute) {
		log.Fatal("burst alerts missing")
	}
	mu.Lock()
	var last time.Time
	for _, u := range warm {
		if t := seen[u]; t.After(last) {
			last = t
		}
	}
	mu.Unlock()
	el := last.Sub(start)
	fmt.Printf("instances=%d  burst of %d events: %.0f events/s (produced in %s, last alert after %s)\n", n, events, float64(events)/el.Seconds(), produced.Round(time.Millisecond), el.Round(time.Millisecond))
	// Latency: one event at a time, a cached server.
	var lat []time.Duration
	for range samples {
		r, u := record()
		t0 := time.Now()
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			log.Fatal(err)
		}
		if !waitAll([]string{u}, time.Minute) {
			log.Fatal("latency alert missing")
		}
		mu.Lock()
		lat = append(lat, seen[u].Sub(t0))
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(lat)
	fmt.Printf("instances=%d  produce → alert on the alerts topic, cached server (%d events one at a time): p50 %s  p99 %s  max %s\n",
		n, samples, lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*99/100].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
}

func waitReady(url string) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if r, err := http.Get(url); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatalf("%s: not ready", url)
}
