package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// scanSamples holds the public sample logs (provenance in its README).
const scanSamples = "../../testdata/logs"

func scanField(t *testing.T, out, key string) int {
	t.Helper()
	m := regexp.MustCompile(` ` + key + `=([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("summary %q has no %s", out, key)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func TestScanNoProbe(t *testing.T) {
	tsv := filepath.Join(scanSamples, "zeek-tsv-ssl.brim-wrccdc2018.head200.log")
	eve := filepath.Join(scanSamples, "suricata-eve.beats-eve-small.json")
	js := filepath.Join(scanSamples, "zeek-json-streaming-ssl.brim-wrccdc2018.head200.ndjson")
	for _, p := range []string{tsv, eve, js} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("sample log missing from the repository: %v", err)
		}
	}
	// A gzip copy of the TSV sample: read decompressed, detected as Zeek.
	raw, _ := os.ReadFile(tsv)
	gz := filepath.Join(t.TempDir(), "ssl.log.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	if err := os.WriteFile(gz, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The allow list puts the samples' private servers in scope.
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	def, err := os.ReadFile("../../configs/stackprint.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(def), "  allow: []", "  allow: [10.0.0.0/8]", 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if err := cmdScan(context.Background(), []string{"--no-probe", "-c", cfg, tsv, eve, gz, "--capacity", "1000"}, &out, &errb); err != nil {
		t.Fatalf("scan: %v\n%s", err, errb.String())
	}
	s := out.String()
	if strings.Count(s, "\n") != 1 || !strings.HasPrefix(s, "scan: ") {
		t.Fatalf("summary is not one line: %q", s)
	}
	// 209 + 8 + 209 lines; 200 + 2 + 200 events (see tailer/samples_test.go).
	if scanField(t, s, "files") != 3 || scanField(t, s, "lines") != 426 || scanField(t, s, "events") != 402 || scanField(t, s, "parse_errors") != 0 {
		t.Errorf("summary %q", s)
	}
	distinct, deduped, oos, probe := scanField(t, s, "distinct_targets"), scanField(t, s, "deduped"), scanField(t, s, "out_of_scope"), scanField(t, s, "to_probe")
	if deduped+oos+probe != 402 || oos+probe != distinct || distinct == 0 || deduped < 200 {
		// The gz file repeats the TSV file: all its targets are deduped.
		t.Errorf("dedup/scope counts %q", s)
	}
	for _, k := range []string{"seconds", "lines_per_s", "max_rss_mb"} {
		scanField(t, s, k)
	}

	// The JSON flavour of the same traffic gives the same targets.
	out.Reset()
	if err := cmdScan(context.Background(), []string{"--no-probe", js}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if got := scanField(t, out.String(), "distinct_targets"); got != distinct-2 { // minus the two eve servers
		t.Errorf("JSON distinct %d, TSV+eve %d: %s", got, distinct, out.String())
	}
}

func TestScanErrors(t *testing.T) {
	var out, errb bytes.Buffer
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"/nonexistent/ssl.log"}, "/nonexistent/ssl.log"}, // backfill: the file, before any DB
		{[]string{"--format", "syslog", "x.log"}, "syslog"},
		{[]string{"--no-probe"}, "no files"},
		{[]string{"--no-probe", "--format", "syslog", "x.log"}, "syslog"},
		{[]string{"--no-probe", "/nonexistent/conn.log"}, "/nonexistent/conn.log"},
	} {
		err := cmdScan(ctx, tc.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("scan %v = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
