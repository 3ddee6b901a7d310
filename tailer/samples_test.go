package tailer

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stackprint/stackprint"
)

// samplesDir holds the public sample logs (provenance in its README).
const samplesDir = "../testdata/logs"

// btestTS replaces the masked timestamps of the Zeek btest baselines
// ("XXXXXXXXXX.XXXXXX"; see the samples README: not to be used to test
// timestamp parsing) with a real one.
const btestTS = "1700000000.123456"

func sampleBytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samplesDir, name))
	if err != nil {
		t.Fatalf("sample log missing from the repository: %v", err)
	}
	if strings.HasPrefix(name, "zeek-btest-") {
		b = bytes.ReplaceAll(b, []byte("XXXXXXXXXX.XXXXXX"), []byte(btestTS))
	}
	return b
}

// samplePath returns a path holding the sample (a temp copy when it had to
// be unmasked).
func samplePath(t testing.TB, name string) string {
	t.Helper()
	if !strings.HasPrefix(name, "zeek-btest-") {
		p := filepath.Join(samplesDir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("sample log missing from the repository: %v", err)
		}
		return p
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, sampleBytes(t, name), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readAll(t testing.TB, in Input, opts Options) ([]stackprint.Event, Stats) {
	t.Helper()
	var evs []stackprint.Event
	st, err := ReadFile(context.Background(), in, opts, func(_ context.Context, ev stackprint.Event) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadFile(%s): %v", in.Path, err)
	}
	return evs, st
}

// The expected counts were established independently of this code, with awk
// over the #fields-named columns (TSV) and by reading the JSON lines, e.g.
//
//	awk -F'\t' '/^#fields/{for(i=2;i<=NF;i++)c[$i]=i-1} !/^#/{print $c["proto"],$c["service"],$c["conn_state"]}' conn.log | sort | uniq -c
//
// gives for zeek-tsv-conn.brimdata-zed.no-close.log 92 records of which two
// are "tcp ssl RSTO" (events) and none are ssl with S0/REJ.
var sampleTable = []struct {
	file    string
	format  string
	lines   uint64 // every line, headers included
	events  uint64
	skipped uint64
	sni     int // events with a non-empty SNI
}{
	// Zeek TSV
	{"zeek-tsv-ssl.brim-wrccdc2018.head200.log", FormatZeek, 209, 200, 0, 58}, // 142 server_name "-"
	{"zeek-tsv-conn.brimdata-zed.no-close.log", FormatZeek, 100, 2, 90, 0},
	{"zeek-tsv-known_certs.brim-wrccdc2018.log", FormatZeek, 44, 0, 35, 0},
	{"zeek-tsv-notice.brim-wrccdc2018.head50.log", FormatZeek, 59, 0, 50, 0},
	{"zeek-tsv-ssl-ja3.salesforce-chrome.log", FormatZeek, 10, 1, 0, 1},
	{"zeek-tsv-ssl-ja3.salesforce-curl.log", FormatZeek, 10, 1, 0, 1},
	{"zeek-btest-conn-scope_sep_underscore.log", FormatZeek, 43, 0, 34, 0}, // no service anywhere
	{"zeek-btest-conn-teredo.log", FormatZeek, 30, 0, 21, 0},               // http, dns, dhcp, teredo only
	{"zeek-btest-escaping-http.tsv.log", FormatZeek, 13, 0, 4, 0},
	{"zeek-btest-ssl-basic.log", FormatZeek, 10, 1, 0, 1},
	{"zeek-btest-ssl-quic-chromium.log", FormatZeek, 10, 1, 0, 1}, // QUIC row: ssl.log cannot tell; kept
	{"zeek-intel-basic.example.txt", FormatZeek, 2, 0, 1, 0},
	{"zeek-intel-donotice.example.txt", FormatZeek, 3, 0, 2, 0},
	// Zeek JSON
	{"zeek-json-ssl.maccdc2012.ndjson", FormatZeek, 399, 399, 0, 0}, // one server_name, an IP literal
	{"zeek-json-streaming-ssl.brim-wrccdc2018.head200.ndjson", FormatZeek, 200, 200, 0, 58},
	{"zeek-json-notice.maccdc2012.ndjson", FormatZeek, 22, 0, 22, 0},
	{"zeek-json-streaming-notice.brim-wrccdc2018.head50.ndjson", FormatZeek, 50, 0, 50, 0},
	{"zeek-json-streaming-x509.brim-wrccdc2018.head50.ndjson", FormatZeek, 50, 0, 50, 0},
	{"zeek-json-x509.maccdc2012.ndjson", FormatZeek, 8, 0, 8, 0},
	{"zeek-btest-json-iso8601-ts.ndjson", FormatZeek, 10, 0, 10, 0},
	{"zeek-btest-escaping-http.json.ndjson", FormatZeek, 4, 0, 4, 0},
	// Suricata eve
	{"suricata-eve.beats-eve-small.json", FormatEve, 8, 2, 6, 2}, // alert+tls, tls; ssh http fileinfo dns stats, UDP flow
	{"suricata-eve.beats-eve-6.0.json", FormatEve, 1, 0, 1, 0},   // alert on http
	{"suricata-verify-output-eve-fileinfo.eve.json", FormatEve, 1, 0, 1, 0},
}

// Files in the samples directory that are not logs the tailer reads.
var notLogs = map[string]string{
	"README.md": "documentation",
	"suricata-dataset-state-ipv6.example.csv": "Suricata dataset state (an output format)",
	"suricata-iprep-categories.scirius.txt":   "Suricata iprep categories (an output format)",
	"suricata-iprep-list.scirius.head30.txt":  "Suricata iprep list (an output format)",
}

func TestSamples(t *testing.T) {
	entries, err := os.ReadDir(samplesDir)
	if err != nil {
		t.Fatalf("sample log missing from the repository: %v", err)
	}
	covered := map[string]bool{}
	for _, s := range sampleTable {
		covered[s.file] = true
	}
	for _, e := range entries {
		if !covered[e.Name()] && notLogs[e.Name()] == "" {
			t.Errorf("sample %s has no row in sampleTable", e.Name())
		}
	}
	for _, s := range sampleTable {
		t.Run(s.file, func(t *testing.T) {
			path := samplePath(t, s.file)
			evs, st := readAll(t, Input{Name: "sample", Path: path, Format: s.format}, Options{})
			if st.ParseErrors != 0 || st.LongLines != 0 {
				t.Errorf("stats %+v: want no parse errors and no long lines", st)
			}
			if st.Lines != s.lines || st.Events != s.events || st.Skipped != s.skipped {
				t.Errorf("lines/events/skipped = %d/%d/%d, want %d/%d/%d", st.Lines, st.Events, st.Skipped, s.lines, s.events, s.skipped)
			}
			if uint64(len(evs)) != st.Events {
				t.Errorf("%d events delivered, stats say %d", len(evs), st.Events)
			}
			content, _ := os.ReadFile(path)
			sni := 0
			var last int64
			for _, ev := range evs {
				if ev.SNI != "" {
					sni++
					if ev.SNI != stackprint.CanonicalSNI(ev.SNI) {
						t.Errorf("SNI %q not canonical", ev.SNI)
					}
				}
				if !ev.Resp.IsValid() || !ev.Orig.IsValid() || ev.TS.IsZero() || ev.Source != "sample" || ev.File != path {
					t.Errorf("incomplete event %+v", ev)
				}
				if ev.Resp.Addr() != stackprint.CanonicalAddr(ev.Resp.Addr()) {
					t.Errorf("non-canonical address %v", ev.Resp)
				}
				// Offset is just past the event's own line.
				if ev.Offset <= last || ev.Offset > int64(len(content)) || content[ev.Offset-1] != '\n' {
					t.Errorf("bad offset %d (previous %d, size %d)", ev.Offset, last, len(content))
				} else {
					start := bytes.LastIndexByte(content[:ev.Offset-1], '\n') + 1
					line := string(content[start : ev.Offset-1])
					id := ev.UID
					if id == "" {
						id = ev.ConnID()
					}
					if !strings.Contains(line, id) {
						t.Errorf("event %s: line ending at offset %d is %q", id, ev.Offset, line)
					}
				}
				last = ev.Offset
			}
			if sni != s.sni {
				t.Errorf("%d events with SNI, want %d", sni, s.sni)
			}
		})
	}
}

// The brim ssl sample exists as Zeek TSV and as json-streaming JSON of the
// same traffic: both must give the same events.
func TestSamplesTSVEqualsJSON(t *testing.T) {
	a, _ := readAll(t, Input{Path: samplePath(t, "zeek-tsv-ssl.brim-wrccdc2018.head200.log"), Format: FormatZeek}, Options{})
	b, _ := readAll(t, Input{Path: samplePath(t, "zeek-json-streaming-ssl.brim-wrccdc2018.head200.ndjson"), Format: FormatZeek}, Options{})
	if len(a) != len(b) || len(a) != 200 {
		t.Fatalf("%d TSV events vs %d JSON events", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.TS.Equal(y.TS) || x.UID != y.UID || x.Orig != y.Orig || x.Resp != y.Resp || x.SNI != y.SNI || x.Kind != y.Kind {
			t.Errorf("record %d differs:\n TSV  %+v\n JSON %+v", i, x, y)
		}
	}
}

func TestSamplesGolden(t *testing.T) {
	first := func(name, format string) stackprint.Event {
		evs, _ := readAll(t, Input{Name: "s", Path: samplePath(t, name), Format: format}, Options{})
		if len(evs) == 0 {
			t.Fatalf("%s: no events", name)
		}
		return evs[0]
	}
	for _, tc := range []struct {
		file, format string
		want         stackprint.Event
	}{
		{"zeek-tsv-ssl.brim-wrccdc2018.head200.log", FormatZeek, stackprint.Event{TS: tsUnix(1521911720, 615923000), UID: "CmC9kY1X0u9nP78KZc",
			Orig: ap("10.164.94.120:39611"), Resp: ap("10.47.3.200:443"), Kind: KindZeekSSL}},
		{"zeek-tsv-conn.brimdata-zed.no-close.log", FormatZeek, stackprint.Event{Kind: KindZeekConn}},
		{"zeek-tsv-ssl-ja3.salesforce-chrome.log", FormatZeek, stackprint.Event{TS: tsUnix(1533677635, 406963000), UID: "CFfy213VlSt7ezHUR6",
			Orig: ap("192.168.1.121:54788"), Resp: ap("216.58.194.206:443"), SNI: "apis.google.com", Kind: KindZeekSSL}},
		{"zeek-btest-ssl-basic.log", FormatZeek, stackprint.Event{TS: tsUnix(1700000000, 123456000), UID: "CHhAvVGS1DHFjwGM9",
			Orig: ap("192.168.1.105:62045"), Resp: ap("74.125.224.79:443"), SNI: "ssl.gstatic.com", Kind: KindZeekSSL}},
		{"zeek-json-ssl.maccdc2012.ndjson", FormatZeek, stackprint.Event{TS: tsUnix(1332008617, 540000000), UID: "CuYVV7rJKvMp76C0j",
			Orig: ap("192.168.202.138:36510"), Resp: ap("192.168.21.253:443"), Kind: KindZeekSSL}},
		{"suricata-eve.beats-eve-small.json", FormatEve, stackprint.Event{TS: tsISO(t, "2018-07-05T15:07:19.659593-04:00"), FlowID: 904992230150281,
			Orig: ap("192.168.86.85:55641"), Resp: ap("192.168.156.70:443"), SNI: "l2.io", Kind: KindEveAlert}},
	} {
		got := first(tc.file, tc.format)
		w := tc.want
		if w.Kind == KindZeekConn {
			// Checked field by field from the file: the first ssl conn row.
			if got.Kind != KindZeekConn || got.Resp.Port() == 0 {
				t.Errorf("%s: %+v", tc.file, got)
			}
			continue
		}
		if !got.TS.Equal(w.TS) || got.UID != w.UID || got.FlowID != w.FlowID || got.Orig != w.Orig || got.Resp != w.Resp || got.SNI != w.SNI || got.Kind != w.Kind {
			t.Errorf("%s first event:\n got %+v\nwant %+v", tc.file, got, w)
		}
	}
	evs, _ := readAll(t, Input{Path: samplePath(t, "suricata-eve.beats-eve-small.json"), Format: FormatEve}, Options{})
	if len(evs) != 2 || evs[1].Kind != KindEveTLS || evs[1].SNI != "p33-btmmdns.icloud.com" || evs[1].FlowID != 89751777876473 ||
		evs[1].Resp != ap("17.142.164.13:443") || !evs[1].TS.Equal(tsISO(t, "2018-07-05T15:51:50.666597-04:00")) {
		t.Errorf("eve-small tls event: %+v", evs)
	}
}

func TestReadFileGzip(t *testing.T) {
	name := "zeek-tsv-ssl.brim-wrccdc2018.head200.log"
	raw := sampleBytes(t, name)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw[:len(raw)/2])
	zw.Close()
	zw = gzip.NewWriter(&buf) // a multi-member file, as `cat a.gz b.gz` makes
	zw.Write(raw[len(raw)/2:])
	zw.Close()
	p := filepath.Join(t.TempDir(), "ssl.2024-04-12-19-29-12.log.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	plain, _ := readAll(t, Input{Path: samplePath(t, name), Format: FormatZeek}, Options{})
	gz, st := readAll(t, Input{Path: p, Format: FormatZeek}, Options{})
	if st.Events != 200 || len(gz) != len(plain) {
		t.Fatalf("gz: %+v", st)
	}
	for i := range gz {
		if gz[i].UID != plain[i].UID || gz[i].Offset != plain[i].Offset {
			t.Fatalf("event %d: gz %s@%d, plain %s@%d", i, gz[i].UID, gz[i].Offset, plain[i].UID, plain[i].Offset)
		}
	}
	if err := os.WriteFile(p, raw, 0o644); err != nil { // not gzip at all
		t.Fatal(err)
	}
	if _, err := ReadFile(context.Background(), Input{Path: p, Format: FormatZeek}, Options{}, func(context.Context, stackprint.Event) error { return nil }); err == nil {
		t.Error("ReadFile of a .gz that is not gzip: no error")
	}
}

func TestReadFileLongLinesAndEnd(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "eve.json")
	tlsLine := func(sni, chain string) string {
		return `{"timestamp":"2018-07-05T15:51:50.666597-0400","flow_id":1,"event_type":"tls","src_ip":"10.0.0.1","src_port":5,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","tls":{"sni":"` + sni + `","chain":["` + chain + `"]}}`
	}
	big := strings.Repeat("A", 200<<10) // 200 KB: more than a bufio buffer, less than the cap
	huge := strings.Repeat("B", 3<<20)  // over the default 1 MiB cap
	content := tlsLine("a.example", big) + "\n" + tlsLine("b.example", huge) + "\n" + tlsLine("c.example", "x") + "\n" + tlsLine("d.example", "no newline")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	evs, st := readAll(t, Input{Path: p, Format: FormatEve}, Options{})
	var snis []string
	for _, ev := range evs {
		snis = append(snis, ev.SNI)
	}
	if strings.Join(snis, ",") != "a.example,c.example,d.example" || st.LongLines != 1 || st.Lines != 4 {
		t.Errorf("events %v, stats %+v", snis, st)
	}
	if evs[2].Offset != int64(len(content)) {
		t.Errorf("last offset %d, want %d", evs[2].Offset, len(content))
	}
	if want := int64(len(tlsLine("a.example", big)) + 1 + len(tlsLine("b.example", huge)) + 1 + len(tlsLine("c.example", "x")) + 1); evs[1].Offset != want {
		t.Errorf("offset after a long line %d, want %d", evs[1].Offset, want)
	}
	// A small cap counts the lines above it, including one that fits the bufio buffer.
	_, st = readAll(t, Input{Path: p, Format: FormatEve}, Options{MaxLineBytes: 300})
	if st.LongLines != 2 || st.Events != 2 {
		t.Errorf("MaxLineBytes 300: %+v", st)
	}
}

func TestReadFileErrors(t *testing.T) {
	noop := func(context.Context, stackprint.Event) error { return nil }
	if _, err := ReadFile(context.Background(), Input{Path: "/nonexistent/x.log", Format: FormatZeek}, Options{}, noop); err == nil {
		t.Error("missing file: no error")
	}
	if _, err := ReadFile(context.Background(), Input{Path: "x", Format: "syslog"}, Options{}, noop); err == nil || !strings.Contains(err.Error(), "syslog") {
		t.Errorf("bad format: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	path := samplePath(t, "zeek-json-ssl.maccdc2012.ndjson")
	if _, err := ReadFile(ctx, Input{Path: path, Format: FormatZeek}, Options{}, noop); err == nil {
		t.Error("cancelled context: no error")
	}
	// A handler error stops the pass and is returned wrapped with the position.
	var once sync.Once
	boom := func(context.Context, stackprint.Event) error {
		var err error
		once.Do(func() { err = context.DeadlineExceeded })
		return err
	}
	st, err := ReadFile(context.Background(), Input{Path: path, Format: FormatZeek}, Options{}, boom)
	if err == nil || !strings.Contains(err.Error(), "line 1") || st.Events != 1 || st.Lines != 1 {
		t.Errorf("handler error: %v, %+v", err, st)
	}
}

// A plain file gives the same lines, events, offsets and counts as its .gz
// copy (NUL runs, long lines, an unfinished last line, buffer boundaries).
func TestReadFilePlainEqualsGzip(t *testing.T) {
	var b strings.Builder
	b.WriteString(tsvHeader(0))
	for i := 0; b.Len() < 3<<20; i++ {
		b.WriteString(tsvLine(0, i))
		if i%5000 == 0 {
			b.WriteString(strings.Repeat("\x00", 100) + tsvLine(0, i+1000000)) // a NUL run at a line start
			b.WriteString(strings.Repeat("y", 2000) + "\n")                    // a long line
		}
	}
	b.WriteString("1.5\tCpartial") // an unfinished last line
	dir := t.TempDir()
	plain := filepath.Join(dir, "ssl.log")
	os.WriteFile(plain, []byte(b.String()), 0o644)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(b.String()))
	zw.Close()
	gz := filepath.Join(dir, "ssl.log.gz")
	os.WriteFile(gz, zb.Bytes(), 0o644)
	opts := Options{MaxLineBytes: 1000}
	a, sa := readAll(t, Input{Path: plain, Format: FormatZeek}, opts)
	z, sz := readAll(t, Input{Path: gz, Format: FormatZeek}, opts)
	if sa != sz || len(a) != len(z) || sa.NULBytes == 0 || sa.LongLines == 0 || sa.ParseErrors != 1 {
		t.Fatalf("plain %+v (%d events), gzip %+v (%d events)", sa, len(a), sz, len(z))
	}
	for i := range a {
		if a[i].UID != z[i].UID || a[i].Offset != z[i].Offset || a[i].Resp != z[i].Resp {
			t.Fatalf("event %d: plain %+v, gzip %+v", i, a[i], z[i])
		}
	}
}

// A file truncated while it is read yields an error: lines were lost.
func TestReadFileShrinks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssl.log")
	var b strings.Builder
	for i := 0; b.Len() < 4<<20; i++ {
		b.WriteString(jsonLine(i))
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	n := 0
	_, err := ReadFile(context.Background(), Input{Path: p, Format: FormatZeek}, Options{}, func(context.Context, stackprint.Event) error {
		if n++; n == 1 {
			return os.Truncate(p, 0)
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "shrank") {
		t.Errorf("ReadFile of a file truncated under it: %v after %d events", err, n)
	}
}
