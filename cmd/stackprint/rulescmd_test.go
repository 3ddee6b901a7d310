package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/configs"
)

func TestRulesCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("version: 1\nrules:\n  - id: mine\n    name: Mine\n    severity: low\n    when: probe.has_jarm && event.resp_port == 8443\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("version: 1\nrules:\n  - id: broken\n    name: Broken\n    severity: low\n    when: probe.jarm > 1\n  - id: typo\n    name: T\n    severity: low\n    when: true\n    tag: [x]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"rules"}, args...), &out, &errb)
		return out.String(), errb.String(), err
	}

	out, _, err := run("check", good)
	if err != nil || !strings.Contains(out, good+": 1 rules ok") || !strings.Contains(out, "rules ok: 6 loaded, 6 active") {
		t.Fatalf("check good: %v\n%s", err, out)
	}
	out, _, err = run("check", filepath.Join(dir, "g*.yaml"))
	if err != nil || !strings.Contains(out, good+": 1 rules ok") {
		t.Fatalf("check a glob: %v\n%s", err, out)
	}
	_, errOut, err := run("check", good, bad)
	if err == nil || !strings.Contains(err.Error(), "2 problem(s)") {
		t.Fatalf("check bad: err %v", err)
	}
	for _, w := range []string{bad + ":6:22: rule broken: when: invalid operation", bad + ":11:5: rule typo: unknown key \"tag\""} {
		if !strings.Contains(errOut, w) {
			t.Errorf("problems lack %q:\n%s", w, errOut)
		}
	}
	// No file: the rules of the (embedded default) config.
	out, _, err = run("check")
	if err != nil || !strings.Contains(out, "rules ok: 5 loaded, 5 active") {
		t.Fatalf("check default config: %v\n%s", err, out)
	}
	cfg := strings.Replace(string(configs.DefaultYAML), "  disabled: []\n  # Rule params", "  disabled: [jarm_http_server]\n  # Rule params", 1)
	cfg = strings.Replace(cfg, "  files: []\n  # Do not load", "  files: ["+good+"]\n  # Do not load", 1)
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = run("list", "-c", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ID", "db_match", "1900001", "1h0m0s", "jarm_http_server", "disabled", "mine"} {
		if !strings.Contains(out, w) {
			t.Errorf("list lacks %q:\n%s", w, out)
		}
	}
	if _, _, err := run("frobnicate"); err == nil {
		t.Error("unknown subcommand accepted")
	}
}

func TestRulesAndOutputsConfigErrors(t *testing.T) {
	base := string(configs.DefaultYAML)
	dir := t.TempDir()
	badRules := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badRules, []byte("version: 1\nrules:\n  - {id: x, name: X, severity: low, when: nosuch}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edit  func(string) string
		wants []string
	}{
		{"bad alerts format", func(s string) string {
			return strings.Replace(s, "alerts_format: ndjson", "alerts_format: xml", 1)
		}, []string{"outputs.alerts_format", "xml"}},
		{"bad zeek format", func(s string) string { return strings.Replace(s, "zeek_format: tsv", "zeek_format: csv", 1) }, []string{"outputs.zeek_format"}},
		{"no alert output", func(s string) string {
			return strings.Replace(s, "alerts: /var/log/stackprint/alerts.ndjson", `alerts: ""`, 1)
		}, []string{"outputs.alerts", "alerts go nowhere"}},
		{"same file twice", func(s string) string {
			return strings.Replace(s, `eve: ""`, "eve: /var/log/stackprint/alerts.ndjson", 1)
		}, []string{"outputs.eve", "same file as outputs.alerts"}},
		{"tiny rotation", func(s string) string {
			return strings.Replace(s, "rotate_interval: 0s", "rotate_interval: 1s", 1)
		}, []string{"outputs.rotate_interval"}},
		{"rule file does not compile", func(s string) string {
			return strings.Replace(s, "  files: []\n  # Do not load", "  files: ["+badRules+"]\n  # Do not load", 1)
		}, []string{"rules: " + badRules + ":3:", "unknown name nosuch"}},
		{"unknown rule disabled", func(s string) string {
			return strings.Replace(s, "  disabled: []\n  # Rule params", "  disabled: [nosuch]\n  # Rule params", 1)
		}, []string{`disabled rule "nosuch"`}},
		{"param of the wrong type", func(s string) string {
			return strings.Replace(s, "  params: {}", "  params: {atsf_score: {threshold: high}}", 1)
		}, []string{"atsf_score param threshold"}},
		{"bad baseline", func(s string) string {
			return strings.Replace(s, "  baselines: []", "  baselines: [{server: 198.51.100.10, jarm: abc}]", 1)
		}, []string{"rules.baselines[0].server"}},
		{"baseline without fingerprint", func(s string) string {
			return strings.Replace(s, "  baselines: []", "  baselines: [{server: \"198.51.100.10:443\"}]", 1)
		}, []string{"rules.baselines[0]", "at least one of jarm"}},
		{"unknown rules key", func(s string) string {
			return strings.Replace(s, "  simulation: false", "  simulate: false", 1)
		}, []string{`unknown key "rules.simulate"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			edited := tc.edit(base)
			if edited == base {
				t.Fatal("edit did not apply: the default config changed")
			}
			_, err := config.Parse([]byte(edited))
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// Good non-default values.
	good := strings.Replace(base, "  baselines: []", "  baselines: [{server: \"[2001:db8::10]:443\", sni: WWW.Example.ORG., jarm: 2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5}]", 1)
	good = strings.Replace(good, "  suppress: {}", "  suppress: {\"*\": 0s, db_match: 15m}", 1)
	good = strings.Replace(good, "  params: {}", "  params: {atsf_score: {threshold: 0.9, min_observations: 10}}", 1)
	cfg, err := config.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.Rules.Options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Baselines == nil || len(opts.Suppress) != 2 || opts.Params["atsf_score"]["threshold"] != 0.9 {
		t.Fatalf("options %+v", opts)
	}
}
