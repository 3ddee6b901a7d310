package rules

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

const (
	jarmC2    = "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5"
	jarmOther = "07d14d16d21d21d07c42d41d00041d24a458a375eef0c576d23a7bab9a9fb1"
	certSHA1  = "6affac1fc1bc9b8bd5a8ca3e6b5b5ce4e2a5fd0b"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func event(uid, orig, resp, sni string, ts time.Time) stackprint.Event {
	return stackprint.Event{TS: ts, UID: uid, Orig: netip.MustParseAddrPort(orig), Resp: netip.MustParseAddrPort(resp), SNI: sni, Source: "zeek-ssl", Kind: "zeek_ssl"}
}

func okResult(ev stackprint.Event, jarm string) stackprint.Result {
	return stackprint.Result{Target: ev.Target(), Started: ev.TS, Status: stackprint.StatusOK, Conns: 10, JARM: jarm}
}

func newEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func ruleIDs(vs []stackprint.Verdict) string {
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.Rule+"/"+v.Severity)
	}
	return strings.Join(ids, ",")
}

func TestDefaultRulesLoad(t *testing.T) {
	set, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range set.Active() {
		ids = append(ids, r.ID)
		if !strings.HasPrefix(r.File, "builtin:") || r.Name == "" || r.Description == "" || r.SignatureID == 0 || r.Suppress == 0 {
			t.Errorf("rule %s is missing metadata: %+v", r.ID, r)
		}
	}
	if got, want := strings.Join(ids, ","), "db_match,atsf_score,sslbl_cert,jarm_http_server,atsf_near"; got != want {
		t.Fatalf("default rules %s, want %s", got, want)
	}
}

func TestDefaultRules(t *testing.T) {
	ev := event("C1", "10.0.0.5:51234", "203.0.113.7:443", "evil.example", t0)
	mustBase, err := ParseBaseline(jarmOther, "", "")
	if err != nil {
		t.Fatal(err)
	}
	own := event("C2", "10.0.0.6:50000", "198.51.100.10:443", "www.example.org", t0)
	e := newEngine(t, Options{Files: []string{"testdata/own_drift.yaml"}, Baselines: StaticBaselines{
		{IP: netip.MustParseAddr("198.51.100.10"), Port: 443}: mustBase,
	}})
	tests := []struct {
		name  string
		ev    stackprint.Event
		res   func(stackprint.Result) stackprint.Result
		jarm  string
		m     []stackprint.Match
		want  string
		match string // label of the verdict's match
	}{
		{name: "no match, no alert", ev: ev, jarm: jarmC2},
		{name: "high jarm", ev: ev, jarm: jarmC2, m: []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "c2", Confidence: "high"}}, want: "db_match/high", match: "c2"},
		{name: "medium jarm", ev: ev, jarm: jarmC2, m: []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "c2", Confidence: "medium"}}, want: "db_match/medium", match: "c2"},
		{name: "unset confidence is medium", ev: ev, jarm: jarmC2, m: []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "c2"}}, want: "db_match/medium", match: "c2"},
		{name: "curated atsf alerts like a jarm", ev: ev, jarm: jarmOther, m: []stackprint.Match{{Kind: "atsf", Value: strings.Repeat("c2", 32), Label: "c2 stack", Confidence: "high"}}, want: "db_match/high", match: "c2 stack"},
		{name: "learned atsf is left to atsf_score", ev: ev, jarm: jarmOther, m: []stackprint.Match{{Kind: "atsf", Value: strings.Repeat("c2", 32), Label: "learned", Confidence: "high", BlockCount: 1, TopCount: 3}}},
		{name: "low jarm alone does not alert", ev: ev, jarm: jarmC2, m: []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "java", Confidence: "low"}}},
		{name: "strongest match is reported", ev: ev, jarm: jarmC2, m: []stackprint.Match{
			{Kind: "jarm", Value: jarmC2, Label: "weak", Confidence: "low"},
			{Kind: "jarm", Value: jarmC2, Label: "strong", Confidence: "high"},
		}, want: "db_match/high", match: "strong"},
		{name: "low jarm plus IIS banner", ev: ev, jarm: jarmC2,
			res: func(r stackprint.Result) stackprint.Result {
				r.HTTP = &stackprint.HTTPFacts{StatusCode: 200, Server: "Microsoft-IIS/10.0"}
				return r
			},
			m: []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "cobalt-strike java", Confidence: "low"}}, want: "jarm_http_server/high", match: "cobalt-strike java"},
		{name: "low jarm plus other banner", ev: ev, jarm: jarmC2,
			res: func(r stackprint.Result) stackprint.Result {
				r.HTTP = &stackprint.HTTPFacts{StatusCode: 200, Server: "gunicorn"}
				return r
			},
			m: []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "x", Confidence: "low"}}},
		{name: "sslbl certificate", ev: ev, jarm: jarmOther,
			res: func(r stackprint.Result) stackprint.Result {
				r.Cert = &stackprint.CertFacts{SHA1: certSHA1, SHA256: strings.Repeat("ab", 32)}
				return r
			},
			m: []stackprint.Match{{Kind: "cert_sha1", Value: certSHA1, Label: "Dridex C&C", Source: "abuse.ch SSLBL", Confidence: "high"}}, want: "sslbl_cert/high", match: "Dridex C&C"},
		{name: "own server unchanged", ev: own, jarm: jarmOther},
		{name: "own server drifted", ev: own, jarm: jarmC2, want: "own_drift/medium"},
		{name: "own server unreachable is not drift", ev: own, jarm: stackprint.ZeroJARM,
			res: func(r stackprint.Result) stackprint.Result { r.Status = stackprint.StatusTimeout; return r }},
		{name: "own server partial jarm is not drift", ev: own, jarm: jarmC2,
			res: func(r stackprint.Result) stackprint.Result { r.Status = stackprint.StatusPartial; return r }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A distinct client per case keeps suppression out of the way.
			ev := tc.ev
			ev.Orig = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), 40000)
			r := okResult(ev, tc.jarm)
			if tc.res != nil {
				r = tc.res(r)
			}
			vs := e.Judge(ev, r, tc.m)
			if got := ruleIDs(vs); got != tc.want {
				t.Fatalf("verdicts %q, want %q", got, tc.want)
			}
			if len(vs) == 1 {
				v := vs[0]
				if v.Match.Label != tc.match {
					t.Errorf("verdict match %q, want %q", v.Match.Label, tc.match)
				}
				if v.RuleName == "" || v.Category == "" || v.SignatureID < sidBase || len(v.Tags) == 0 || v.Simulated {
					t.Errorf("verdict metadata: %+v", v)
				}
			}
		})
	}
}

// The ATSF score needs the DB's counts, which stackprint.Match does not
// carry yet: run the rule on an environment directly.
func TestATSFScoreRule(t *testing.T) {
	set, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rule *Rule
	for _, r := range set.Rules {
		if r.ID == "atsf_score" {
			rule = r
		}
	}
	e := newEngine(t, Options{})
	for _, tc := range []struct {
		block, top int
		want       bool
	}{{5, 0, true}, {40, 0, true}, {4, 0, false}, {9, 1, false}, {0, 0, false}} {
		m := EnvMatch{Kind: "atsf", Value: strings.Repeat("a", 64), Label: "learned", Weight: WeightMedium, BlockCount: tc.block, TopCount: tc.top}.withScore()
		env := Env{Matches: []EnvMatch{m}, Match: m}
		if got, _ := e.eval(rule, &env); got != tc.want {
			t.Errorf("block %d top %d: fired %v, want %v (score %.2f)", tc.block, tc.top, got, tc.want, m.Score)
		}
	}
}

func TestSuppression(t *testing.T) {
	e := newEngine(t, Options{})
	m := []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "c2", Confidence: "high"}}
	judge := func(orig string, at time.Duration) []stackprint.Verdict {
		ev := event("C", orig, "203.0.113.7:443", "evil.example", t0.Add(at))
		return e.Judge(ev, okResult(ev, jarmC2), m)
	}
	if vs := judge("10.0.0.5:1000", 0); len(vs) != 1 || vs[0].Suppressed != 0 {
		t.Fatalf("first event: %+v", vs)
	}
	for i, at := range []time.Duration{time.Minute, 30 * time.Minute, -time.Hour /* older event, logged late */, 59 * time.Minute} {
		if vs := judge("10.0.0.5:1001", at); len(vs) != 0 {
			t.Fatalf("event %d inside the window alerted: %+v", i, vs)
		}
	}
	// Another client is another key.
	if vs := judge("10.0.0.9:1000", time.Minute); len(vs) != 1 {
		t.Fatalf("other client: %+v", vs)
	}
	vs := judge("10.0.0.5:1002", time.Hour)
	if len(vs) != 1 || vs[0].Suppressed != 4 {
		t.Fatalf("first event after the window: %+v, want one verdict with 4 suppressed", vs)
	}
	if vs := judge("10.0.0.5:1003", time.Hour+time.Second); len(vs) != 0 {
		t.Fatalf("the new window suppresses: %+v", vs)
	}
	st := e.Stats()
	if st.Fired != 3 || st.Suppressed != 5 || st.SuppressTable != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSuppressOverrides(t *testing.T) {
	m := []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "c2", Confidence: "high"}}
	count := func(e *Engine) int {
		n := 0
		for i := range 3 {
			ev := event("C", "10.0.0.5:1000", "203.0.113.7:443", "", t0.Add(time.Duration(i)*time.Minute))
			n += len(e.Judge(ev, okResult(ev, jarmC2), m))
		}
		return n
	}
	if n := count(newEngine(t, Options{Suppress: map[string]time.Duration{"db_match": 0}})); n != 3 {
		t.Errorf("db_match unsuppressed: %d alerts, want 3", n)
	}
	if n := count(newEngine(t, Options{Suppress: map[string]time.Duration{"*": 0, "db_match": time.Hour}})); n != 1 {
		t.Errorf("an id beats *: %d alerts, want 1", n)
	}
	if n := count(newEngine(t, Options{Suppress: map[string]time.Duration{"*": 90 * time.Second}})); n != 2 {
		t.Errorf("* of 90s over three events a minute apart: %d alerts, want 2", n)
	}
	for _, bad := range []map[string]time.Duration{{"nosuch": 0}, {"db_match": -time.Second}} {
		if _, err := New(Options{Suppress: bad}); err == nil {
			t.Errorf("suppress %v accepted", bad)
		}
	}
}

func TestSuppressionCapacityFailsOpen(t *testing.T) {
	e := newEngine(t, Options{SuppressCapacity: 2})
	m := []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "c2", Confidence: "high"}}
	n := 0
	for round := range 2 {
		for _, orig := range []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"} {
			ev := event("C", orig, "203.0.113.7:443", "", t0.Add(time.Duration(round)*time.Second))
			n += len(e.Judge(ev, okResult(ev, jarmC2), m))
		}
	}
	// Three keys through a table of two: every event evicts the key that
	// comes next, so all six alert rather than any being lost.
	if n != 6 {
		t.Fatalf("%d alerts, want 6", n)
	}
}

func TestSimulation(t *testing.T) {
	m := []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "c2", Confidence: "high"}}
	ev := event("C", "10.0.0.5:1000", "203.0.113.7:443", "", t0)
	e := newEngine(t, Options{Simulation: true})
	if vs := e.Judge(ev, okResult(ev, jarmC2), m); len(vs) != 1 || !vs[0].Simulated {
		t.Fatalf("simulation: %+v", vs)
	}
	// Per rule: a file that marks one rule simulate.
	path := writeRules(t, `
version: 1
rules:
  - id: trial
    name: a rule on trial
    severity: low
    simulate: true
    when: probe.has_jarm
`)
	e = newEngine(t, Options{Files: []string{path}})
	vs := e.Judge(ev, okResult(ev, jarmC2), m)
	if got := ruleIDs(vs); got != "db_match/high,trial/low" || vs[0].Simulated || !vs[1].Simulated {
		t.Fatalf("per-rule simulate: %s %+v", got, vs)
	}
}

func writeRules(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(strings.TrimPrefix(text, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRuleErrors(t *testing.T) {
	tests := []struct {
		name, text string
		wants      []string
	}{
		{"unknown key", `
version: 1
rules:
  - id: a
    name: A
    severity: low
    when: true
    supress: 1h
`, []string{":7:5: rule a: unknown key \"supress\""}},
		{"unknown top key", `
version: 1
rule: []
`, []string{":2:1: unknown key \"rule\"", "no rules key"}},
		{"type error in when", `
version: 1
rules:
  - id: a
    name: A
    severity: low
    when: probe.jarm > 3
`, []string{":6:22: rule a: when: invalid operation: > (mismatched types string and int)"}},
		{"unknown field", `
version: 1
rules:
  - id: a
    name: A
    severity: low
    when: 'probe.jarmm == ""'
`, []string{":6:18: rule a: when: type rules.EnvProbe has no field jarmm"}},
		{"not a bool", `
version: 1
rules:
  - id: a
    name: A
    severity: low
    when: probe.jarm
`, []string{":6:", "rule a: when: expected bool, but got string"}},
		{"block scalar line", `
version: 1
rules:
  - id: a
    name: A
    severity: low
    when: |
      probe.has_jarm &&
        nosuch == 1
`, []string{":8: rule a: when: unknown name nosuch"}},
		{"unknown param", `
version: 1
rules:
  - id: a
    name: A
    severity: low
    params: {limit: 3}
    when: probe.conns > params.limt
`, []string{":7:32: rule a: when: unknown param \"limt\" (declared: limit)"}},
		{"bad regex param", `
version: 1
rules:
  - id: a
    name: A
    severity: low
    params: {re: "a("}
    when: probe.http.server matches params.re
`, []string{"rule a: when:", "missing closing )"}},
		{"bad severity and missing name", `
version: 1
rules:
  - id: a
    severity: urgent
    when: true
`, []string{":3:5: rule a: name: required", ":4:15: rule a: severity \"urgent\""}},
		{"severity_expr type", `
version: 1
rules:
  - id: a
    name: A
    severity: low
    severity_expr: probe.conns
    when: true
`, []string{":6:20: rule a: severity_expr: expected string, but got int"}},
		{"duplicate id", `
version: 1
rules:
  - {id: a, name: A, severity: low, when: "true"}
  - {id: a, name: B, severity: low, when: "true"}
`, []string{":4: rule a: duplicate id (also at line 3)"}},
		{"bad id and suppress", `
version: 1
rules:
  - id: Bad-ID
    name: A
    severity: low
    suppress: soon
    when: "true"
`, []string{":3:9: rule Bad-ID: id: want lower case", ":6:15: rule Bad-ID: suppress: time: invalid duration"}},
		{"yaml syntax", "version: 1\nrules:\n  - id: a\n   name: b\n", []string{":2: did not find expected"}},
		{"wrong version", "version: 2\nrules: []\n", []string{":1:10: version \"2\""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRules(t, tc.text)
			_, err := New(Options{NoBuiltin: true, Files: []string{path}})
			if err == nil {
				t.Fatal("accepted a bad rule file")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), path) {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestOverridesAndParams(t *testing.T) {
	m := []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "java", Confidence: "low"}}
	ev := event("C", "10.0.0.5:1000", "203.0.113.7:443", "", t0)
	// Lowering db_match's min_weight from the config makes low matches alert.
	e := newEngine(t, Options{Params: map[string]map[string]any{"db_match": {"min_weight": 0.3}}})
	if got := ruleIDs(e.Judge(ev, okResult(ev, jarmC2), m)); got != "db_match/low" {
		t.Fatalf("with min_weight 0.3: %q", got)
	}
	for _, bad := range []map[string]map[string]any{
		{"db_match": {"min_wieght": 0.3}},
		{"db_match": {"min_weight": "low"}},
		{"nosuch": {"x": 1}},
	} {
		if _, err := New(Options{Params: bad}); err == nil {
			t.Errorf("params %v accepted", bad)
		}
	}
	// Disabled rules do not run; an unknown id is an error.
	m[0].Confidence = "high"
	e = newEngine(t, Options{Disabled: []string{"db_match"}})
	if vs := e.Judge(ev, okResult(ev, jarmC2), m); len(vs) != 0 {
		t.Fatalf("disabled db_match fired: %+v", vs)
	}
	if _, err := New(Options{Disabled: []string{"nosuch"}}); err == nil {
		t.Error("disabling an unknown rule accepted")
	}
	// A file replaces a default rule with the same id.
	path := writeRules(t, `
version: 1
rules:
  - id: db_match
    name: mine
    severity: critical
    each_match: true
    when: match.label == "java"
`)
	e = newEngine(t, Options{Files: []string{filepath.Dir(path)}})
	if vs := e.Judge(ev, okResult(ev, jarmC2), m); ruleIDs(vs) != "db_match/critical" || vs[0].RuleName != "mine" {
		t.Fatalf("override: %+v", vs)
	}
}

func TestReloadKeepsOldRulesOnError(t *testing.T) {
	path := writeRules(t, `
version: 1
rules:
  - {id: one, name: One, severity: low, when: "probe.has_jarm"}
`)
	e := newEngine(t, Options{NoBuiltin: true, Files: []string{path}})
	ev := event("C", "10.0.0.5:1000", "203.0.113.7:443", "", t0)
	if got := ruleIDs(e.Judge(ev, okResult(ev, jarmC2), nil)); got != "one/low" {
		t.Fatalf("before reload: %q", got)
	}
	if err := os.WriteFile(path, []byte("version: 1\nrules:\n  - {id: two, name: Two, severity: low, when: nosuch}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := e.Reload(Options{NoBuiltin: true, Files: []string{path}})
	if err == nil || !strings.Contains(err.Error(), "previous rules kept") || !strings.Contains(err.Error(), path+":3:") {
		t.Fatalf("bad reload: %v", err)
	}
	if got := ruleIDs(e.Judge(ev, okResult(ev, jarmC2), nil)); got != "one/low" {
		t.Fatalf("after a bad reload: %q", got)
	}
	if st := e.Stats(); st.ReloadErrors != 1 || st.Reloads != 1 || st.LastError == "" {
		t.Fatalf("stats after a bad reload: %+v", st)
	}
	if err := os.WriteFile(path, []byte("version: 1\nrules:\n  - {id: two, name: Two, severity: high, when: probe.has_jarm}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(Options{NoBuiltin: true, Files: []string{path}, Simulation: true}); err != nil {
		t.Fatal(err)
	}
	vs := e.Judge(ev, okResult(ev, jarmC2), nil)
	if ruleIDs(vs) != "two/high" || !vs[0].Simulated {
		t.Fatalf("after reload: %+v", vs)
	}
	if st := e.Stats(); st.ReloadErrors != 1 || st.Reloads != 2 || st.LastError != "" || !st.Simulation {
		t.Fatalf("stats after a good reload: %+v", st)
	}
}

func TestReloadWhileJudging(t *testing.T) {
	e := newEngine(t, Options{})
	m := []stackprint.Match{{Kind: "jarm", Value: jarmC2, Label: "c2", Confidence: "high"}}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := event("C", netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)}), 1).String(), "203.0.113.7:443", "", t0)
				if vs := e.Judge(ev, okResult(ev, jarmC2), m); len(vs) != 1 {
					t.Errorf("verdicts %+v", vs)
					return
				}
			}
		})
	}
	for range 20 {
		if err := e.Reload(Options{}); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestEvalErrorsAreCounted(t *testing.T) {
	path := writeRules(t, `
version: 1
rules:
  - {id: cidr, name: C, severity: low, when: 'in_cidr(event.resp_ip, "not-a-prefix")'}
  - {id: own, name: O, severity: info, when: 'in_cidr(event.resp_ip, "203.0.113.0/24", "2001:db8::/32")'}
`)
	e := newEngine(t, Options{NoBuiltin: true, Files: []string{path}})
	ev := event("C", "10.0.0.5:1000", "203.0.113.7:443", "", t0)
	if got := ruleIDs(e.Judge(ev, okResult(ev, jarmC2), nil)); got != "own/info" {
		t.Fatalf("verdicts %q", got)
	}
	if st := e.Stats(); st.EvalErrors != 1 {
		t.Fatalf("eval errors %d, want 1", st.EvalErrors)
	}
}

func TestZeroEngineIsTheSkeletonRule(t *testing.T) {
	tests := []struct {
		name    string
		matches []stackprint.Match
		wantSev string
		wantLab string
	}{
		{name: "no match"},
		{name: "single low", matches: []stackprint.Match{{Label: "a", Confidence: "low"}}, wantSev: "low", wantLab: "a"},
		{name: "strongest wins", matches: []stackprint.Match{{Label: "a", Confidence: "low"}, {Label: "b", Confidence: "high"}, {Label: "c", Confidence: "medium"}}, wantSev: "high", wantLab: "b"},
		{name: "empty confidence is medium", matches: []stackprint.Match{{Label: "x"}}, wantSev: "medium", wantLab: "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Engine{}.Judge(stackprint.Event{}, stackprint.Result{}, tc.matches)
			if tc.wantSev == "" {
				if len(v) != 0 {
					t.Fatalf("got %d verdicts, want none", len(v))
				}
				return
			}
			if len(v) != 1 || v[0].Rule != RuleDBMatch || v[0].Severity != tc.wantSev || v[0].Match.Label != tc.wantLab {
				t.Fatalf("got %+v, want one %s verdict severity %s label %s", v, RuleDBMatch, tc.wantSev, tc.wantLab)
			}
		})
	}
}

func TestParseBaseline(t *testing.T) {
	if _, err := ParseBaseline(stackprint.ZeroJARM, "", ""); err == nil {
		t.Error("zero JARM accepted as a baseline")
	}
	if _, err := ParseBaseline("", "", ""); err == nil {
		t.Error("empty baseline accepted")
	}
	if _, err := ParseBaseline("xyz", "", ""); err == nil {
		t.Error("bad JARM accepted")
	}
	b, err := ParseBaseline(strings.ToUpper(jarmC2), "", strings.Repeat("AB:", 31)+"AB")
	if err != nil || b.JARM != jarmC2 || b.CertSHA256 != strings.Repeat("ab", 32) {
		t.Fatalf("ParseBaseline: %+v %v", b, err)
	}
}

// Default signature ids (the built-in rules' and those derived from a rule
// id) are in the range Suricata and Snort keep for local rules, and clear
// of the dataset rules in contrib/suricata (1970001-1970099).
func TestDefaultSIDsAreLocal(t *testing.T) {
	local := func(sid int) bool {
		return sid >= 1_000_000 && sid <= 1_999_999 && (sid < 1_970_001 || sid > 1_970_099)
	}
	rs, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.Rules {
		if !local(r.SignatureID) {
			t.Errorf("built-in rule %s: sid %d", r.ID, r.SignatureID)
		}
	}
	for _, id := range []string{"a", "my_rule", "zz_9", strings.Repeat("x", 64)} {
		if sid := derivedSID(id); !local(sid) {
			t.Errorf("derived sid of %s: %d", id, sid)
		}
	}
	for i := range sidSpan {
		if !local(sidBase + i) {
			t.Fatalf("sid %d of the derived range is not local", sidBase+i)
		}
	}
}

// fingerprint_drift is retired (the watch list took drift over): a config
// that still disables it, sets its params or its suppression loads.
func TestRetiredRuleStillLoads(t *testing.T) {
	if _, err := Load(Options{Disabled: []string{"fingerprint_drift"}, Suppress: map[string]time.Duration{"fingerprint_drift": time.Hour},
		Params: map[string]map[string]any{"fingerprint_drift": {"x": 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Disabled: []string{"no_such_rule"}}); err == nil {
		t.Fatal("an unknown rule id was accepted")
	}
}
