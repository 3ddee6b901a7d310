package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/internal/lab"
	"github.com/stackprint/stackprint/probe"
)

// The attack shapes of the scheduler, each against the built daemon at its
// default limits (only 127.0.0.0/8 allow-listed) and real loopback TLS
// servers, tarpits and closed ports, counted at the servers.
// bench/adversarial.sh prints their figures; STACKPRINT_ADV_BIN=path runs
// them against another build (say the one before the scheduler) and only
// prints.

// advBin is the binary under test and whether only to measure.
func advBin() (string, bool) {
	if b := os.Getenv("STACKPRINT_ADV_BIN"); b != "" {
		return b, true
	}
	return binPath, false
}

type advDaemon struct {
	t                           *testing.T
	bin, dir, cfg, ssl          string
	alertsPath, recordsPath, db string
	cmd                         *exec.Cmd
	stderr                      *syncBuffer
	metrics                     string
	log                         *os.File
	fed                         int
}

// startAdv runs the daemon on a minimal config (decoded over the embedded
// default, so the same file suits any build) with extra YAML appended.
func startAdv(t *testing.T, dir, extra string) *advDaemon {
	t.Helper()
	bin, _ := advBin()
	d := &advDaemon{t: t, bin: bin, dir: dir, cfg: filepath.Join(dir, "stackprint.yaml"), ssl: filepath.Join(dir, "ssl.log"),
		alertsPath: filepath.Join(dir, "alerts.ndjson"), recordsPath: filepath.Join(dir, "stackprint.log"), db: filepath.Join(dir, "state.db")}
	text := fmt.Sprintf(`db: {path: %s}
inputs: [{name: zeek-ssl, path: %s, format: zeek}]
tailer: {poll_interval: 50ms}
scope: {allow: [127.0.0.0/8]}
outputs: {alerts: %s, fingerprints: %s, zeek_format: json}
metrics: {listen: "127.0.0.1:0"}
rules: {suppress: {"*": 0s}}
%s`, d.db, d.ssl, d.alertsPath, d.recordsPath, extra)
	if err := os.WriteFile(d.cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	return d
}

func (d *advDaemon) start() {
	t := d.t
	t.Helper()
	d.cmd = exec.Command(d.bin, "run", "-c", d.cfg)
	// If the test binary dies (a go test timeout), so does the daemon.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.stderr = &syncBuffer{}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := d.cmd
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon stderr (tail):\n%s", tail(d.stderr.String(), 3000))
		}
	})
	re := regexp.MustCompile(`metrics and health listening" addr=(\S+)`)
	d.metrics = ""
	waitFor(t, "metrics listener", 15*time.Second, func() bool {
		if m := re.FindStringSubmatch(d.stderr.String()); m != nil {
			d.metrics = m[1]
		}
		return d.metrics != ""
	})
}

type advLine struct {
	uid, orig string
	resp      netip.AddrPort
	sni       string
}

// feed appends Zeek ssl.log lines (the header with the first).
func (d *advDaemon) feed(lines []advLine) {
	t := d.t
	t.Helper()
	if d.log == nil {
		f, err := os.Create(d.ssl)
		if err != nil {
			t.Fatal(err)
		}
		d.log = f
		t.Cleanup(func() { f.Close() })
		fmt.Fprintf(f, "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tssl\n#open\t2026-12-06-08-00-00\n#fields\t%s\n#types\t%s\n", lab.ZeekSSLFields, lab.ZeekSSLTypes)
	}
	w := bufio.NewWriterSize(d.log, 1<<20)
	for _, l := range lines {
		sni := cmp.Or(l.sni, "-")
		fmt.Fprintf(w, "1765008000.%06d\t%s\t%s\t%d\t%s\t%d\tTLSv13\tTLS_AES_128_GCM_SHA256\tx25519\t%s\tF\t-\t-\tT\tCsiI\t-\t-\t-\n",
			d.fed%1000000, l.uid, l.orig, 40000+d.fed%20000, l.resp.Addr(), l.resp.Port(), sni)
		d.fed++
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func (d *advDaemon) scrape() map[string]float64 { return scrapeMetrics(d.metrics) }

// scrapeMetrics reads a /metrics page into series → value (nothing when
// it does not answer).
func scrapeMetrics(addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
				out[l[:i]] = v
			}
		}
	}
	return out
}

// jsonLines reads the JSON objects of a file (a torn last line is skipped).
func jsonLines(path string) []map[string]any {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []map[string]any
	for _, l := range strings.Split(string(b), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func (d *advDaemon) stop() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			d.t.Errorf("daemon exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		d.t.Fatal("daemon did not stop within 30s")
	}
}

func (d *advDaemon) rssMB() int64 { return vmHWM(d.t, d.cmd.Process.Pid) >> 20 }

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func listedJARM(t *testing.T, dbPath string, addr netip.AddrPort) {
	t.Helper()
	r := probe.NewJARM(probe.JARMConfig{IOTimeout: 3 * time.Second, Deadline: 10 * time.Second}).
		Probe(context.Background(), stackprint.Target{IP: addr.Addr(), Port: addr.Port()}, addr.Addr().String())
	if !r.HasJARM() {
		t.Fatalf("no JARM for %s: %s", addr, r.Status)
	}
	bin, _ := advBin()
	if out, err := exec.Command(bin, "db", "add", "--db", dbPath, "--kind", "jarm", "--value", r.JARM,
		"--label", "adv-c2", "--source", "adversarial-test", "--confidence", "high").CombinedOutput(); err != nil {
		t.Fatalf("db add: %v %s", err, out)
	}
}

func (c *loadCounter) count(ip string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.accepts[ip])
}

// Shape 1: a listed C2 reached under ten names within a second.
func TestAdversarialC2UnderManyNames(t *testing.T) {
	_, measureOnly := advBin()
	dir := t.TempDir()
	counter := &loadCounter{first: map[string]time.Time{}, accepts: map[string][]time.Time{}}
	c2 := startCountingServer(t, "127.0.20.1", mustCert(t, "rsa"), counter)
	listedJARM(t, filepath.Join(dir, "state.db"), c2)
	before := counter.count("127.0.20.1")
	d := startAdv(t, dir, "")
	var lines []advLine
	for i := range 10 {
		lines = append(lines, advLine{fmt.Sprintf("CAdvSNI%d", i), "127.0.9.1", c2, fmt.Sprintf("n%d.c2.test", i)})
	}
	t0 := time.Now()
	d.feed(lines)
	seen := map[string]time.Duration{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < 10 && time.Now().Before(deadline) {
		for _, a := range jsonLines(d.alertsPath) {
			if uid := fmt.Sprint(a["uid"]); strings.HasPrefix(uid, "CAdvSNI") {
				if _, ok := seen[uid]; !ok {
					seen[uid] = time.Since(t0)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let the name probes finish before counting the wire.
	for t1 := time.Now(); len(jsonLines(d.recordsPath)) < 10 && time.Since(t1) < 30*time.Second; {
		time.Sleep(20 * time.Millisecond)
	}
	conns := counter.count("127.0.20.1") - before
	var lat []time.Duration
	for _, v := range seen {
		lat = append(lat, v)
	}
	t.Logf("shape c2-10-names: alerts %d/10, verdict p50 %s p99 %s, connections at the server %d (JARM 10 + ATSF 10 once per server, certificate+HTTP 1 per name), peak RSS %d MB",
		len(seen), pct(lat, .5).Round(time.Millisecond), pct(lat, .99).Round(time.Millisecond), conns, d.rssMB())
	d.stop()
	if measureOnly {
		return
	}
	if len(seen) != 10 {
		t.Errorf("%d of 10 connections to a listed C2 alerted", len(seen))
	}
	if conns > 10+10+10 {
		t.Errorf("%d connections at the C2, want at most 10 (JARM) + 10 (ATSF) + 10 (one per name)", conns)
	}
}

// Shape 2: one IP with 2,000 names queued ahead of 1,000 other servers.
func TestAdversarialBusyIP(t *testing.T) {
	_, measureOnly := advBin()
	dir := t.TempDir()
	counter := &loadCounter{first: map[string]time.Time{}, accepts: map[string][]time.Time{}}
	cert := mustCert(t, "ecdsa")
	busy := startCountingServer(t, "127.0.21.1", cert, counter)
	var others []netip.AddrPort
	for i := range 1000 {
		others = append(others, startCountingServer(t, fmt.Sprintf("127.0.%d.%d", 22+i/250, i%250+1), cert, counter))
	}
	d := startAdv(t, dir, "")
	var lines []advLine
	for i := range 2000 {
		lines = append(lines, advLine{fmt.Sprintf("CBusy%d", i), "127.0.9.1", busy, fmt.Sprintf("b%d.busy.test", i)})
	}
	for i, o := range others {
		lines = append(lines, advLine{fmt.Sprintf("COther%d", i), "127.0.9.1", o, ""})
	}
	t0 := time.Now()
	d.feed(lines)
	const window = 20 * time.Second
	time.Sleep(window)
	counter.mu.Lock()
	var firstOther time.Duration = -1
	started := 0
	for k, ts := range counter.first {
		if strings.HasPrefix(k, "127.0.21.1/") {
			continue
		}
		started++
		if dt := ts.Sub(t0); firstOther < 0 || dt < firstOther {
			firstOther = dt
		}
	}
	busyMax := maxInWindow(slices.Clone(counter.accepts["127.0.21.1"]), time.Second)
	busyConns := len(counter.accepts["127.0.21.1"])
	otherConns := 0
	for ip, ts := range counter.accepts {
		if ip != "127.0.21.1" {
			otherConns += len(ts)
		}
	}
	counter.mu.Unlock()
	m := d.scrape()
	span := (window - max(firstOther, 0)).Seconds()
	// The global budget is 5 full fingerprints of 21 connections a second.
	share := float64(otherConns) / span / (5 * 21)
	first := firstOther.Round(time.Millisecond).String()
	if firstOther < 0 {
		first = "never"
	}
	t.Logf("shape busy-ip: first other server probed after %s; %d other servers probed in %s (%.2f/s), %d connections to them = %.0f%% of the global budget of 105/s; busy IP %d connections (%.1f/s, at most %d in any second); events judged %.0f, waiting %.0f+%.0f; peak RSS %d MB",
		first, started, window, float64(started)/span, otherConns, share*100, busyConns, float64(busyConns)/window.Seconds(), busyMax,
		sumOutcomes(m), m[`stackprint_events_waiting{where="memory"}`], m[`stackprint_events_waiting{where="disk"}`], d.rssMB())
	d.stop()
	if measureOnly {
		return
	}
	if firstOther < 0 || firstOther > 2*time.Second {
		t.Errorf("first other server probed after %s, want within 2s", firstOther)
	}
	// The busy IP takes its own 20 connections/s out of the global 105:
	// 81 % are left for the others.
	if share < 0.8 {
		t.Errorf("others got %.0f%% of the global connection budget, want at least 80%%", share*100)
	}
	if float64(busyConns)/window.Seconds() < 15 {
		t.Errorf("busy IP drained at %.1f connections/s, want about its own 20/s", float64(busyConns)/window.Seconds())
	}
	if busyMax > 20+22 {
		t.Errorf("busy IP got %d connections in one second, limit 20/s + burst 22", busyMax)
	}
	if n := sumOutcomes(m) + m[`stackprint_events_waiting{where="memory"}`] + m[`stackprint_events_waiting{where="disk"}`]; int(n) != len(lines) {
		t.Errorf("events judged + waiting = %.0f, want %d", n, len(lines))
	}
}

func sumOutcomes(m map[string]float64) float64 {
	n := 0.0
	for _, o := range []string{"deduped", "probed", "out_of_scope", "invalid", "expired"} {
		n += m[fmt.Sprintf(`stackprint_events_total{outcome=%q}`, o)]
	}
	return n
}

// Shape 3: 24 tarpits ahead of 20 good servers, against the good servers
// alone.
func TestAdversarialTarpits(t *testing.T) {
	_, measureOnly := advBin()
	cert := mustCert(t, "ecdsa")
	counter := &loadCounter{first: map[string]time.Time{}, accepts: map[string][]time.Time{}}
	var good, pits []netip.AddrPort
	for i := range 20 {
		good = append(good, startCountingServer(t, fmt.Sprintf("127.0.30.%d", i+1), cert, counter))
	}
	for i := range 24 {
		pits = append(pits, startTarpit(t, fmt.Sprintf("127.0.31.%d", i+1), counter))
	}
	run := func(withPits bool) time.Duration {
		d := startAdv(t, t.TempDir(), "")
		var lines []advLine
		if withPits {
			for i, p := range pits {
				lines = append(lines, advLine{fmt.Sprintf("CPit%d", i), "127.0.9.1", p, ""})
			}
		}
		for i, g := range good {
			lines = append(lines, advLine{fmt.Sprintf("CGood%d", i), "127.0.9.1", g, ""})
		}
		t0 := time.Now()
		d.feed(lines)
		var took time.Duration
		for n := 0; n < 20 && time.Since(t0) < 120*time.Second; time.Sleep(20 * time.Millisecond) {
			n = 0
			for _, r := range jsonLines(d.recordsPath) {
				if strings.HasPrefix(fmt.Sprint(r["id.resp_h"]), "127.0.30.") {
					n++
				}
			}
			took = time.Since(t0)
		}
		d.stop()
		return took
	}
	alone := run(false)
	behind := run(true)
	ratio := behind.Seconds() / alone.Seconds()
	t.Logf("shape tarpits: 20 good servers alone %s, behind 24 tarpits %s (%.2f×)", alone.Round(time.Millisecond), behind.Round(time.Millisecond), ratio)
	if !measureOnly && ratio > 1.5 {
		t.Errorf("good servers behind tarpits took %.2f× their time alone, want ≤ 1.5×", ratio)
	}
}

// Shape 4: 50,000 decoy targets from one host, then one C2 contact from
// another; SIGKILL in the middle; every event judged after the restart.
func TestAdversarialFloodThenC2(t *testing.T) {
	_, measureOnly := advBin()
	dir := t.TempDir()
	counter := &loadCounter{first: map[string]time.Time{}, accepts: map[string][]time.Time{}}
	c2 := startCountingServer(t, "127.0.40.1", mustCert(t, "rsa"), counter)
	listedJARM(t, filepath.Join(dir, "state.db"), c2)
	d := startAdv(t, dir, "")
	const decoys = 50_000
	var lines []advLine
	for i := range decoys {
		// Closed ports on loopback: refused at once.
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 50 + byte(i/62500), byte(i / 250 % 250), byte(i%250 + 1)}), 9)
		lines = append(lines, advLine{fmt.Sprintf("CDecoy%d", i), "127.0.9.1", addr, ""})
	}
	d.feed(lines)
	t0 := time.Now()
	d.feed([]advLine{{"CFloodC2", "127.0.9.2", c2, "c2.flood.test"}})
	var latency time.Duration = -1
	for latency < 0 && time.Since(t0) < 60*time.Second {
		for _, a := range jsonLines(d.alertsPath) {
			if a["uid"] == "CFloodC2" {
				latency = time.Since(t0)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	m := d.scrape()
	judged := sumOutcomes(m)
	rate := m[`stackprint_probes_started_total{level="server"}`] / time.Since(t0).Seconds()
	rss := d.rssMB()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Wait()
	lat := latency.Round(time.Millisecond).String()
	if latency < 0 {
		lat = "never (60s)"
	}
	t.Logf("shape flood-then-c2: C2 alert %s after its line behind %d decoys; %.0f events judged before SIGKILL, %.0f waiting (memory %.0f, disk %.0f); decoys drain at %.1f server probes/s at default limits (%.1f h for all); peak RSS %d MB",
		lat, decoys, judged, m[`stackprint_events_waiting{where="memory"}`]+m[`stackprint_events_waiting{where="disk"}`],
		m[`stackprint_events_waiting{where="memory"}`], m[`stackprint_events_waiting{where="disk"}`], rate, float64(decoys)/max(rate, 0.01)/3600, rss)
	if measureOnly {
		return
	}
	if latency < 0 || latency > 10*time.Second {
		t.Errorf("C2 alert after %s behind the flood, want within 10s", latency)
	}
	// Restart after the SIGKILL with a faster rate so the test can watch
	// the whole backlog drain; every event must end judged, none expired.
	cfg := string(mustRead(t, d.cfg)) + "scheduler: {probes_per_second: 400, burst: 100}\n"
	writeConfig(t, d.cfg, cfg)
	t1 := time.Now()
	d.start()
	// 50,000 probes take about two minutes at 400/s on an idle machine and
	// several times that on a loaded one: wait as long as events keep
	// being judged, and fail when the drain stalls for three minutes.
	last, lastMove := -1.0, time.Now()
	waitFor(t, "the backlog drained after the restart (still judging events)", 30*time.Minute, func() bool {
		m := d.scrape()
		if n := sumOutcomes(m); n != last {
			last, lastMove = n, time.Now()
		} else if time.Since(lastMove) > 3*time.Minute {
			t.Fatalf("the backlog stopped draining: %.0f events judged, none for three minutes (memory %.0f, disk %.0f, queue %.0f, in flight %.0f)",
				n, m[`stackprint_events_waiting{where="memory"}`], m[`stackprint_events_waiting{where="disk"}`], m[`stackprint_queue_depth`], m[`stackprint_probes_in_flight`])
		}
		return sumOutcomes(m) > 0 && m[`stackprint_events_waiting{where="memory"}`] == 0 &&
			m[`stackprint_events_waiting{where="disk"}`] == 0 && m[`stackprint_queue_depth`] == 0 && m[`stackprint_probes_in_flight`] == 0
	})
	m = d.scrape()
	d.stop()
	out, err := exec.Command(d.bin, "db", "stats", "--json", "-c", d.cfg).Output()
	if err != nil {
		t.Fatalf("db stats: %v", err)
	}
	var st struct {
		Pending int `json:"pending_events"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("after the restart: backlog drained in %s at 400 probes/s; %.0f events judged, %.0f expired, %d still parked",
		time.Since(t1).Round(time.Second), sumOutcomes(m), m[`stackprint_events_total{outcome="expired"}`], st.Pending)
	if st.Pending != 0 || m[`stackprint_events_total{outcome="expired"}`] != 0 {
		t.Errorf("after the drain: %d events still parked, %.0f expired; want every event judged", st.Pending, m[`stackprint_events_total{outcome="expired"}`])
	}
	if int(judged+sumOutcomes(m)) < decoys+1 {
		t.Errorf("%.0f judged before the kill + %.0f after < %d events", judged, sumOutcomes(m), decoys+1)
	}
}
