package tailer

// Parser cases of docs/TAILER-CASES.md (the P, J and S groups): one test per case id
// (P1–P14, J1–J8, S1–S10).

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// headerOf feeds the leading '#' lines of a sample to a new parser.
func headerOf(t *testing.T, b []byte) (*ZeekParser, [][]byte) {
	t.Helper()
	p := NewZeekParser("src")
	var data [][]byte
	for l := range bytes.SplitSeq(b, []byte{'\n'}) {
		if len(l) > 0 && l[0] == '#' {
			if len(data) == 0 {
				if _, _, err := p.ParseLine(l); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		if len(l) > 0 {
			data = append(data, l)
		}
	}
	return p, data
}

// column returns the raw value of a named field of a TSV data line.
func column(t *testing.T, p *ZeekParser, line []byte, name string) []byte {
	t.Helper()
	i := slices.IndexFunc(p.hdr.Fields, func(f []byte) bool { return string(f) == name })
	if i < 0 {
		t.Fatalf("no field %q in %q", name, p.hdr.Fields)
	}
	return bytes.Split(line, p.hdr.Separator)[i]
}

func hasField(p *ZeekParser, name string) bool {
	return slices.ContainsFunc(p.hdr.Fields, func(f []byte) bool { return string(f) == name })
}

func TestP01_HeaderDrivenColumns(t *testing.T) {
	a, _ := headerOf(t, sampleBytes(t, "zeek-tsv-conn.brimdata-zed.no-close.log"))
	b, _ := headerOf(t, sampleBytes(t, "zeek-btest-conn-teredo.log"))
	if hasField(a, "ip_proto") || !hasField(b, "ip_proto") || len(a.hdr.Fields) != 21 || len(b.hdr.Fields) != 22 {
		t.Errorf("fields: %d %q / %d %q", len(a.hdr.Fields), a.hdr.Fields, len(b.hdr.Fields), b.hdr.Fields)
	}
	for _, name := range []string{"zeek-tsv-conn.brimdata-zed.no-close.log", "zeek-btest-conn-teredo.log"} {
		_, st := readAll(t, Input{Path: samplePath(t, name), Format: FormatZeek}, Options{})
		if st.ParseErrors != 0 || st.Skipped == 0 {
			t.Errorf("%s: %+v", name, st)
		}
	}
}

func TestP02_ExtraPackageColumns(t *testing.T) {
	for _, name := range []string{"zeek-tsv-ssl-ja3.salesforce-chrome.log", "zeek-tsv-ssl-ja3.salesforce-curl.log"} {
		p, data := headerOf(t, sampleBytes(t, name))
		if ja3 := column(t, p, data[0], "ja3"); len(ja3) != 32 || hasField(p, "cert_chain_fps") {
			t.Errorf("%s: ja3 %q", name, ja3)
		}
		evs, st := readAll(t, Input{Path: samplePath(t, name), Format: FormatZeek}, Options{})
		if len(evs) != 1 || st.ParseErrors != 0 {
			t.Errorf("%s: %d events, %+v", name, len(evs), st)
		}
	}
}

func TestP03_UnsetVersusEmpty(t *testing.T) {
	p := NewZeekParser("src")
	runSteps(t, p, zeekHeader("ssl", sslFields))
	for raw, want := range map[string]string{`\x2d`: "-", `\x28empty)`: "(empty)", "-": "", "(empty)": "", `a\x09b`: "a\tb"} {
		if got := p.tsvString([]byte(raw)); got != want {
			t.Errorf("tsvString(%q) = %q, want %q", raw, got, want)
		}
	}
	if v := p.tsvSet([]byte("(empty)")); v == nil || len(v) != 0 {
		t.Errorf("(empty) vector = %#v, want empty", v)
	}
	if v := p.tsvSet([]byte("-")); v != nil {
		t.Errorf("unset vector = %#v, want nil", v)
	}
	// On an event: the uid \x2d is the literal "-".
	ev, ok, err := p.ParseLine([]byte(tsv("1.5", `\x2d`, "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "-", "(empty)", "-")))
	if err != nil || !ok || ev.UID != "-" {
		t.Errorf("%+v %v %v", ev, ok, err)
	}
}

func TestP04_SetSplitThenUnescape(t *testing.T) {
	p, data := headerOf(t, sampleBytes(t, "zeek-btest-ssl-basic.log"))
	fps := p.tsvSet(column(t, p, data[0], "cert_chain_fps"))
	if len(fps) != 2 || len(fps[0]) != 64 {
		t.Errorf("cert_chain_fps %q", fps)
	}
	if got := p.tsvSet([]byte(`a\x2cb,c`)); !slices.Equal(got, []string{"a,b", "c"}) {
		t.Errorf("set with an escaped comma: %q", got)
	}
	if got := p.tsvSet([]byte(`1,-,3`)); !slices.Equal(got, []string{"1", "", "3"}) {
		t.Errorf("vector with an unset element: %q", got)
	}
}

func TestP05_Escapes(t *testing.T) {
	p, data := headerOf(t, sampleBytes(t, "zeek-btest-escaping-http.tsv.log"))
	var uris []string
	for _, l := range data {
		uris = append(uris, p.tsvString(column(t, p, l, "uri")))
	}
	joined := strings.Join(uris, "\n")
	for _, want := range []string{"/non_printable_\a", `/non_printable_literal_\x07`} {
		if !slices.Contains(uris, want) {
			t.Errorf("no uri %q in %q", want, joined)
		}
	}
	emoji := false
	for _, u := range uris {
		if strings.ContainsRune(u, '\U0001F600') || strings.ContainsFunc(u, func(r rune) bool { return r > 0xFFFF }) {
			emoji = true
		}
	}
	if !emoji {
		t.Errorf("no emoji preserved in %q", joined)
	}
}

func TestP06_BackslashBeforeComma(t *testing.T) {
	p, data := headerOf(t, sampleBytes(t, "zeek-tsv-notice.brim-wrccdc2018.head50.log"))
	found := false
	for _, l := range data {
		raw := column(t, p, l, "sub")
		if bytes.Contains(raw, []byte(`\\,564d`)) {
			found = true
			if got := p.tsvString(raw); !strings.Contains(got, `\,564d`) || strings.Contains(got, `\\`) {
				t.Errorf("sub %q decodes to %q", raw, got)
			}
		}
	}
	if !found {
		t.Fatal(`no sub with \\,564d in the sample`)
	}
}

func TestP07_DataLineStartingWithEscapedHash(t *testing.T) {
	runSteps(t, NewZeekParser("src"), concat(zeekHeader("ssl", sslFields), []step{
		{line: tsv(`\x23hash`, "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "-", "-", "-"), field: "ts"}, // a record, not a header
		{line: "#fields\tuid\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p"},
		{line: tsv(`\x23C1`, "1.5", "10.0.0.1", "1", "10.0.0.2", "443"), event: true,
			want: &stackprint.Event{TS: tsUnix(1, 500000000), UID: "#C1", Orig: ap("10.0.0.1:1"), Resp: ap("10.0.0.2:443"), Kind: KindZeekSSL}},
	}))
}

func TestP08_CustomSeparators(t *testing.T) {
	p := NewZeekParser("src")
	runSteps(t, p, []step{
		{line: `#separator \x7c`},
		{line: "#set_separator|;"},
		{line: "#path|ssl"},
		{line: "#fields|ts|uid|id.orig_h|id.orig_p|id.resp_h|id.resp_p|server_name|cert_chain_fps"},
		{line: "1.5|C1|10.0.0.1|1|10.0.0.2|443|a\\x7cb.example|x;y\\x3bz", event: true,
			want: &stackprint.Event{TS: tsUnix(1, 500000000), UID: "C1", Orig: ap("10.0.0.1:1"), Resp: ap("10.0.0.2:443"), SNI: "a|b.example", Kind: KindZeekSSL}},
	})
	if got := p.tsvSet([]byte(`x;y\x3bz`)); !slices.Equal(got, []string{"x", "y;z"}) {
		t.Errorf("set %q", got)
	}
}

func TestP09_MultipleHeaderBlocks(t *testing.T) {
	var b bytes.Buffer
	for _, n := range []string{"zeek-tsv-known_certs.brim-wrccdc2018.log", "zeek-tsv-notice.brim-wrccdc2018.head50.log", "zeek-tsv-ssl.brim-wrccdc2018.head200.log", "zeek-tsv-conn.brimdata-zed.no-close.log"} {
		b.Write(sampleBytes(t, n))
	}
	path := filepath.Join(t.TempDir(), "multi.log")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	evs, st := readAll(t, Input{Path: path, Format: FormatZeek}, Options{})
	kinds := map[string]int{}
	for _, ev := range evs {
		kinds[ev.Kind]++
	}
	if st.ParseErrors != 0 || kinds[KindZeekSSL] != 200 || kinds[KindZeekConn] != 2 || st.Skipped != 35+50+90 {
		t.Errorf("stats %+v, kinds %v", st, kinds)
	}
	p := NewZeekParser("src")
	for l := range bytes.SplitSeq(b.Bytes(), []byte{'\n'}) {
		p.ParseLine(l)
	}
	if string(p.hdr.Path) != "conn" {
		t.Errorf("_path after the last block %q", p.hdr.Path)
	}
}

func TestP12_TSVWithPlainHeaderLine(t *testing.T) {
	runSteps(t, NewZeekParser("src"), []step{
		{line: tsv("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "server_name")},
		{line: tsv("1.5", "C1", "10.0.0.1", "1", "10.0.0.2", "443", "a.example"), event: true,
			want: &stackprint.Event{TS: tsUnix(1, 500000000), UID: "C1", Orig: ap("10.0.0.1:1"), Resp: ap("10.0.0.2:443"), SNI: "a.example", Kind: KindZeekSSL}},
	})
	// Without such a line, data stays an error.
	runSteps(t, NewZeekParser("src"), []step{{line: tsv("1.5", "C1", "10.0.0.1"), err: "before any #fields"}})
}

func TestP13_NonMonotonicTimestamps(t *testing.T) {
	evs, st := readAll(t, Input{Path: samplePath(t, "zeek-tsv-ssl.brim-wrccdc2018.head200.log"), Format: FormatZeek}, Options{})
	back := 0
	for i := 1; i < len(evs); i++ {
		if evs[i].TS.Before(evs[i-1].TS) {
			back++
		}
	}
	_, cst := readAll(t, Input{Path: samplePath(t, "zeek-tsv-conn.brimdata-zed.no-close.log"), Format: FormatZeek}, Options{})
	if back == 0 || st.ParseErrors != 0 || cst.ParseErrors != 0 {
		t.Errorf("%d steps back in time, %+v %+v", back, st, cst)
	}
}

func TestP14_MicrosecondPrecision(t *testing.T) {
	for _, s := range []string{"1521911720.615923", "1521911720.000001", "1521911720.999999"} {
		got, err := parseEpoch([]byte(s), false)
		if err != nil || got.Format("05.000000") != s[len(s)-9:] || got.Unix() != 1521911720 {
			t.Errorf("%s → %v %v", s, got.Format("2006-01-02T15:04:05.000000000"), err)
		}
	}
}

func TestJ01_FlatDottedKeys(t *testing.T) {
	runSteps(t, NewZeekParser("src"), []step{
		{line: `{"ts":1.5,"uid":"C1","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443,"server_name":"a"}`, event: true},
		// Nested objects are not Zeek's layout: the flat keys are missing.
		{line: `{"ts":1.5,"uid":"C1","id":{"orig_h":"10.0.0.1","orig_p":1,"resp_h":"10.0.0.2","resp_p":443},"server_name":"a"}`, field: "id.orig_h", err: "missing"},
	})
}

func TestJ02_ScopeSeparatorAndFieldNameMap(t *testing.T) {
	_, st := readAll(t, Input{Path: samplePath(t, "zeek-btest-conn-scope_sep_underscore.log"), Format: FormatZeek}, Options{})
	if st.ParseErrors != 0 || st.Skipped != 34 {
		t.Errorf("scope_sep sample %+v", st)
	}
	runSteps(t, NewZeekParser("src"), []step{
		{line: `{"ts":1.5,"uid":"C1","id_orig_h":"10.0.0.1","id_orig_p":1,"id_resp_h":"10.0.0.2","id_resp_p":443,"server_name":"a"}`, event: true},
	})
	names := map[string]string{"src": "id.orig_h", "sport": "id.orig_p", "dst": "id.resp_h", "dport": "id.resp_p", "when": "ts"}
	path := filepath.Join(t.TempDir(), "ssl.log")
	content := "#separator \\x09\n#path\tssl\n#fields\twhen\tuid\tsrc\tsport\tdst\tdport\tserver_name\n" + tsv("1.5", "C1", "10.0.0.1", "1", "10.0.0.2", "443", "a.example") + "\n" +
		`{"_path":"ssl","when":2.5,"uid":"C2","src":"10.0.0.1","sport":1,"dst":"10.0.0.3","dport":443}` + "\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	evs, st := readAll(t, Input{Path: path, Format: FormatZeek, FieldNames: names}, Options{})
	if len(evs) != 2 || st.ParseErrors != 0 || evs[0].Resp != ap("10.0.0.2:443") || evs[1].Resp != ap("10.0.0.3:443") || !evs[1].TS.Equal(tsUnix(2, 500000000)) {
		t.Errorf("field_name_map: %+v %+v", evs, st)
	}
}

func TestJ03_TimestampVariants(t *testing.T) {
	const ids = `,"id.orig_h":"10.0.0.1","id.orig_p":5,"id.resp_h":"10.0.0.2","id.resp_p":443,"established":true}`
	want := tsUnix(1521911720, 615000000)
	p := NewZeekParser("src")
	for _, ts := range []string{`1521911720.615`, `1521911720615`, `"2018-03-24T17:15:20.615000Z"`, `"2018-03-24T17:15:20.615Z"`} {
		ev, ok, err := p.ParseLine([]byte(`{"ts":` + ts + ids))
		if err != nil || !ok || !ev.TS.Equal(want) {
			t.Errorf("ts %s → %v %v %v", ts, ev.TS, ok, err)
		}
	}
	for ts, w := range map[string]int64{`1332008619.8`: 1332008619, `1332008617`: 1332008617, `1332008617.0`: 1332008617} {
		ev, _, err := p.ParseLine([]byte(`{"ts":` + ts + ids))
		if err != nil || ev.TS.Unix() != w {
			t.Errorf("ts %s → %v %v", ts, ev.TS, err)
		}
	}
	// Negative ISO (before the epoch), as in the iso8601 sample.
	ev, _, err := p.ParseLine([]byte(`{"ts":"1969-12-31T23:59:58.500000Z"` + ids))
	if err != nil || !ev.TS.Equal(tsUnix(-2, 500000000)) {
		t.Errorf("negative ISO → %v %v", ev.TS, err)
	}
	_, st := readAll(t, Input{Path: samplePath(t, "zeek-btest-json-iso8601-ts.ndjson"), Format: FormatZeek}, Options{})
	if st.ParseErrors != 0 {
		t.Errorf("iso8601 sample %+v", st)
	}
}

func TestJ04_UnsetOmittedOrNull(t *testing.T) {
	const base = `{"ts":1.5,"uid":"C1","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443,"established":true`
	for _, l := range []string{base + `}`, base + `,"server_name":null}`} {
		ev, ok, err := NewZeekParser("src").ParseLine([]byte(l))
		if err != nil || !ok || ev.SNI != "" {
			t.Errorf("%s → %+v %v", l, ev, err)
		}
	}
	evs, _ := readAll(t, Input{Path: samplePath(t, "zeek-json-streaming-ssl.brim-wrccdc2018.head200.ndjson"), Format: FormatZeek}, Options{})
	if len(evs) != 200 {
		t.Errorf("%d events", len(evs))
	}
}

func TestJ05_PathRouting(t *testing.T) {
	ssl := bytes.Split(sampleBytes(t, "zeek-json-streaming-ssl.brim-wrccdc2018.head200.ndjson"), []byte{'\n'})
	notice := bytes.Split(sampleBytes(t, "zeek-json-streaming-notice.brim-wrccdc2018.head50.ndjson"), []byte{'\n'})
	x509 := bytes.Split(sampleBytes(t, "zeek-json-streaming-x509.brim-wrccdc2018.head50.ndjson"), []byte{'\n'})
	var b bytes.Buffer
	for i := 0; i < 50; i++ {
		for _, part := range [][][]byte{ssl, notice, x509} {
			if i < len(part) && len(part[i]) > 0 {
				b.Write(part[i])
				b.WriteByte('\n')
			}
		}
	}
	path := filepath.Join(t.TempDir(), "shared.ndjson")
	os.WriteFile(path, b.Bytes(), 0o644)
	evs, st := readAll(t, Input{Path: path, Format: FormatZeek}, Options{})
	if len(evs) != 50 || st.Skipped != 100 || st.ParseErrors != 0 {
		t.Errorf("%d events, %+v", len(evs), st)
	}
}

func TestJ06_HexEscapeAmbiguity(t *testing.T) {
	// Both rows decode to the text \x07: the policy is to treat it as text.
	_, st := readAll(t, Input{Path: samplePath(t, "zeek-btest-escaping-http.json.ndjson"), Format: FormatZeek}, Options{})
	if st.ParseErrors != 0 || st.Skipped != 4 {
		t.Errorf("%+v", st)
	}
	ev, _, err := NewZeekParser("src").ParseLine([]byte(`{"ts":1.5,"uid":"C\\x07","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443,"established":true}`))
	if err != nil || ev.UID != `C\x07` {
		t.Errorf("%+v %v", ev, err)
	}
}

func TestJ07_PUAPolicy(t *testing.T) {
	ev, ok, err := NewZeekParser("src").ParseLine([]byte(`{"ts":1.5,"uid":"a\udb80\udc07","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443,"server_name":"x\udb80\udc07.example"}`))
	if err != nil || !ok || ev.UID != "a\U000F0007" || ev.SNI != "x\U000F0007.example" {
		t.Errorf("%+v %v %v (policy: decoded as text, not mapped back to a byte)", ev, ok, err)
	}
}

func TestJ08_FormatAutodetect(t *testing.T) {
	p := NewZeekParser("src")
	runSteps(t, p, concat(zeekHeader("ssl", sslFields), []step{
		{line: tsv("1.5", "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "-", "-", "-"), event: true},
	}))
	p.Reset() // a new file: JSON this time
	runSteps(t, p, []step{{line: `  {"ts":1.5,"uid":"C1","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443,"established":true}`, event: true}})
	// The follower re-detects after a rotation: see TestJ08_FormatChangesAtRotation.
}

func TestS01_EveTimestamps(t *testing.T) {
	line := func(ts string) string {
		return `{"timestamp":"` + ts + `","flow_id":1,"event_type":"tls","src_ip":"10.0.0.1","src_port":5,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","tls":{}}`
	}
	p := NewEveParser("src")
	a, _, err1 := p.ParseLine([]byte(line("2018-07-05T15:01:09.820360-0400")))
	b, _, err2 := p.ParseLine([]byte(line("2018-07-05T20:01:09.820360+0100")))
	if err1 != nil || err2 != nil || !a.TS.Equal(tsUnix(1530817269, 820360000)) || !a.TS.Equal(b.TS) {
		t.Errorf("%v %v %v %v", a.TS, b.TS, err1, err2)
	}
	path := filepath.Join(t.TempDir(), "eve.json")
	os.WriteFile(path, []byte(line("ts-error")+"\n"+line("2018-07-05T15:01:09.820360-0400")+"\n"), 0o644)
	evs, st := readAll(t, Input{Path: path, Format: FormatEve}, Options{})
	if len(evs) != 1 || st.ParseErrors != 1 {
		t.Errorf("ts-error: %d events %+v", len(evs), st)
	}
}

func TestS02_FlowIDUint64(t *testing.T) {
	ev, _, err := NewEveParser("src").ParseLine([]byte(`{"timestamp":"2018-07-05T15:01:09.820360-0400","flow_id":18446744073709551557,"event_type":"tls","src_ip":"10.0.0.1","src_port":5,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","tls":{}}`))
	if err != nil || ev.FlowID != 18446744073709551557 || ev.ConnID() != "18446744073709551557" {
		t.Errorf("%+v %v", ev, err)
	}
}

func TestS03_IPv6Normalisation(t *testing.T) {
	ev, _, err := NewEveParser("src").ParseLine([]byte(`{"timestamp":"2018-07-05T15:01:09.820360-0400","flow_id":1,"event_type":"tls","src_ip":"fe80:0000:0000:0000:fada:0cff:fedc:87f1","src_port":5,"dest_ip":"2001:0db8:0000:0000:0000:0000:0000:0001","dest_port":443,"proto":"TCP","tls":{}}`))
	z, _, err2 := NewZeekParser("src").ParseLine([]byte(`{"ts":1.5,"uid":"C1","id.orig_h":"fe80::fada:cff:fedc:87f1","id.orig_p":5,"id.resp_h":"2001:db8::1","id.resp_p":443,"established":true}`))
	if err != nil || err2 != nil || ev.Orig.Addr().String() != "fe80::fada:cff:fedc:87f1" || ev.Resp != z.Resp || ev.Target() != z.Target() {
		t.Errorf("eve %v zeek %v %v %v", ev.Resp, z.Resp, err, err2)
	}
}

func TestS04_ServerSideOfAlert(t *testing.T) {
	raw := string(sampleBytes(t, "suricata-eve.beats-eve-6.0.json"))
	raw = strings.TrimSpace(raw)
	withTLS := strings.Replace(raw, `"app_proto":"http"`, `"app_proto":"tls","tls":{"sni":"x.example"}`, 1)
	if withTLS == raw {
		withTLS = strings.TrimSuffix(raw, "}") + `,"tls":{"sni":"x.example"}}`
	}
	p := NewEveParser("src")
	ev, ok, err := p.ParseLine([]byte(withTLS))
	if err != nil || !ok || ev.Resp.Addr().String() != "81.2.69.143" {
		t.Fatalf("port branch (eve-6.0, src is the server): %+v %v %v", ev, ok, err)
	}
	base := `{"timestamp":"2021-01-27T01:28:11.488362+0100","flow_id":1,"event_type":"alert","src_ip":"10.0.0.1","src_port":50000,"dest_ip":"10.0.0.2","dest_port":50001,"proto":"TCP","alert":{},"tls":{}`
	for _, tc := range []struct{ extra, server string }{
		{`,"flow":{"src_ip":"10.0.0.2","dest_ip":"10.0.0.1","src_port":50001,"dest_port":50000}}`, "10.0.0.1:50000"}, // flow block
		{`,"direction":"to_client"}`, "10.0.0.1:50000"},                                                              // direction
		{`}`, "10.0.0.2:50001"}, // fallback: dest
	} {
		ev, _, err := p.ParseLine([]byte(base + tc.extra))
		if err != nil || ev.Resp != ap(tc.server) {
			t.Errorf("%s: server %v, want %s (%v)", tc.extra, ev.Resp, tc.server, err)
		}
	}
}

func TestS05_TLSEventVariants(t *testing.T) {
	evs, st := readAll(t, Input{Path: samplePath(t, "suricata-eve.beats-eve-small.json"), Format: FormatEve}, Options{})
	if len(evs) != 2 || st.ParseErrors != 0 {
		t.Fatalf("%d events %+v", len(evs), st)
	}
	if evs[0].Kind != KindEveAlert || evs[1].SNI != "p33-btmmdns.icloud.com" {
		t.Errorf("alert+tls (session_resumed) %+v; tls SNI %q", evs[0], evs[1].SNI)
	}
}

func TestS06_JA3AndJA4Shapes(t *testing.T) {
	base := `{"timestamp":"2021-01-27T01:28:11.488362+0100","flow_id":1,"event_type":"tls","src_ip":"10.0.0.1","src_port":5,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","tls":{"sni":"a.example"%s}}`
	for _, extra := range []string{`,"ja3s":{"hash":"x","string":"771,4865,51-43"},"ja4":"t13d1516h2_8daaf6152771_02713d6af862"`, `,"ja3":"e7d7","ja3s":"f4fe"`, ``, `,"ja4":null`} {
		ev, ok, err := NewEveParser("src").ParseLine([]byte(strings.Replace(base, "%s", extra, 1)))
		if err != nil || !ok || ev.SNI != "a.example" {
			t.Errorf("%s: %+v %v", extra, ev, err)
		}
	}
}

func TestS07_EventFilter(t *testing.T) {
	_, st := readAll(t, Input{Path: samplePath(t, "suricata-eve.beats-eve-small.json"), Format: FormatEve}, Options{})
	if st.Events != 2 || st.Skipped != 6 || st.ParseErrors != 0 {
		t.Errorf("%+v", st)
	}
	// stats is dropped at event_type, even when what follows is broken.
	_, ok, err := NewEveParser("src").ParseLine([]byte(`{"event_type":"stats","stats":{"uptime":`))
	if ok || err != nil {
		t.Errorf("stats: %v %v", ok, err)
	}
}

func TestS08_VeryLongLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "eve.json")
	line := func(sni, chain string) string {
		return `{"timestamp":"2018-07-05T15:51:50.666597-0400","flow_id":1,"event_type":"tls","src_ip":"10.0.0.1","src_port":5,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","tls":{"sni":"` + sni + `","chain":["` + chain + `"]}}` + "\n"
	}
	appendTo(t, p, "")
	r := start(t, Input{Path: p, Format: FormatEve}, Options{PollInterval: 20 * time.Millisecond, MaxLineBytes: 300 << 10}, false)
	appendTo(t, p, line("a.example", strings.Repeat("A", 200<<10))+line("b.example", strings.Repeat("B", 1<<20))+line("c.example", "x"))
	evs := r.c.waitN(t, 2, 5*time.Second)
	if evs[0].SNI != "a.example" || evs[1].SNI != "c.example" {
		t.Errorf("%v %v", evs[0].SNI, evs[1].SNI)
	}
	if st := r.t.Stats(); st.LongLines != 1 || st.Lines != 3 {
		t.Errorf("%+v", st)
	}
}

func TestS10_TLSVersionStrings(t *testing.T) {
	for in, want := range map[string]string{
		"TLSv1": "tls/1.0", "TLS 1.1": "tls/1.1", "TLS 1.2": "tls/1.2", "TLS 1.3": "tls/1.3", "TLS 1.3 draft-23": "tls/1.3",
		"TLSv10": "tls/1.0", "TLSv12": "tls/1.2", "TLSv13": "tls/1.3", "SSLv3": "ssl/3.0", "SSLv2": "ssl/2.0", "DTLSv12": "dtls/1.2",
		"UNDETERMINED": "", "unknown-64250": "", "": "",
	} {
		proto, ver, ok := TLSVersion(in)
		got := ""
		if ok {
			got = proto + "/" + ver
		}
		if got != want {
			t.Errorf("TLSVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// readAllCtx is ReadFile with a handler collecting events (for tests that
// need the context).
func readAllCtx(ctx context.Context, in Input) ([]stackprint.Event, error) {
	var evs []stackprint.Event
	_, err := ReadFile(ctx, in, Options{}, func(_ context.Context, ev stackprint.Event) error {
		evs = append(evs, ev)
		return nil
	})
	return evs, err
}
