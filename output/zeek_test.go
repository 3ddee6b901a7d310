package output

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/internal/zeekread"
	"github.com/stackprint/stackprint/zeeklog"
)

var fixedOpen = time.Date(2025, 3, 4, 6, 0, 0, 0, testZone)

// clock is a settable time source for writers under test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// writeFixtureLog writes the fixtures to a new stackprint.log in format
// and returns its path; close adds #close an hour later.
func writeFixtureLog(t *testing.T, dir string, format zeeklog.Format, close bool) string {
	t.Helper()
	name := "stackprint.log"
	if format == zeeklog.JSON {
		name = "stackprint.json.log"
	}
	path := filepath.Join(dir, name)
	c := &clock{fixedOpen}
	l, err := OpenFingerprintLog(path, zeeklog.Options{Format: format, Now: c.now})
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
		c.t = c.t.Add(time.Hour + 2*time.Second)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestFingerprintLogGolden(t *testing.T) {
	for _, f := range []zeeklog.Format{zeeklog.TSV, zeeklog.JSON} {
		path := writeFixtureLog(t, t.TempDir(), f, true)
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Base(path), got)
	}
}

func TestAlertLogGolden(t *testing.T) {
	for _, f := range []zeeklog.Format{zeeklog.TSV, zeeklog.JSON} {
		path := filepath.Join(t.TempDir(), "stackprint_alert.log")
		c := &clock{fixedOpen}
		l, err := OpenAlertLog(path, zeeklog.Options{Format: f, Now: c.now})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range fixtureAlerts() {
			if err := l.Write(a); err != nil {
				t.Fatal(err)
			}
		}
		c.t = c.t.Add(time.Hour)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		golden(t, "stackprint_alert."+string(f)+".log", got)
	}
}

// readTSV parses path with the package's own reader.
func readTSV(t *testing.T, path string) *zeekread.TSVFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := zeekread.ReadTSV(f)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// wantRecords is what a reader must get back for recs: the same values,
// unset (nil, zero time, invalid address) left out, ints as the reader's
// Zeek types, times in UTC.
func wantRecords(schema zeeklog.Schema, recs [][]any) []zeekread.Record {
	var out []zeekread.Record
	for _, rec := range recs {
		r := zeekread.Record{}
		for i, f := range schema.Fields {
			v := rec[i]
			if unset(v) {
				continue
			}
			switch x := v.(type) {
			case time.Time:
				v = x.Round(time.Microsecond).UTC()
			case time.Duration:
				v = x.Round(time.Microsecond)
			case int:
				switch f.Type {
				case "port":
					v = uint16(x)
				case "int":
					v = int64(x)
				default:
					v = uint64(x)
				}
			case netip.Addr:
				v = x.Unmap()
			}
			r[f.Name] = v
		}
		out = append(out, r)
	}
	return out
}

func TestFingerprintLogReadBack(t *testing.T) {
	path := writeFixtureLog(t, t.TempDir(), zeeklog.TSV, true)
	z := readTSV(t, path)
	if len(z.Headers) != 1 {
		t.Fatalf("%d header blocks, want 1", len(z.Headers))
	}
	h := z.Headers[0]
	if h.Separator != "\t" || h.SetSeparator != "," || h.EmptyField != "(empty)" || h.UnsetField != "-" ||
		h.Path != "stackprint" || h.Open != "2025-03-04-06-00-00" || h.Close != "2025-03-04-07-00-02" {
		t.Errorf("header %+v", h)
	}
	if !reflect.DeepEqual(h.Fields, fingerprintSchema().Fields) {
		t.Errorf("fields %v", h.Fields)
	}
	evs, rs, ms := fixtures()
	var recs [][]any
	for i := range evs {
		recs = append(recs, fingerprintRecord(evs[i], rs[i], ms[i]))
	}
	want := wantRecords(fingerprintSchema(), recs)
	if !reflect.DeepEqual(z.Records, want) {
		t.Errorf("records read back\n got %v\nwant %v", z.Records, want)
	}
	// Spot checks against the domain values, not our own record builder.
	r0, r1, r3 := z.Records[0], z.Records[1], z.Records[3]
	if r0["uid"] != "CHhAvVGS1DHFjwGM9" || r0["id.resp_h"] != netip.MustParseAddr("203.0.113.7") || r0["id.resp_p"] != uint16(443) ||
		r0["cert_sha1"] != certSHA1 || r0["http_server"] != "Microsoft-IIS/10.0" || r0["matched"] != true || r0["match_label"] != "cobalt-strike" ||
		r0["duration"] != 1234567*time.Microsecond || !r0["ts"].(time.Time).Equal(rs[0].Started.Round(time.Microsecond)) {
		t.Errorf("record 0: %v", r0)
	}
	if r1["server_name"] != "tab\there.example" || r1["error"] != `probe 3: read: connection reset\by peer` ||
		r1["uid"] != "1234567890123456789" || r1["match_source"] != "" || r1["http_server"] != "" {
		t.Errorf("record 1: %v", r1)
	}
	if _, ok := r3["jarm"]; ok || r3["error"] != "-" || r3["matched"] != false || r3["conns"] != uint64(0) {
		t.Errorf("record 3: %v", r3)
	}
	if _, ok := r3["match_label"]; ok {
		t.Errorf("record 3 has match columns without a match: %v", r3)
	}
}

func TestFingerprintLogReadBackJSON(t *testing.T) {
	path := writeFixtureLog(t, t.TempDir(), zeeklog.JSON, true)
	f, _ := os.Open(path)
	defer f.Close()
	got, err := zeekread.ReadJSON(f, fingerprintSchema())
	if err != nil {
		t.Fatal(err)
	}
	evs, rs, ms := fixtures()
	var recs [][]any
	for i := range evs {
		recs = append(recs, fingerprintRecord(evs[i], rs[i], ms[i]))
	}
	if want := wantRecords(fingerprintSchema(), recs); !reflect.DeepEqual(got, want) {
		t.Errorf("records read back\n got %v\nwant %v", got, want)
	}
}

// roundTripSchema covers every Zeek type the writer supports.
func roundTripSchema() zeeklog.Schema {
	return zeeklog.Schema{Path: "roundtrip", Fields: []zeeklog.Field{
		{Name: "ts", Type: "time"}, {Name: "s", Type: "string"}, {Name: "e", Type: "enum"}, {Name: "a", Type: "addr"}, {Name: "p", Type: "port"},
		{Name: "c", Type: "count"}, {Name: "i", Type: "int"}, {Name: "d", Type: "double"}, {Name: "b", Type: "bool"}, {Name: "iv", Type: "interval"},
		{Name: "set", Type: "set[string]"}, {Name: "vec", Type: "vector[string]"},
	}}
}

// The strings every Zeek reader trips on: separators, newlines, the unset
// and empty markers as data, non-ASCII, a leading #.
var awkward = []string{
	"plain", "", "-", "(empty)", "a\tb", "line\nbreak\r\n", "back\\slash", `\x41 literal`,
	"ünïcode 😄", "# not a header", "a,b", "ñ\xc0\x81", "bell\x07",
}

func roundTripRecords() [][]any {
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)
	var recs [][]any
	for i, s := range awkward {
		recs = append(recs, []any{
			t0.Add(time.Duration(i) * time.Second), s, "Stackprint::Alert", netip.MustParseAddr("2001:db8::1"), uint16(443),
			uint64(i), int64(-i), float64(i) + 0.25, i%2 == 0, time.Duration(i) * time.Millisecond,
			[]string{s, "x"}, []string{},
		})
	}
	// A record with everything unset, and one whose first column is a
	// string starting with '#'.
	recs = append(recs, make([]any, len(roundTripSchema().Fields)))
	return recs
}

func writeRoundTrip(t *testing.T, format zeeklog.Format, schema zeeklog.Schema, recs [][]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "roundtrip.log")
	l, err := zeeklog.Open(path, schema, zeeklog.Options{Format: format, Now: func() time.Time { return fixedOpen }})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := l.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestZeekTSVRoundTrip(t *testing.T) {
	recs := roundTripRecords()
	path := writeRoundTrip(t, zeeklog.TSV, roundTripSchema(), recs)
	z := readTSV(t, path)
	if want := wantRecords(roundTripSchema(), recs); !reflect.DeepEqual(z.Records, want) {
		for i := range want {
			if i < len(z.Records) && !reflect.DeepEqual(z.Records[i], want[i]) {
				t.Errorf("record %d\n got %#v\nwant %#v", i, z.Records[i], want[i])
			}
		}
		t.Fatalf("%d records back, want %d", len(z.Records), len(want))
	}
	b, _ := os.ReadFile(path)
	golden(t, "roundtrip.tsv.log", b)
	// A string column first: a value starting with # must not start a line.
	schema := zeeklog.Schema{Path: "hash", Fields: []zeeklog.Field{{Name: "s", Type: "string"}}}
	path = writeRoundTrip(t, zeeklog.TSV, schema, [][]any{{"#fields\tx"}})
	b, _ = os.ReadFile(path)
	if !strings.Contains(string(b), "\n\\x23fields\\x09x\n") {
		t.Errorf("leading # not escaped:\n%s", b)
	}
	if z := readTSV(t, path); len(z.Records) != 1 || z.Records[0]["s"] != "#fields\tx" {
		t.Errorf("read back %v", z.Records)
	}
}

func TestZeekJSONRoundTrip(t *testing.T) {
	recs := roundTripRecords()
	path := writeRoundTrip(t, zeeklog.JSON, roundTripSchema(), recs)
	f, _ := os.Open(path)
	defer f.Close()
	got, err := zeekread.ReadJSON(f, roundTripSchema())
	if err != nil {
		t.Fatal(err)
	}
	want := wantRecords(roundTripSchema(), recs)
	// Zeek's JSON escaping is one way for control bytes other than TAB,
	// LF, CR and for invalid UTF-8: the reader sees the \xHH text.
	for i, s := range awkward {
		if e := zeeklog.EscapeJSON(s); e != s {
			want[i]["s"] = e
			want[i]["set"] = []string{e, "x"}
		}
	}
	if !reflect.DeepEqual(got, want) {
		for i := range want {
			if i < len(got) && !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("record %d\n got %#v\nwant %#v", i, got[i], want[i])
			}
		}
		t.Fatalf("%d records back, want %d", len(got), len(want))
	}
	b, _ := os.ReadFile(path)
	golden(t, "roundtrip.json.log", b)
}

func TestZeekJSONNumbers(t *testing.T) {
	schema := zeeklog.Schema{Path: "n", Fields: []zeeklog.Field{{Name: "ts", Type: "time"}, {Name: "iv", Type: "interval"}, {Name: "d", Type: "double"}, {Name: "p", Type: "port"}}}
	path := writeRoundTrip(t, zeeklog.JSON, schema, [][]any{
		{time.Unix(1332008617, 0), 3600 * time.Second, 2.0, uint16(443)},
		{time.Unix(1332008619, 800000000), 1500 * time.Microsecond, 0.1234, 80},
	})
	b, _ := os.ReadFile(path)
	want := `{"ts":1332008617.0,"iv":3600.0,"d":2.0,"p":443}` + "\n" + `{"ts":1332008619.8,"iv":0.0015,"d":0.1234,"p":80}` + "\n"
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
}

func TestZeekLogWriteTypeErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	l, err := zeeklog.Open(path, roundTripSchema(), zeeklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := make([]any, len(roundTripSchema().Fields))
	rec[4] = "443" // a port as a string
	if err := l.Write(rec); err == nil || !strings.Contains(err.Error(), "field p") {
		t.Errorf("bad type accepted: %v", err)
	}
	if err := l.Write(rec[:3]); err == nil {
		t.Error("short record accepted")
	}
	rec[4], rec[5] = nil, -1
	if err := l.Write(rec); err == nil {
		t.Error("negative count accepted")
	}
}

func TestFingerprintLogReopenAppends(t *testing.T) {
	dir := t.TempDir()
	path := writeFixtureLog(t, dir, zeeklog.TSV, false) // no #close: as after a crash
	evs, rs, ms := fixtures()
	l, err := OpenFingerprintLog(path, zeeklog.Options{Now: func() time.Time { return fixedOpen.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(evs[0], rs[0], ms[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	z := readTSV(t, path)
	if len(z.Headers) != 1 || len(z.Records) != len(evs)+1 || z.Headers[0].Close != "2025-03-04-07-00-00" {
		t.Errorf("%d header blocks, %d records, close %q; want 1, %d, 2025-03-04-07-00-00", len(z.Headers), len(z.Records), z.Headers[0].Close, len(evs)+1)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(b), "#close\t2025-03-04-07-00-00\n") || strings.Count(string(b), "#close") != 1 {
		t.Errorf("file does not end with one #close:\n%s", b)
	}
}

func TestFingerprintLogReopenAfterClose(t *testing.T) {
	dir := t.TempDir()
	path := writeFixtureLog(t, dir, zeeklog.TSV, true)
	evs, rs, ms := fixtures()
	l, err := OpenFingerprintLog(path, zeeklog.Options{Now: func() time.Time { return fixedOpen.Add(2 * time.Hour) }})
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
	// under Zeek's rotated name (its own #open time) and a new one begun.
	z := readTSV(t, path)
	if len(z.Headers) != 1 || z.Headers[0].Open != "2025-03-04-08-00-00" || len(z.Records) != 1 {
		t.Errorf("new file: %+v, %d records", z.Headers, len(z.Records))
	}
	old := readTSV(t, filepath.Join(dir, "stackprint.2025-03-04-06-00-00.log"))
	if len(old.Records) != len(evs) || old.Headers[0].Close == "" {
		t.Errorf("rotated file: %d records, close %q", len(old.Records), old.Headers[0].Close)
	}
}

func TestFingerprintLogReopenTornAndForeign(t *testing.T) {
	evs, rs, ms := fixtures()
	now := func() time.Time { return fixedOpen }
	tests := []struct {
		name    string
		content string
	}{
		// A crash cut the last record: it is ended, the header reused.
		{"torn line", ""},
		// Columns of another version: moved aside, never mixed rows.
		{"other columns", "#separator \\x09\n#fields\tts\tuid\n#types\ttime\tstring\n1.000000\tCx\n"},
		// Not a Zeek log at all.
		{"no header", "hello\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "stackprint.log")
			if tt.content == "" {
				path = writeFixtureLog(t, dir, zeeklog.TSV, false)
				f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				f.WriteString("1741064767.000000\tCtorn\t10.0")
				f.Close()
			} else if err := os.WriteFile(path, []byte(tt.content), 0o640); err != nil {
				t.Fatal(err)
			}
			l, err := OpenFingerprintLog(path, zeeklog.Options{Now: now})
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
			if got := strings.Count(string(b), "#fields\t"); got != 1 {
				t.Errorf("%d #fields lines, want 1:\n%s", got, b)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			rec := lines[len(lines)-2] // before #close
			if !strings.HasPrefix(rec, "1741064767.623457\tCHhAvVGS1DHFjwGM9\t") {
				t.Errorf("new record not on its own line: %q", rec)
			}
			if tt.content != "" {
				aside, _ := filepath.Glob(filepath.Join(dir, "stackprint.*-*.log"))
				if len(aside) != 1 {
					t.Errorf("foreign file not moved aside: %v", aside)
				}
			}
		})
	}
}

func TestFingerprintLogCloseAndAfter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stackprint.log")
	l, err := OpenFingerprintLog(path, zeeklog.Options{Now: func() time.Time { return fixedOpen }})
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

func TestZeekLogRotation(t *testing.T) {
	evs, rs, ms := fixtures()
	t.Run("interval", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "stackprint.log")
		c := &clock{fixedOpen.Add(20 * time.Minute)}
		l, err := OpenFingerprintLog(path, zeeklog.Options{RotateInterval: time.Hour, Now: c.now})
		if err != nil {
			t.Fatal(err)
		}
		l.Write(evs[0], rs[0], ms[0])
		c.t = fixedOpen.Add(59 * time.Minute)
		if err := l.MaybeRotate(); err != nil {
			t.Fatal(err)
		}
		l.Write(evs[1], rs[1], ms[1])
		// On the hour, a quiet log rotates from the ticker alone.
		c.t = fixedOpen.Add(time.Hour)
		if err := l.MaybeRotate(); err != nil {
			t.Fatal(err)
		}
		old := filepath.Join(dir, "stackprint.2025-03-04-06-20-00.log")
		z := readTSV(t, old)
		if len(z.Records) != 2 || z.Headers[0].Close != "2025-03-04-07-00-00" {
			t.Fatalf("rotated file: %d records, close %q", len(z.Records), z.Headers[0].Close)
		}
		// Like Zeek, the next file appears with the next record.
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("new file created before any record: %v", err)
		}
		c.t = fixedOpen.Add(90 * time.Minute)
		l.Write(evs[2], rs[2], ms[2])
		// A record after the next boundary rotates first, then is written.
		c.t = fixedOpen.Add(2*time.Hour + time.Second)
		l.Write(evs[3], rs[3], ms[3])
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		for name, n := range map[string]int{"stackprint.2025-03-04-07-30-00.log": 1, "stackprint.log": 1} {
			z := readTSV(t, filepath.Join(dir, name))
			if len(z.Records) != n || z.Headers[0].Close == "" {
				t.Errorf("%s: %d records, close %q", name, len(z.Records), z.Headers[0].Close)
			}
		}
	})
	t.Run("size", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "alerts.log")
		c := &clock{fixedOpen}
		l, err := OpenAlertLog(path, zeeklog.Options{Format: zeeklog.JSON, RotateSize: 1500, Now: c.now})
		if err != nil {
			t.Fatal(err)
		}
		as := fixtureAlerts()
		for i := range 6 {
			c.t = c.t.Add(time.Second)
			if err := l.Write(as[i%len(as)]); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "alerts*.log"))
		total := 0
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if len(b) > 1500 && strings.Count(string(b), "\n") > 1 {
				t.Errorf("%s is %d bytes, over the 1500 limit", f, len(b))
			}
			total += strings.Count(string(b), "\n")
		}
		if len(files) < 3 || total != 6 {
			t.Errorf("%d files with %d records, want >= 3 files and 6 records", len(files), total)
		}
	})
}

// unset is what the writer leaves unset: nil, the zero time, an invalid
// address.
func unset(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case time.Time:
		return x.IsZero()
	case netip.Addr:
		return !x.IsValid()
	}
	return false
}
