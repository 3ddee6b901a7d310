package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/stackprint/stackprint/config"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), err
}

// The adversarial pass's reproductions: each passed `config check` and then
// failed in `run` (out of memory, refusal to start) or was accepted blindly.
// check and run must now both refuse them, with the same message.
func TestConfigCheckRefusesWhatRunCannotRun(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"huge queue", "scheduler:\n  queue_size: 2000000000\n", "stackprint.yaml:2: scheduler.queue_size: must be 1..1000000"},
		{"burst below one target", "probe:\n  conns_per_ip_burst: 5\n", "stackprint.yaml:2: probe.conns_per_ip_burst: per-IP connection burst 5 is below"},
		{"NUL in db.path", "db:\n  path: \"/var/lib/stackprint/x\\0.db\"\n", `stackprint.yaml:2: db.path: a path cannot contain a NUL byte`},
		{"huge dedup", "dedup:\n  capacity: 2000000000\n", "stackprint.yaml:2: dedup.capacity"},
		{"huge line", "tailer:\n  max_line_bytes: 2000000000\n", "stackprint.yaml:2: tailer.max_line_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "stackprint.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, checkErr := runCmd(t, "config", "check", "-c", path)
			if checkErr == nil || !strings.Contains(checkErr.Error(), tc.want) {
				t.Fatalf("config check: %v; want an error with %q", checkErr, tc.want)
			}
			_, runErr := runCmd(t, "run", "-c", path)
			if runErr == nil || runErr.Error() != checkErr.Error() {
				t.Fatalf("run: %v\nwant the same error as config check: %v", runErr, checkErr)
			}
		})
	}
}

// One pass reports every kind of problem, each with file:line and the
// field path: a YAML type error, an unknown key, failed field checks and an
// unknown rule id no longer come in separate rounds.
func TestConfigReportsAllErrorsInOnePass(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	text := `dedup:
  ttl: soon
  tll: 1h
scheduler:
  max_in_flight: 0
probe:
  jarm_sni: sometimes
rules:
  disabled: [no-such-rule]
scope:
  deny: ["::/0"]
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		path + `:2: dedup.ttl: "soon" is not a duration`,
		path + `:3: unknown key "dedup.tll"`,
		path + `:5: scheduler.max_in_flight: must be 1..1024`,
		path + `:7: probe.jarm_sni: must be "ip" or "observed"`,
		path + `:9: rules.disabled: rules: disabled rule "no-such-rule": no such rule`,
		path + `:11: scope.deny[0]:`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestConfigEnvExpansionAndDropIns(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stackprint.yaml")
	t.Setenv("SP_TEST_DB", filepath.Join(dir, "sp.db"))
	t.Setenv("SP_TEST_QUEUE", "4242")
	text := "db:\n  path: ${SP_TEST_DB}\nscheduler:\n  queue_size: ${SP_TEST_QUEUE}\nlog:\n  format: text\nrules:\n  params: {}\ndedup:\n  ttl: 2h\n" +
		"outputs:\n  alerts: \"$${NOT_EXPANDED}.ndjson\"\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(config.DropInDir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Drop-ins apply after the file, in name order; a list replaces.
	for name, body := range map[string]string{
		"10-scope.yaml": "scope:\n  allow: [127.0.0.0/8]\ndedup:\n  ttl: 3h\n",
		"20-more.yaml":  "scope:\n  allow: [192.0.2.0/24]\n",
		"ignored.txt":   "not: yaml: at all",
	} {
		if err := os.WriteFile(filepath.Join(config.DropInDir(path), name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DB.Path != filepath.Join(dir, "sp.db") || cfg.Scheduler.QueueSize != 4242 {
		t.Errorf("expansion: db.path %q queue_size %d", cfg.DB.Path, cfg.Scheduler.QueueSize)
	}
	if cfg.Outputs.Alerts != "${NOT_EXPANDED}.ndjson" {
		t.Errorf("$${…} escape: outputs.alerts = %q", cfg.Outputs.Alerts)
	}
	if !reflect.DeepEqual(cfg.Scope.Allow, []string{"192.0.2.0/24"}) || cfg.Dedup.TTL.String() != "3h0m0s" {
		t.Errorf("drop-ins: scope.allow %v dedup.ttl %v", cfg.Scope.Allow, cfg.Dedup.TTL)
	}

	// config show prints what run uses; it reads back to the same config.
	out, err := runCmd(t, "config", "show", "-c", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10-scope.yaml", "20-more.yaml", "queue_size: 4242", "ttl: 3h0m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("config show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ignored.txt") {
		t.Error("config show lists a file that is not *.yaml")
	}
	again, err := config.Parse([]byte(out))
	if err != nil {
		t.Fatalf("config show output does not parse: %v", err)
	}
	// (compared as YAML: an empty list and a nil one are the same config)
	if a, b := mustYAML(t, again), mustYAML(t, cfg); a != b {
		t.Errorf("config show does not round-trip:\n%s\n%s", a, b)
	}

	// An unset variable and an error in a drop-in name their file and line.
	os.Unsetenv("SP_TEST_QUEUE")
	if err := os.WriteFile(filepath.Join(config.DropInDir(path), "30-bad.yaml"), []byte("\nscheduler:\n  burst: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(path)
	for _, want := range []string{path + ":4: scheduler.queue_size: environment variable SP_TEST_QUEUE is not set",
		filepath.Join(config.DropInDir(path), "30-bad.yaml") + ":3: scheduler.burst: must be >= 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
