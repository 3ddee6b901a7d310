package contrib

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stackprint/stackprint/output"
	"github.com/stackprint/stackprint/zeeklog"
)

// Neither Zeek nor Suricata is packaged in Debian 12, so CI cannot load the
// package or run `suricata -T`. These tests check what can be checked
// without them: the zkg layout, that the script's Input record matches the
// columns and types of the stackprint_alert.log the output package writes,
// the Intel framework wiring, and the rules' syntax, sids and dataset
// against the dataset file the output package writes.

const zeekPkg = "zeek/stackprint"

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestZeekPackageLayout: zkg.meta is a [package] INI with a description and
// script_dir, and script_dir/__load__.zeek loads the main script.
func TestZeekPackageLayout(t *testing.T) {
	meta := readText(t, filepath.Join(zeekPkg, "zkg.meta"))
	if !strings.HasPrefix(meta, "[package]\n") {
		t.Fatal("zkg.meta: first line must be [package]")
	}
	keys := map[string]string{}
	last := ""
	for i, line := range strings.Split(meta, "\n")[1:] {
		switch {
		case strings.TrimSpace(line) == "":
		case line[0] == '\t' || line[0] == ' ': // continuation
			if last == "" {
				t.Fatalf("zkg.meta:%d: continuation without a key", i+2)
			}
			keys[last] += " " + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("zkg.meta:%d: %q is not key = value", i+2, line)
			}
			last = strings.TrimSpace(k)
			keys[last] = strings.TrimSpace(v)
		}
	}
	for _, k := range []string{"description", "script_dir", "tags"} {
		if keys[k] == "" {
			t.Errorf("zkg.meta: %s missing", k)
		}
	}
	if !strings.Contains(keys["depends"], "zeek >=") {
		t.Errorf("zkg.meta: depends %q names no Zeek version", keys["depends"])
	}
	load := readText(t, filepath.Join(zeekPkg, keys["script_dir"], "__load__.zeek"))
	if !regexp.MustCompile(`(?m)^@load \./main$`).MatchString(load) {
		t.Errorf("__load__.zeek does not load ./main: %q", load)
	}
	if _, err := os.Stat(filepath.Join(zeekPkg, keys["script_dir"], "main.zeek")); err != nil {
		t.Error(err)
	}
}

// zeekType maps the Zeek types the alert log's #types declares to those a
// script record may read them as.
func zeekRecord(t *testing.T, script, name string) [][2]string {
	t.Helper()
	m := regexp.MustCompile(`(?s)type ` + name + `: record \{(.*?)\};`).FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("main.zeek: no record %s", name)
	}
	var fields [][2]string
	for _, f := range regexp.MustCompile(`(?m)^\s*([a-z_]+): ([a-zA-Z_]+)( &optional)?;`).FindAllStringSubmatch(m[1], -1) {
		fields = append(fields, [2]string{f[1], f[2] + f[3]})
	}
	return fields
}

// TestZeekAlertLogRecord: every field of the Input framework record is a
// column of the real stackprint_alert.log with the same Zeek type, fields
// that can be unset ("-") are &optional, and the nested id record maps to
// the id.* columns.
func TestZeekAlertLogRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stackprint_alert.log")
	l, err := output.OpenAlertLog(path, zeeklog.Options{Format: zeeklog.TSV})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range fixtureAlerts() {
		if err := l.Write(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var names, types []string
	var rows [][]string
	for line := range strings.Lines(readText(t, path)) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "#fields\t"):
			names = strings.Split(line, "\t")[1:]
		case strings.HasPrefix(line, "#types\t"):
			types = strings.Split(line, "\t")[1:]
		case !strings.HasPrefix(line, "#"):
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	colType := map[string]string{}
	colIdx := map[string]int{}
	for i, n := range names {
		colType[n], colIdx[n] = types[i], i
	}
	unsetSomewhere := func(col string) bool {
		for _, r := range rows {
			if r[colIdx[col]] == "-" {
				return true
			}
		}
		return false
	}

	script := readText(t, filepath.Join(zeekPkg, "scripts", "main.zeek"))
	sub := map[string][][2]string{"AlertConn": zeekRecord(t, script, "AlertConn")}
	check := func(col, typ string) {
		base, optional := strings.CutSuffix(typ, " &optional")
		zt, ok := colType[col]
		if !ok {
			t.Errorf("main.zeek reads column %s; stackprint_alert.log has none (columns: %v)", col, names)
			return
		}
		if base != zt {
			t.Errorf("column %s is %s in the log, %s in main.zeek", col, zt, base)
		}
		if unsetSomewhere(col) && !optional {
			t.Errorf("column %s is unset (-) in some alerts; main.zeek must mark it &optional", col)
		}
	}
	for _, f := range zeekRecord(t, script, "AlertLine") {
		if inner, ok := sub[strings.TrimSuffix(f[1], " &optional")]; ok {
			for _, g := range inner {
				check(f[0]+"."+g[0], g[1])
			}
			continue
		}
		check(f[0], f[1])
	}
}

// TestZeekIntelWiring: the package loads the frameworks the issue names,
// adds its Intel file to Intel::read_files, and the default paths are the
// ones the README tells the operator to configure.
func TestZeekIntelWiring(t *testing.T) {
	script := readText(t, filepath.Join(zeekPkg, "scripts", "main.zeek"))
	for _, want := range []string{
		"@load base/frameworks/intel", "@load base/frameworks/input", "@load frameworks/intel/seen",
		"@load frameworks/intel/do_notice", "redef Intel::read_files += { intel_file };",
		"$reader=Input::READER_ASCII", "$mode=Input::STREAM", "$want_record=T", "$identifier=a$alert_id",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("main.zeek lacks %q", want)
		}
	}
	readme := readText(t, "../README.md") + readText(t, filepath.Join(zeekPkg, "README.md"))
	for _, c := range []string{"intel_file", "alert_log"} {
		m := regexp.MustCompile(`const ` + c + ` = "([^"]+)" &redef;`).FindStringSubmatch(script)
		if m == nil {
			t.Fatalf("main.zeek: no redef-able const %s", c)
		}
		if !strings.Contains(readme, m[1]) {
			t.Errorf("%s default %s is not in the README's stackprint config snippet", c, m[1])
		}
	}
	// The braces of the script balance (a cheap syntax guard without Zeek).
	if strings.Count(script, "{") != strings.Count(script, "}") || strings.Count(script, "[") != strings.Count(script, "]") {
		t.Error("main.zeek: unbalanced braces or brackets")
	}
}

// suricataRule is one parsed rule: header fields and options in order.
type suricataRule struct {
	action, proto, src, sport, dir, dst, dport string
	opts                                       [][2]string
}

var ruleHeader = regexp.MustCompile(`^(alert|pass|drop|reject) (ip|tcp|udp|tls) (\S+) (\S+) (->|<>) (\S+) (\S+) \((.*)\)$`)

func parseSuricataRule(t *testing.T, line string) suricataRule {
	t.Helper()
	m := ruleHeader.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("not a rule: %q", line)
	}
	r := suricataRule{action: m[1], proto: m[2], src: m[3], sport: m[4], dir: m[5], dst: m[6], dport: m[7]}
	body := m[8]
	for body = strings.TrimSpace(body); body != ""; body = strings.TrimSpace(body) {
		// An option ends at the first ';' outside a quoted string.
		end, inQuote := -1, false
		for i := 0; i < len(body); i++ {
			switch {
			case body[i] == '\\':
				i++
			case body[i] == '"':
				inQuote = !inQuote
			case body[i] == ';' && !inQuote:
				end = i
			}
			if end >= 0 {
				break
			}
		}
		if end < 0 {
			t.Fatalf("option without ';' in %q", body)
		}
		k, v, _ := strings.Cut(body[:end], ":")
		r.opts = append(r.opts, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		body = body[end+1:]
	}
	return r
}

// TestSuricataRules: each rule parses, has a quoted msg, a sid in the range
// for local rules (unique), a rev, and matches the dataset on the ip.src or
// ip.dst sticky buffer with a load path the README documents; the dataset
// file the output package writes is what `type ip` loads (one address per
// line).
func TestSuricataRules(t *testing.T) {
	text := readText(t, "suricata/stackprint.rules")
	sids := map[int]bool{}
	n := 0
	for i, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		r := parseSuricataRule(t, line)
		keys := []string{}
		get := func(k string) string {
			for _, o := range r.opts {
				if o[0] == k {
					return o[1]
				}
			}
			return ""
		}
		for _, o := range r.opts {
			keys = append(keys, o[0])
		}
		if msg := get("msg"); !strings.HasPrefix(msg, `"STACKPRINT `) || !strings.HasSuffix(msg, `"`) {
			t.Errorf("line %d: msg %s: want a quoted string starting STACKPRINT", i+1, msg)
		}
		sid, err := strconv.Atoi(get("sid"))
		if err != nil || sid < 1000000 || sid > 1999999 || sids[sid] {
			t.Errorf("line %d: sid %q: want a unique number in 1000000-1999999 (local rules)", i+1, get("sid"))
		}
		sids[sid] = true
		if _, err := strconv.Atoi(get("rev")); err != nil {
			t.Errorf("line %d: rev %q", i+1, get("rev"))
		}
		ds := slices.Index(keys, "dataset")
		if ds < 1 || (keys[ds-1] != "ip.dst" && keys[ds-1] != "ip.src") {
			t.Errorf("line %d: dataset must follow the ip.src or ip.dst sticky buffer (options %v)", i+1, keys)
			continue
		}
		args := strings.Split(get("dataset"), ",")
		for j := range args {
			args[j] = strings.TrimSpace(args[j])
		}
		if len(args) != 4 || args[0] != "isset" || args[1] != "stackprint" || args[2] != "type ip" || !strings.HasPrefix(args[3], "load /") {
			t.Errorf("line %d: dataset %q: want isset,stackprint, type ip, load /ABSOLUTE/PATH", i+1, get("dataset"))
			continue
		}
		file := strings.TrimPrefix(args[3], "load ")
		if !strings.Contains(readText(t, "../README.md"), file) {
			t.Errorf("line %d: dataset file %s is not the one the README configures", i+1, file)
		}
		if r.proto != "ip" {
			t.Errorf("line %d: protocol %s: the dataset holds servers of any protocol, want ip", i+1, r.proto)
		}
	}
	if n == 0 {
		t.Fatal("no rules")
	}

	// The file the rules load, as stackprint writes it.
	path := filepath.Join(t.TempDir(), "stackprint.lst")
	feed, err := output.OpenServerFeed(path, output.FeedSuricataDataset, output.FeedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range fixtureAlerts() {
		if _, err := feed.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	lines := 0
	for line := range strings.Lines(readText(t, path)) {
		line = strings.TrimSuffix(line, "\n")
		if _, err := netip.ParseAddr(line); err != nil {
			t.Errorf("dataset line %q: %v", line, err)
		}
		lines++
	}
	if lines == 0 {
		t.Error("the dataset file is empty: the fixtures should have flagged servers")
	}
}
