package output

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

func TestZeekEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "evil.example", "evil.example"},
		{"empty", "", "(empty)"},
		{"unset marker", "-", `\x2d`},
		{"empty marker", "(empty)", `\x28empty)`},
		{"dash inside", "a-b", "a-b"},
		{"dash prefix", "--", "--"},
		{"empty marker inside", "x(empty)", "x(empty)"},
		{"tab", "a\tb", `a\x09b`},
		{"newline", "a\nb", `a\x0ab`},
		{"carriage return", "a\r\n", `a\x0d\x0a`},
		{"backslash", `a\b`, `a\\b`},
		{"literal escape text", `\x07`, `\\x07`},
		{"bell", "non_printable_\x07", `non_printable_\x07`},
		{"nul and esc", "\x00\x1b[31m", `\x00\x1b[31m`},
		{"del", "a\x7f", `a\x7f`},
		{"space and hash", "# not a header", "# not a header"},
		{"valid utf-8 passes", "printable_😄 ünï", "printable_😄 ünï"},
		{"invalid byte", "string\x82", `string\x82`},
		{"truncated sequence", "\xf0", `\xf0`},
		{"overlong", "\xc0\x81", `\xc0\x81`},
		{"surrogate", "\xed\xa0\xa1", `\xed\xa0\xa1`},
		{"private use", "\xee\x8b\xa0", `\xee\x8b\xa0`},
		{"C1 control", "a\xc2\x85b", `a\xc2\x85b`},
		{"valid then invalid escapes the chunk", "ñ\xc0\x81", `\xc3\xb1\xc0\x81`},
		{"invalid only taints its chunk", "ñ\t\x82", "ñ" + `\x09\x82`},
		{"control does not taint utf-8", "ñ\x07", `ñ\x07`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ZeekEscape(tt.in); got != tt.want {
				t.Errorf("ZeekEscape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

var fixedOpen = time.Date(2025, 3, 4, 6, 0, 0, 0, testZone)

// writeFixtureLog writes the fixtures to a new stackprint.log with the
// clock at t and returns its path.
func writeFixtureLog(t *testing.T, dir string, close bool) string {
	t.Helper()
	path := filepath.Join(dir, "stackprint.log")
	clock := fixedOpen
	l, err := OpenFingerprintLog(path, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	evs, rs, ms := fixtures()
	for i := range evs {
		if err := l.Write(evs[i], rs[i], ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if close {
		clock = clock.Add(time.Hour + 2*time.Second)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestFingerprintLogGolden(t *testing.T) {
	path := writeFixtureLog(t, t.TempDir(), true)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "stackprint.log", got)
}

// zeekLog is what a zeek-cut-like reader sees in a Zeek TSV file.
type zeekLog struct {
	headers []map[string]string // one per header block
	rows    []map[string]*string
	closes  int
}

// readZeekLog parses path the way zeek-cut does: the header gives the
// separator and the column names, columns are picked by name, "-" is
// unset (nil) and "(empty)" the empty string.
func readZeekLog(t *testing.T, path string) zeekLog {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out    zeekLog
		sep    = "\t"
		fields []string
		hdr    map[string]string
		unset  = "-"
		empty  = "(empty)"
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			if strings.HasPrefix(line, "#separator ") {
				sep = zeekUnescape(strings.TrimPrefix(line, "#separator "))
				hdr = map[string]string{"separator": sep}
				out.headers = append(out.headers, hdr)
				continue
			}
			k, v, _ := strings.Cut(line[1:], sep)
			if hdr == nil {
				t.Fatalf("header line before #separator: %q", line)
			}
			switch k {
			case "fields":
				fields = strings.Split(v, sep)
			case "unset_field":
				unset = v
			case "empty_field":
				empty = v
			case "close":
				out.closes++
			}
			hdr[k] = v
			continue
		}
		if fields == nil {
			t.Fatalf("data line before #fields: %q", line)
		}
		vals := strings.Split(line, sep)
		if len(vals) != len(fields) {
			t.Fatalf("%d values for %d fields: %q", len(vals), len(fields), line)
		}
		row := map[string]*string{}
		for i, raw := range vals {
			switch raw {
			case unset:
				row[fields[i]] = nil
			case empty:
				s := ""
				row[fields[i]] = &s
			default:
				s := zeekUnescape(raw)
				row[fields[i]] = &s
			}
		}
		out.rows = append(out.rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// zeekUnescape decodes \xHH and \\ like Zeek's get_unescaped_string.
func zeekUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if s[i+1] == '\\' {
				b.WriteByte('\\')
				i++
				continue
			}
			if s[i+1] == 'x' && i+3 < len(s) {
				if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
					b.WriteByte(byte(v))
					i += 3
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestFingerprintLogReadBack(t *testing.T) {
	path := writeFixtureLog(t, t.TempDir(), true)
	log := readZeekLog(t, path)

	if len(log.headers) != 1 || log.closes != 1 {
		t.Fatalf("%d header blocks, %d #close lines; want 1 and 1", len(log.headers), log.closes)
	}
	h := log.headers[0]
	for k, want := range map[string]string{
		"separator": "\t", "set_separator": ",", "empty_field": "(empty)", "unset_field": "-",
		"path": "stackprint", "open": "2025-03-04-06-00-00", "close": "2025-03-04-07-00-02",
	} {
		if h[k] != want {
			t.Errorf("#%s = %q, want %q", k, h[k], want)
		}
	}
	if got := strings.Count(h["types"], "\t") + 1; got != 15 {
		t.Errorf("%d types, want 15", got)
	}

	evs, rs, ms := fixtures()
	if len(log.rows) != len(evs) {
		t.Fatalf("%d rows, want %d", len(log.rows), len(evs))
	}
	for i, row := range log.rows {
		ev, r, m := evs[i], rs[i], ms[i]
		ts := r.Started
		if ts.IsZero() {
			ts = ev.TS
		}
		want := map[string]*string{
			"ts":          ptr(fmt.Sprintf("%d.%06d", ts.Unix(), (ts.Nanosecond()+500)/1000)),
			"uid":         opt(ev.ConnID()),
			"id.orig_h":   ptr(ev.Orig.Addr().String()),
			"id.orig_p":   ptr(strconv.Itoa(int(ev.Orig.Port()))),
			"id.resp_h":   ptr(r.Target.IP.String()),
			"id.resp_p":   ptr(strconv.Itoa(int(r.Target.Port))),
			"server_name": opt(r.Target.SNI),
			"status":      ptr(string(r.Status)),
			"jarm":        opt(r.JARM),
			"conns":       ptr(strconv.Itoa(r.Conns)),
			"duration":    ptr(strconv.FormatFloat(r.Duration.Seconds(), 'f', 6, 64)),
			"error":       opt(r.Error),
			"matched":     ptr("F"),
		}
		if m != nil {
			want["matched"] = ptr("T")
			want["match_label"] = ptr(m.Label)
			want["match_source"] = ptr(m.Source)
		}
		for name, w := range want {
			g := row[name]
			if (g == nil) != (w == nil) || g != nil && *g != *w {
				t.Errorf("row %d %s = %s, want %s", i, name, show(g), show(w))
			}
		}
		if m == nil && (row["match_label"] != nil || row["match_source"] != nil) {
			t.Errorf("row %d: match columns set without a match", i)
		}
	}
}

func ptr(s string) *string { return &s }

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func show(p *string) string {
	if p == nil {
		return "unset"
	}
	return strconv.Quote(*p)
}

func TestFingerprintLogReopenAppends(t *testing.T) {
	dir := t.TempDir()
	path := writeFixtureLog(t, dir, false) // no #close: as after a crash
	evs, rs, ms := fixtures()

	l, err := OpenFingerprintLog(path, func() time.Time { return fixedOpen.Add(time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(evs[0], rs[0], ms[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	log := readZeekLog(t, path)
	if len(log.headers) != 1 {
		t.Errorf("%d header blocks after reopen, want 1", len(log.headers))
	}
	if len(log.rows) != len(evs)+1 {
		t.Errorf("%d rows, want %d", len(log.rows), len(evs)+1)
	}
	if log.closes != 1 {
		t.Errorf("%d #close lines, want 1", log.closes)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(b), "#close\t2025-03-04-07-00-00\n") {
		t.Errorf("file does not end with #close:\n%s", b)
	}
}

func TestFingerprintLogReopenAfterClose(t *testing.T) {
	dir := t.TempDir()
	path := writeFixtureLog(t, dir, true)
	evs, rs, ms := fixtures()

	l, err := OpenFingerprintLog(path, func() time.Time { return fixedOpen.Add(2 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(evs[0], rs[0], ms[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Nothing is appended after #close: the closed file was moved aside
	// under Zeek's rotated name and a new one begun.
	log := readZeekLog(t, path)
	if len(log.headers) != 1 || log.headers[0]["open"] != "2025-03-04-08-00-00" {
		t.Errorf("want one header block opened 2025-03-04-08-00-00, got %v", log.headers)
	}
	if len(log.rows) != 1 || log.closes != 1 {
		t.Errorf("%d rows and %d #close lines, want 1 and 1", len(log.rows), log.closes)
	}
	old := readZeekLog(t, filepath.Join(dir, "stackprint.2025-03-04-08-00-00.log"))
	if len(old.rows) != len(evs) || old.closes != 1 {
		t.Errorf("rotated file: %d rows and %d #close lines, want %d and 1", len(old.rows), old.closes, len(evs))
	}
}

func TestFingerprintLogReopenTornAndForeign(t *testing.T) {
	evs, rs, ms := fixtures()
	now := func() time.Time { return fixedOpen }
	tests := []struct {
		name        string
		content     string
		wantHeaders int
	}{
		// A crash cut the last record: it is ended, the header reused.
		{"torn line", "", 1},
		// Columns of another version: moved aside, never mixed rows.
		{"other columns", "#separator \\x09\n#fields\tts\tuid\n#types\ttime\tstring\n1.000000\tCx\n", 1},
		// Not a Zeek log at all.
		{"no header", "hello\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "stackprint.log")
			if tt.content == "" {
				path = writeFixtureLog(t, dir, false)
				f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				f.WriteString("1741064767.000000\tCtorn\t10.0")
				f.Close()
			} else if err := os.WriteFile(path, []byte(tt.content), 0o640); err != nil {
				t.Fatal(err)
			}
			l, err := OpenFingerprintLog(path, now)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Write(evs[0], rs[0], ms[0]); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if got := strings.Count(string(b), "#fields\t"); got != tt.wantHeaders {
				t.Errorf("%d #fields lines, want %d:\n%s", got, tt.wantHeaders, b)
			}
			last := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			rec := last[len(last)-2] // before #close
			if !strings.HasPrefix(rec, "1741064767.623457\tCHhAvVGS1DHFjwGM9\t") {
				t.Errorf("new record not on its own line: %q", rec)
			}
		})
	}
}

func TestFingerprintLogCloseAndAfter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stackprint.log")
	l, err := OpenFingerprintLog(path, func() time.Time { return fixedOpen })
	if err != nil {
		t.Fatal(err)
	}
	// The header is on disk before any record.
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tstackprint\n#open\t2025-03-04-06-00-00\n#fields\tts\t") {
		t.Errorf("header:\n%s", b)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if !strings.HasSuffix(string(b), "\n#close\t2025-03-04-06-00-00\n") {
		t.Errorf("no #close at the end:\n%s", b)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := l.Write(stackprint.Event{}, stackprint.Result{}, nil); err == nil {
		t.Error("Write after Close succeeded")
	}
	if err := l.Flush(); err == nil {
		t.Error("Flush after Close succeeded")
	}
}

func TestZeekTimeFormat(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1521911720, 615923000), "1521911720.615923"},
		{time.Unix(1521911720, 0), "1521911720.000000"},
		{time.Unix(1521911720, 999999600), "1521911721.000000"},
		{time.Unix(1, 5000).In(testZone), "1.000005"},
		{time.Time{}, "-"},
	}
	for _, tt := range tests {
		if got := zeekTime(tt.t); got != tt.want {
			t.Errorf("zeekTime(%v) = %s, want %s", tt.t, got, tt.want)
		}
	}
	if got := zeekInterval(3600 * time.Second); got != "3600.000000" {
		t.Errorf("zeekInterval(1h) = %s", got)
	}
	if got := zeekInterval(-1500 * time.Millisecond); got != "-1.500000" {
		t.Errorf("zeekInterval(-1.5s) = %s", got)
	}
}
