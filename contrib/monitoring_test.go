package contrib

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The Prometheus rules and the Grafana dashboard are checked against a real
// scrape: the daemon is built and run on loopback, fingerprints an
// in-process TLS server whose certificate is in its DB (so probes, matches
// and alerts have series), reads a malformed line (parse errors), and its
// /metrics is scraped. Every metric and label the PromQL uses must be in
// that scrape. The PromQL itself is also checked by Prometheus's own
// promtool in CI (.ci/run); the names are extracted here with a small
// lexer because the PromQL parser (github.com/prometheus/prometheus) would
// pull Prometheus's whole dependency tree into go.mod for one test.

// promRef is a metric referenced by a PromQL expression with the label
// names its matchers use, and the grouping labels of the expression.
type promRef struct {
	metric string
	labels []string
	equal  map[string]string // label="value" matchers
}

var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promqlRefs lexes expr: metric names with their matcher labels, and the
// label names of by/without/on/ignoring/group_* clauses.
func promqlRefs(expr string) (refs []promRef, groupLabels []string, err error) {
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
	}
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\n' || expr[i] == '\t') {
			i++
		}
		return i
	}
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			if expr[j] == '\\' && q != '`' {
				j++
				continue
			}
			if expr[j] == q {
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d", i)
	}
	ident := func(i int) (string, int) {
		j := i
		for j < len(expr) && isIdent(expr[j], j == i) {
			j++
		}
		return expr[i:j], j
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			if i, err = skipString(i); err != nil {
				return nil, nil, err
			}
		case c == '[': // range or subquery: durations and Grafana variables
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return nil, nil, fmt.Errorf("unterminated [ at %d", i)
			}
			i += j + 1
		case c == '$': // a Grafana variable
			_, i = ident(i + 1)
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.' || expr[i] == '+' && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isIdent(c, true):
			var name string
			name, i = ident(i)
			next := skipSpace(i)
			switch {
			case grouping[name]:
				if next >= len(expr) || expr[next] != '(' {
					if name == "group_left" || name == "group_right" {
						continue
					}
					return nil, nil, fmt.Errorf("%s without a label list", name)
				}
				end := strings.IndexByte(expr[next:], ')')
				for _, l := range strings.Split(expr[next+1:next+end], ",") {
					if l = strings.TrimSpace(l); l != "" {
						groupLabels = append(groupLabels, l)
					}
				}
				i = next + end + 1
			case promKeywords[name] || (next < len(expr) && expr[next] == '('):
				// an operator, aggregation or function
			default:
				ref := promRef{metric: name}
				if next < len(expr) && expr[next] == '{' {
					j := next + 1
					for {
						j = skipSpace(j)
						if j >= len(expr) {
							return nil, nil, fmt.Errorf("unterminated { after %s", name)
						}
						if expr[j] == '}' {
							i = j + 1
							break
						}
						var l string
						l, j = ident(j)
						if l == "" {
							return nil, nil, fmt.Errorf("bad matcher after %s at %d", name, j)
						}
						ref.labels = append(ref.labels, l)
						j = skipSpace(j)
						opStart := j
						for j < len(expr) && strings.IndexByte("=!~", expr[j]) >= 0 {
							j++
						}
						op := expr[opStart:j]
						j = skipSpace(j)
						if j >= len(expr) || (expr[j] != '"' && expr[j] != '\'' && expr[j] != '`') {
							return nil, nil, fmt.Errorf("matcher %s.%s: no quoted value", name, l)
						}
						valStart := j
						if j, err = skipString(j); err != nil {
							return nil, nil, err
						}
						if op == "=" && !strings.Contains(expr[valStart:j], "$") {
							if ref.equal == nil {
								ref.equal = map[string]string{}
							}
							ref.equal[l] = expr[valStart+1 : j-1]
						}
						j = skipSpace(j)
						if j < len(expr) && expr[j] == ',' {
							j++
						}
					}
				}
				refs = append(refs, ref)
			}
		default:
			i++
		}
	}
	return refs, groupLabels, nil
}

func TestPromqlLexer(t *testing.T) {
	refs, groups, err := promqlRefs(`sum by (instance) (rate(a_total{status=~"x|y", input!="b,}"}[5m])) / on(instance) group_left b{instance=~"$instance"} > 0.5e3 and histogram_quantile(0.5, sum by (le) (rate(c_bucket[$__rate_interval])))`)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(refs, groups)
	want := `[{a_total [status input] map[]} {b [instance] map[]} {c_bucket [] map[]}] [instance instance le]`
	if got != want {
		t.Fatalf("lexer: %s, want %s", got, want)
	}
}

// scrape is the samples of a /metrics answer: sample name -> label name ->
// the values seen.
type scrape map[string]map[string]map[string]bool

func parseScrape(t *testing.T, body string) scrape {
	t.Helper()
	s := scrape{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"`)
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("/metrics line %q", line)
		}
		if s[m[1]] == nil {
			s[m[1]] = map[string]map[string]bool{}
		}
		for _, l := range label.FindAllStringSubmatch(m[3], -1) {
			if s[m[1]][l[1]] == nil {
				s[m[1]][l[1]] = map[string]bool{}
			}
			s[m[1]][l[1]][l[2]] = true
		}
	}
	return s
}

// checkExpr reports the metrics and labels expr uses that the scrape lacks.
// up is made by Prometheus for every target, instance and job are target
// labels every series gets when scraped.
func checkExpr(t *testing.T, where, expr string, sc scrape) {
	t.Helper()
	refs, groups, err := promqlRefs(expr)
	if err != nil {
		t.Errorf("%s: %v in %q", where, err, expr)
		return
	}
	if len(refs) == 0 {
		t.Errorf("%s: no metric in %q", where, expr)
	}
	targetLabels := map[string]bool{"instance": true, "job": true}
	all := map[string]bool{}
	for _, r := range refs {
		if r.metric == "up" {
			continue
		}
		labels, ok := sc[r.metric]
		if !ok {
			t.Errorf("%s: metric %s is not in the daemon's /metrics", where, r.metric)
			continue
		}
		for l := range labels {
			all[l] = true
		}
		for _, l := range r.labels {
			if labels[l] == nil && !targetLabels[l] {
				t.Errorf("%s: %s has no label %q in /metrics", where, r.metric, l)
			}
		}
		// An exact value must be one the daemon exports (the counters of
		// an enumeration are exported at 0 too).
		for l, v := range r.equal {
			if labels[l] != nil && !labels[l][v] {
				t.Errorf("%s: %s{%s=%q}: the daemon exports %s values %v", where, r.metric, l, v, l, slices.Sorted(maps.Keys(labels[l])))
			}
		}
	}
	for _, l := range groups {
		if !all[l] && !targetLabels[l] {
			t.Errorf("%s: grouping label %q is on none of the metrics of %q", where, l, expr)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tlsServer serves TLS on 127.0.0.1 with a fresh self-signed certificate
// and returns its address and the certificate's SHA-256.
func tlsServer(t *testing.T) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c2.test"}, DNSNames: []string{"c2.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	sum := sha256.Sum256(der)
	return ln.Addr().String(), hex.EncodeToString(sum[:])
}

// runDaemon builds stackprint, seeds its DB with the certificate of a
// loopback TLS server, starts it, gets it to fingerprint the server and
// alert, and returns its /metrics.
func runDaemon(t *testing.T) scrape {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "stackprint")
	build := exec.Command("go", "build", "-o", bin, "github.com/stackprint/stackprint/cmd/stackprint")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv, certSHA := tlsServer(t)
	host, port, _ := net.SplitHostPort(srv)

	def, err := os.ReadFile("../configs/stackprint.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	cfg := strings.NewReplacer(
		"/var/lib/stackprint/stackprint.db", p("stackprint.db"),
		"/opt/zeek/logs/current/ssl.log", p("ssl.log"),
		"/opt/zeek/logs/current/conn.log", p("conn.log"),
		"/var/log/suricata/eve.json", p("eve.json"),
		"/var/log/stackprint/alerts.ndjson", p("alerts.ndjson"),
		"/var/log/stackprint/stackprint.log", p("stackprint.log"),
		"poll_interval: 250ms", "poll_interval: 50ms",
		"listen: 127.0.0.1:9464", "listen: 127.0.0.1:0",
		"  allow: []", "  allow: [127.0.0.0/8]",
	).Replace(string(def))
	if err := os.WriteFile(p("c.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := "kind,value,label,category,source,confidence,notes\ncert_sha256," + certSHA + ",test-c2,c2,contrib test,high,\n"
	if err := os.WriteFile(p("seed.csv"), []byte(seed), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "db", "import", "-c", p("c.yaml"), p("seed.csv")).CombinedOutput(); err != nil {
		t.Fatalf("db import: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "run", "-c", p("c.yaml"))
	stderr := &syncBuf{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	re := regexp.MustCompile(`metrics and health listening" addr=(\S+)`)
	var addr string
	waitUntil(t, "the metrics listener in the daemon's log", 20*time.Second, func() bool {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})

	// A Zeek ssl.log naming the server, then a line the parser refuses.
	f, err := os.Create(p("ssl.log"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tssl\n#open\t2026-12-06-00-00-00\n"+
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tserver_name\n#types\ttime\tstring\taddr\tport\taddr\tport\tstring\n"+
		"%d.000000\tCcontrib1\t127.0.0.2\t40000\t%s\t%s\tc2.test\n"+
		"%d.000000\tCcontrib2\tnot-an-address\t40001\t%s\t%s\tc2.test\n", time.Now().Unix(), host, port, time.Now().Unix(), host, port)
	f.Close()
	waitUntil(t, "the alert for the seeded certificate", 60*time.Second, func() bool {
		b, _ := os.ReadFile(p("alerts.ndjson"))
		return strings.Contains(string(b), certSHA)
	})

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s\n%s", resp.Status, body)
	}
	sc := parseScrape(t, string(body))
	for _, must := range []string{"stackprint_probes_total", "stackprint_matches_total", "stackprint_alerts_total", "stackprint_parse_errors_total"} {
		if _, ok := sc[must]; !ok {
			t.Fatalf("the scenario did not produce %s; /metrics:\n%s", must, body)
		}
	}
	return sc
}

type promRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int            `json:"id"`
		Title      string         `json:"title"`
		Datasource map[string]any `json:"datasource"`
		Targets    []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestMonitoringAgainstMetrics: the alerting rules and the dashboard are
// well formed, and use only metrics and labels the running daemon exports.
func TestMonitoringAgainstMetrics(t *testing.T) {
	var rules promRules
	b, err := os.ReadFile("monitoring/prometheus-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("prometheus-alerts.yaml: %v", err)
	}
	var dash dashboard
	readJSONFile(t, "monitoring/grafana-dashboard.json", &dash)

	sc := runDaemon(t)

	seen := map[string]bool{}
	durRe := regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("rule group %q is empty or unnamed", g.Name)
		}
		for _, r := range g.Rules {
			where := "alert " + r.Alert
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("%s: empty or duplicate name", where)
			}
			seen[r.Alert] = true
			if r.For != "" && !durRe.MatchString(r.For) {
				t.Errorf("%s: for %q is not a Prometheus duration", where, r.For)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity label %q, want critical or warning", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description annotations are required", where)
			}
			checkExpr(t, where, r.Expr, sc)
		}
	}
	// The conditions the alerting rules must cover.
	for _, want := range []string{"StackprintQueueBacklogGrowing", "StackprintParseErrors", "StackprintCheckpointLag",
		"StackprintReloadFailed", "StackprintProbeErrorRatio", "StackprintOutputStalled", "StackprintInputSilent",
		"StackprintOutputWriteErrors"} {
		if !seen[want] {
			t.Errorf("no alerting rule %s", want)
		}
	}

	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatal("dashboard: uid, title and panels are required")
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
		if q, ok := v.Query.(map[string]any); ok {
			if m := regexp.MustCompile(`label_values\((\w+), (\w+)\)`).FindStringSubmatch(fmt.Sprint(q["query"])); m != nil {
				checkExpr(t, "variable "+v.Name, m[1]+`{`+m[2]+`=~".+"}`, sc)
			}
		}
	}
	if !vars["datasource"] {
		t.Error("dashboard: no datasource variable (the importer must pick one)")
	}
	ids := map[int]bool{}
	for _, pnl := range dash.Panels {
		where := fmt.Sprintf("panel %d %q", pnl.ID, pnl.Title)
		if ids[pnl.ID] {
			t.Errorf("%s: duplicate id", where)
		}
		ids[pnl.ID] = true
		if pnl.Datasource["uid"] != "${datasource}" {
			t.Errorf("%s: datasource %v, want the ${datasource} variable", where, pnl.Datasource)
		}
		if len(pnl.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		for _, tg := range pnl.Targets {
			for _, v := range regexp.MustCompile(`\$(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[v[1]] && !strings.HasPrefix(v[1], "__") {
					t.Errorf("%s: undefined variable $%s", where, v[1])
				}
			}
			checkExpr(t, where, tg.Expr, sc)
		}
	}

	// Every stackprint metric is on the dashboard: a new one shows up here.
	used := map[string]bool{}
	for _, pnl := range dash.Panels {
		for _, tg := range pnl.Targets {
			refs, _, _ := promqlRefs(tg.Expr)
			for _, r := range refs {
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(r.metric, "_bucket"), "_sum"), "_count")] = true
			}
		}
	}
	// Left off on purpose, with the reason.
	notShown := map[string]string{
		"stackprint_dedup_cache_hit_ratio": "the panel computes the ratio from the counters over the chosen range",
	}
	var missing []string
	for name := range sc {
		if notShown[name] != "" {
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(name, "stackprint_") && !used[base] && !used[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	missing = slices.Compact(missing)
	if len(missing) > 0 {
		t.Errorf("stackprint metrics on no dashboard panel: %v", missing)
	}
}
