package tailer

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// step is one line fed to a parser and what it must give.
type step struct {
	line  string
	event bool
	want  *stackprint.Event // compared when set (TS, UID, FlowID, Orig, Resp, SNI, Kind)
	err   string            // substring of the error; "" means no error
	field string            // the FieldError.Field the error must carry
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func tsUnix(sec, nsec int64) time.Time { return time.Unix(sec, nsec).UTC() }

func tsISO(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02T15:04:05.999999999Z07:00", s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

type parseLiner interface {
	ParseLine([]byte) (stackprint.Event, bool, error)
}

func runSteps(t *testing.T, p parseLiner, steps []step) {
	t.Helper()
	for i, s := range steps {
		ev, ok, err := p.ParseLine([]byte(s.line))
		if s.err != "" || s.field != "" {
			if err == nil {
				t.Errorf("step %d %q: no error, want %q (field %q)", i, s.line, s.err, s.field)
				continue
			}
			if !strings.Contains(err.Error(), s.err) {
				t.Errorf("step %d %q: error %q, want it to contain %q", i, s.line, err, s.err)
			}
			if s.field != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != s.field {
					t.Errorf("step %d %q: error %q does not name field %q", i, s.line, err, s.field)
				}
				if !strings.Contains(err.Error(), s.field) {
					t.Errorf("step %d: error text %q lacks the field name %q", i, err, s.field)
				}
			}
			if ok {
				t.Errorf("step %d: event reported along with an error", i)
			}
			continue
		}
		if err != nil {
			t.Errorf("step %d %q: unexpected error %v", i, s.line, err)
			continue
		}
		if ok != s.event {
			t.Errorf("step %d %q: event=%v, want %v (%+v)", i, s.line, ok, s.event, ev)
			continue
		}
		if !ok && ev != (stackprint.Event{}) {
			t.Errorf("step %d: non-event returned a non-zero event %+v", i, ev)
		}
		if s.want != nil {
			w := *s.want
			if !ev.TS.Equal(w.TS) || ev.UID != w.UID || ev.FlowID != w.FlowID || ev.Orig != w.Orig ||
				ev.Resp != w.Resp || ev.SNI != w.SNI || ev.Kind != w.Kind || ev.Service != w.Service {
				t.Errorf("step %d %q:\n got %+v\nwant %+v", i, s.line, ev, w)
			}
			if ev.Source != "src" {
				t.Errorf("step %d: Source %q, want %q", i, ev.Source, "src")
			}
		}
	}
}

func tsv(fields ...string) string { return strings.Join(fields, "\t") }

func withService(e *stackprint.Event, svc string) *stackprint.Event { e.Service = svc; return e }

const (
	sslFields  = "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion\tcipher\tserver_name\tcert_chain_fps\testablished"
	connFields = "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\tconn_state\ttunnel_parents"
)

func zeekHeader(path, fields string) []step {
	return []step{
		{line: `#separator \x09`},
		{line: "#set_separator\t,"},
		{line: "#empty_field\t(empty)"},
		{line: "#unset_field\t-"},
		{line: "#path\t" + path},
		{line: "#open\t2024-04-12-19-29-12"},
		{line: fields},
		{line: "#types\t..."},
	}
}

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestZeekTSV(t *testing.T) {
	ssl := func(ts time.Time, uid, orig, resp, sni string) *stackprint.Event {
		return &stackprint.Event{TS: ts, UID: uid, Orig: ap(orig), Resp: ap(resp), SNI: sni, Kind: KindZeekSSL}
	}
	conn := func(uid, orig, resp string) *stackprint.Event {
		return &stackprint.Event{TS: tsUnix(1521911720, 615923000), UID: uid, Orig: ap(orig), Resp: ap(resp), Kind: KindZeekConn}
	}
	const ts = "1521911720.615923"
	tests := []struct {
		name  string
		steps []step
	}{
		{"ssl basic, microsecond ts, sni canonical", concat(zeekHeader("ssl", sslFields), []step{
			{line: tsv(ts, "CmC9k", "10.164.94.120", "39611", "10.47.3.200", "443", "TLSv12", "X", "WWW.Example.COM.", "a,b", "T"), event: true,
				want: ssl(tsUnix(1521911720, 615923000), "CmC9k", "10.164.94.120:39611", "10.47.3.200:443", "www.example.com")},
			{line: tsv(ts, "C2", "10.0.0.1", "1", "10.0.0.2", "8443", "-", "-", "-", "(empty)", "-"), event: true,
				want: ssl(tsUnix(1521911720, 615923000), "C2", "10.0.0.1:1", "10.0.0.2:8443", "")},
			{line: tsv(ts, "C3", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "192.168.21.254", "-", "-"), event: true,
				want: ssl(tsUnix(1521911720, 615923000), "C3", "10.0.0.1:1", "10.0.0.2:443", "")}, // IP literal SNI is no SNI
			{line: tsv("-0.400000", "C4", "2001:db8::1", "1", "::ffff:10.0.0.9", "443", "-", "-", "(empty)", "-", "-"), event: true,
				want: ssl(tsUnix(0, -400000000), "C4", "[2001:db8::1]:1", "10.0.0.9:443", "")},
			{line: ""}, // blank line: nothing
			{line: "#close\t2024-04-12-19-34-07"},
		})},
		{"escapes decoded after the unset/empty comparison", concat(zeekHeader("ssl", sslFields), []step{
			// \x2d is a literal "-" (not unset), \x28empty) a literal "(empty)"; both make no usable SNI
			// but the uid shows the decoding: \x41 → A, \\ → \.
			{line: tsv(ts, `C\x41\\B`, "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", `\x2d`, "-", "-"), event: true,
				want: ssl(tsUnix(1521911720, 615923000), `CA\B`, "10.0.0.1:1", "10.0.0.2:443", "")},
			{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", `my\x09host\x2eexample`, "-", "-"), event: true,
				want: ssl(tsUnix(1521911720, 615923000), "C1", "10.0.0.1:1", "10.0.0.2:443", "my\thost.example")},
			{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", `a\\x41.example`, `x\x2cy,z`, "-"), event: true,
				want: ssl(tsUnix(1521911720, 615923000), "C1", "10.0.0.1:1", "10.0.0.2:443", `a\x41.example`)},
		})},
		{"custom separators", []step{
			{line: `#separator \x7c`},
			{line: "#set_separator|;"},
			{line: "#empty_field|EMPTY"},
			{line: "#unset_field|NONE"},
			{line: "#path|conn"},
			{line: "#fields|ts|uid|id.orig_h|id.orig_p|id.resp_h|id.resp_p|proto|service|conn_state|tunnel_parents"},
			{line: "1521911720.615923|C1|10.0.0.1|5|10.0.0.2|443|tcp|ssl|SF|a;b", event: true, want: conn("C1", "10.0.0.1:5", "10.0.0.2:443")},
			{line: "1521911720.615923|C2|10.0.0.1|5|10.0.0.2|443|tcp|NONE|SF|EMPTY"},
			{line: "1521911720.615923|C3|10.0.0.1|5|10.0.0.2|443|tcp|EMPTY|SF|NONE"},
			{line: "1521911720.615923|C4|10.0.0.1\t5|10.0.0.2|443|tcp|ssl|SF|NONE", field: "tunnel_parents", err: "9 of the 10"},
		}},
		{"conn service filter", concat(zeekHeader("conn", connFields), []step{
			{line: tsv(ts, "C1", "10.0.0.1", "5", "10.0.0.2", "443", "tcp", "ssl", "1.0", "SF", "-"), event: true, want: conn("C1", "10.0.0.1:5", "10.0.0.2:443")},
			{line: tsv(ts, "C2", "10.0.0.1", "5", "10.0.0.2", "443", "tcp", "http,ssl", "1.0", "RSTO", "(empty)"), event: true,
				want: withService(conn("C2", "10.0.0.1:5", "10.0.0.2:443"), "http")},
			// STARTTLS: the protocol TLS started from is kept.
			{line: tsv(ts, "C2s", "10.0.0.1", "5", "10.0.0.2", "587", "tcp", "SMTP,ssl", "1.0", "SF", "-"), event: true,
				want: withService(conn("C2s", "10.0.0.1:5", "10.0.0.2:587"), "smtp")},
			{line: tsv(ts, "C3", "10.0.0.1", "5", "10.0.0.2", "443", "udp", "quic,ssl", "1.0", "SF", "-")},            // UDP (QUIC)
			{line: tsv(ts, "C4", "10.0.0.1", "5", "10.0.0.2", "443", "tcp", "ssl,-ssl", "1.0", "SF", "-")},            // removed
			{line: tsv(ts, "C5", "10.0.0.1", "5", "10.0.0.2", "443", "tcp", "-", "1.0", "SF", "-")},                   // unset
			{line: tsv(ts, "C6", "10.0.0.1", "5", "10.0.0.2", "443", "tcp", "(empty)", "1.0", "SF", "-")},             // empty
			{line: tsv(ts, "C7", "10.0.0.1", "5", "10.0.0.2", "443", "tcp", "ssl", "-", "S0", "-")},                   // no answer
			{line: tsv(ts, "C8", "10.0.0.1", "5", "10.0.0.2", "443", "tcp", "ssl", "-", "REJ", "-")},                  // refused
			{line: tsv(ts, "C9", "10.0.0.1", "5", "10.0.0.2", "443", "tcp", "sslv2", "-", "SF", "-")},                 // not the element ssl
			{line: tsv("XXXXXXXXXX.XXXXXX", "C10", "10.0.0.1", "5", "10.0.0.2", "80", "tcp", "http", "-", "SF", "-")}, // skipped lines are not decoded
		})},
		{"two header blocks and scope separator _", concat(
			zeekHeader("ssl", sslFields),
			[]step{{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "a.example", "-", "-"), event: true,
				want: ssl(tsUnix(1521911720, 615923000), "C1", "10.0.0.1:1", "10.0.0.2:443", "a.example")}},
			zeekHeader("notice", "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tnote\tmsg"),
			[]step{{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2", "443", "SSL::Invalid_Server_Cert", "x")}},
			zeekHeader("conn", "#fields\tts\tuid\tid_orig_h\tid_orig_p\tid_resp_h\tid_resp_p\tproto\tservice\tconn_state"),
			[]step{
				{line: tsv(ts, "C2", "10.0.0.3", "7", "10.0.0.4", "993", "tcp", "ssl", "SF"), event: true, want: conn("C2", "10.0.0.3:7", "10.0.0.4:993")},
				{line: tsv(ts, "C2", "10.0.0.3", "7", "bogus", "993", "tcp", "ssl", "SF"), field: "id_resp_h", err: "invalid IP address"},
			},
		)},
		{"header re-read after #close, schema drift", concat(
			zeekHeader("ssl", "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tserver_name"),
			[]step{{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2", "443", "a.example"), event: true,
				want: ssl(tsUnix(1521911720, 615923000), "C1", "10.0.0.1:1", "10.0.0.2:443", "a.example")}},
			[]step{{line: "#close\t2024-04-12-19-34-07"}},
			zeekHeader("ssl", "#fields\tuid\tserver_name\tja4s\tid.resp_p\tid.resp_h\tid.orig_p\tid.orig_h\tts"),
			[]step{
				{line: tsv("C2", "b.example", "(empty)", "8443", "10.0.0.2", "1", "10.0.0.1", ts), event: true,
					want: ssl(tsUnix(1521911720, 615923000), "C2", "10.0.0.1:1", "10.0.0.2:8443", "b.example")},
				// A data record whose first field starts with '#' is written as \x23.
				{line: tsv(`\x23C3`, "-", "-", "443", "10.0.0.2", "1", "10.0.0.1", ts), event: true,
					want: ssl(tsUnix(1521911720, 615923000), "#C3", "10.0.0.1:1", "10.0.0.2:443", "")},
			},
		)},
		{"no #path: ssl recognised by its fields; intel file skipped", []step{
			{line: "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tssl_history"},
			{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2", "443", "CsxknGIi"), event: true,
				want: ssl(tsUnix(1521911720, 615923000), "C1", "10.0.0.1:1", "10.0.0.2:443", "")},
			{line: "#fields\tindicator\tindicator_type\tmeta.source"},
			{line: tsv("1.2.3.4", "Intel::ADDR", "src")},
		}},
		{"malformed lines name the field", concat(zeekHeader("ssl", sslFields), []step{
			{line: tsv("XXXXXXXXXX.XXXXXX", "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "-", "-", "-"), field: "ts", err: "invalid timestamp"},
			{line: tsv("1.2.3", "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "-", "-", "-"), field: "ts"},
			{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.256", "443", "-", "-", "-", "-", "-"), field: "id.resp_h"},
			{line: tsv(ts, "C1", "10.0.0.1", "1", "-", "443", "-", "-", "-", "-", "-"), field: "id.resp_h", err: "missing"},
			{line: tsv(ts, "C1", "10.0.0.1", "65536", "10.0.0.2", "443", "-", "-", "-", "-", "-"), field: "id.orig_p", err: "invalid port"},
			{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2", "443/tcp", "-", "-", "-", "-", "-"), field: "id.resp_p"},
			{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2"), field: "id.resp_p", err: "5 of the 11"},
			{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "-", "-", "-", "extra"), err: "12 columns"},
			// Still usable afterwards.
			{line: tsv(ts, "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "-", "-", "-"), event: true},
		})},
		{"header without the columns an event needs", concat(zeekHeader("ssl", "#fields\tts\tuid\tid.orig_h\tid.orig_p\tserver_name"), []step{
			{line: tsv(ts, "C1", "10.0.0.1", "1", "x"), field: "id.resp_h", err: "missing"},
		})},
		{"data before any header", []step{
			{line: tsv(ts, "C1", "10.0.0.1"), err: "before any #fields header"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, NewZeekParser("src"), tc.steps)
		})
	}
}

func TestZeekParserReset(t *testing.T) {
	p := NewZeekParser("src")
	runSteps(t, p, concat(zeekHeader("ssl", sslFields)))
	p.Reset()
	runSteps(t, p, []step{
		{line: tsv("1.0", "C1", "10.0.0.1", "1", "10.0.0.2", "443", "-", "-", "-", "-", "-"), err: "before any #fields header"},
		// After Reset the format is detected anew: this file is JSON.
		{line: `{"_path":"ssl","ts":1.5,"id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443}`, event: true},
	})
}

func TestZeekJSON(t *testing.T) {
	ev := func(ts time.Time, uid, orig, resp, sni, kind string) *stackprint.Event {
		return &stackprint.Event{TS: ts, UID: uid, Orig: ap(orig), Resp: ap(resp), SNI: sni, Kind: kind}
	}
	const ids = `"id.orig_h":"10.0.0.1","id.orig_p":5,"id.resp_h":"10.0.0.2","id.resp_p":443`
	line := func(prefix string) string { return `{` + prefix + `,` + ids + `}` }
	tests := []step{
		// ts styles
		{line: line(`"ts":1332008619.8,"uid":"C1","established":true`), event: true,
			want: ev(tsUnix(1332008619, 800000000), "C1", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekSSL)},
		{line: line(`"ts":1332008617.0,"uid":"C1","established":true`), event: true,
			want: ev(tsUnix(1332008617, 0), "C1", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekSSL)},
		{line: line(`"ts":1332008617,"uid":"C1","established":true`), event: true,
			want: ev(tsUnix(1332008617, 0), "C1", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekSSL)},
		{line: line(`"ts":1521911720615,"uid":"C1","established":true`), event: true, // TS_MILLIS
			want: ev(tsUnix(1521911720, 615000000), "C1", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekSSL)},
		{line: line(`"ts":"2018-03-24T17:15:20.615923Z","uid":"C1","established":true`), event: true,
			want: ev(tsUnix(1521911720, 615923000), "C1", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekSSL)},
		{line: line(`"ts":"1969-12-31T23:59:59.600000Z","uid":"C1","established":true`), event: true, // before the epoch
			want: ev(tsUnix(-1, 600000000), "C1", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekSSL)},
		{line: line(`"ts":-0.4,"uid":"C1","established":true`), event: true,
			want: ev(tsUnix(0, -400000000), "C1", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekSSL)},
		{line: line(`"ts":1.3320086175e9,"uid":"C1","established":true`), event: true,
			want: ev(tsUnix(1332008617, 500000000), "C1", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekSSL)},
		// routing
		{line: line(`"_path":"ssl","_write_ts":"2018-03-24T17:15:20.629574Z","ts":"2018-03-24T17:15:20.615923Z","uid":"C2","server_name":"Foo.Example."`), event: true,
			want: ev(tsUnix(1521911720, 615923000), "C2", "10.0.0.1:5", "10.0.0.2:443", "foo.example", KindZeekSSL)},
		{line: line(`"_path":"json_streaming_ssl","ts":1.0,"uid":"C2"`), event: true},
		{line: line(`"_path":"notice","ts":1.0,"note":"SSL::Invalid_Server_Cert","server_name":"x"`)},
		{line: line(`"ts":1.0,"uid":"C1","fuid":"F1","proto":"tcp","note":"SSL::Invalid_Server_Cert"`)}, // notice without _path
		{line: `{"ts":1.0,"fingerprint":"ab","certificate.version":3,"san.dns":["a"]}`},                 // x509
		{line: `{"t":"2008-07-09T16:13:30.005432Z"}`},
		{line: `{"ts":XXXXXXXXXX.XXXXXX,"uid":"C1","method":"GET","uri":"/non_printable_\\x07"}`}, // http: not decoded
		// unset omitted vs null, escapes
		{line: line(`"ts":1.0,"uid":"C3","server_name":null,"resumed":false`), event: true,
			want: ev(tsUnix(1, 0), "C3", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekSSL)},
		{line: line(`"ts":1.0,"uid":"C\u0034","server_name":"\u0045xample.com"`), event: true,
			want: ev(tsUnix(1, 0), "C4", "10.0.0.1:5", "10.0.0.2:443", "example.com", KindZeekSSL)},
		{line: `{"ts":1.0,"uid":"C5","id_orig_h":"10.0.0.1","id_orig_p":5,"id_resp_h":"fe80:0000:0000:0000:fada:0cff:fedc:87f1","id_resp_p":443,"cipher":"X"}`, event: true,
			want: ev(tsUnix(1, 0), "C5", "10.0.0.1:5", "[fe80::fada:cff:fedc:87f1]:443", "", KindZeekSSL)},
		{line: ` { "ts" : 1.0 , "id\u002eorig_h" : "10.0.0.1" , "id.orig_p" : 5 , "id.resp_h" : "10.0.0.2" , "id.resp_p" : 443 , "curve" : "x25519" } `, event: true},
		// conn
		{line: line(`"ts":1.0,"uid":"C6","proto":"tcp","service":"ssl","conn_state":"SF"`), event: true,
			want: ev(tsUnix(1, 0), "C6", "10.0.0.1:5", "10.0.0.2:443", "", KindZeekConn)},
		{line: line(`"_path":"conn","ts":1.0,"uid":"C6","proto":"tcp","service":["http","ssl"],"conn_state":"SF"`), event: true},
		{line: line(`"ts":1.0,"uid":"C6","proto":"udp","service":"quic,ssl","conn_state":"SF"`)},
		{line: line(`"ts":1.0,"uid":"C6","proto":"tcp","service":"ssl,-ssl","conn_state":"SF"`)},
		{line: line(`"ts":1.0,"uid":"C6","proto":"tcp","conn_state":"SF"`)},
		{line: line(`"ts":1.0,"uid":"C6","proto":"tcp","service":"ssl","conn_state":"S0"`)},
		{line: line(`"ts":1.0,"uid":"C6","proto":"tcp","service":"ssl","conn_state":"REJ"`)},
		{line: `{"ts":1.0,"host":"10.0.0.2","port_num":443,"service":["SSL"]}`}, // known_services: not conn
		// malformed
		{line: `{"ts":1.0,"uid":"C1","established":true,` + ids, err: "unexpected end"},
		{line: `{"ts":1.0,"uid":"C1","established":true,` + ids + `} x`, err: "trailing data"},
		{line: `{"ts":1.0 "uid":"C1"}`, err: "expected ','"},
		{line: `["ts",1.0]`, err: "not a JSON object"},
		{line: line(`"ts":"yesterday","established":true`), field: "ts", err: "invalid timestamp"},
		{line: line(`"established":true`), field: "ts", err: "missing"},
		{line: line(`"ts":null,"established":true`), field: "ts", err: "missing"},
		{line: `{"ts":1.0,"established":true,"id.orig_h":"10.0.0.1","id.orig_p":5,"id.resp_h":"10.0.0.2"}`, field: "id.resp_p", err: "missing"},
		{line: `{"ts":1.0,"established":true,"id.orig_h":"10.0.0.1","id.orig_p":5,"id.resp_h":167772162,"id.resp_p":443}`, field: "id.resp_h"},
		{line: `{"ts":1.0,"established":true,"id.orig_h":"10.0.0.1","id.orig_p":5,"id.resp_h":"10.0.0.2","id.resp_p":-1}`, field: "id.resp_p"},
		{line: `{"ts":1.0,"established":true,"id_orig_h":"10.0.0.1","id_orig_p":5,"id_resp_h":"10.0.0.2","id_resp_p":4.5}`, field: "id.resp_p"},
		{line: line(`"ts":1.0,"uid":"C6","service":"ssl","conn_state":"SF"`), field: "proto", err: "missing"},
		{line: line(`"ts":1.0,"uid":7,"established":true`), field: "uid"},
		{line: "   "},
		{line: "not json", err: "not a JSON object"},
	}
	runSteps(t, NewZeekParser("src"), tests)
}

func TestZeekJSONWithComment(t *testing.T) {
	const l = `{"_path":"ssl","ts":1.5,"id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443}`
	runSteps(t, NewZeekParser("src"), []step{{line: l, event: true}, {line: "# a comment"}, {line: l, event: true}})
}

func TestZeekFormatSwitch(t *testing.T) {
	// A TSV header followed by JSON (the writer was reconfigured and the
	// truncation went unnoticed): the JSON lines are still read.
	runSteps(t, NewZeekParser("src"), concat(zeekHeader("ssl", sslFields), []step{
		{line: `{"_path":"ssl","ts":1.5,"id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443}`, event: true},
	}))
}

func TestEve(t *testing.T) {
	type E = stackprint.Event
	tls := func(extra string) string {
		return `{"timestamp":"2018-07-05T15:51:50.666597-0400","flow_id":89751777876473,"in_iface":"en0","event_type":"tls","src_ip":"192.168.86.85","src_port":56187,"dest_ip":"17.142.164.13","dest_port":443,"proto":"TCP"` + extra + `}`
	}
	ts1 := tsISO(t, "2018-07-05T15:51:50.666597-04:00")
	base := func(kind string) *E {
		return &E{TS: ts1, FlowID: 89751777876473, Orig: ap("192.168.86.85:56187"), Resp: ap("17.142.164.13:443"), Kind: kind}
	}
	with := func(e *E, f func(*E)) *E { f(e); return e }
	// The eve-6.0 alert (src is the server) given a tls block.
	alert := func(extra string) string {
		return `{"timestamp":"2021-01-27T01:28:11.488362+0100","flow_id":1805461738637437,"event_type":"alert","src_ip":"81.2.69.143","src_port":443,"dest_ip":"10.31.64.240","dest_port":47592,"proto":"TCP","alert":{"action":"allowed","signature_id":1,"severity":2},"tls":{"sni":"bad.example","version":"TLS 1.2","ja3s":{"hash":"x","string":"771,4865,51-43"},"ja4":"t13d"}` + extra + `}`
	}
	alertTS := tsISO(t, "2021-01-27T01:28:11.488362+01:00")
	alertEv := func(orig, resp string) *E {
		return &E{TS: alertTS, FlowID: 1805461738637437, Orig: ap(orig), Resp: ap(resp), SNI: "bad.example", Kind: KindEveAlert}
	}
	tests := []step{
		{line: tls(`,"tls":{"subject":"CN=*.icloud.com","fingerprint":"6a:ff","sni":"P33-btmmdns.icloud.com.","version":"TLS 1.2"}`), event: true,
			want: with(base(KindEveTLS), func(e *E) { e.SNI = "p33-btmmdns.icloud.com" })},
		{line: tls(`,"tls":{"session_resumed":true,"version":"TLSv1"}`), event: true, want: base(KindEveTLS)},
		{line: tls(`,"tls":{"sni":"10.1.2.3"}`), event: true, want: base(KindEveTLS)}, // IP literal: no SNI
		{line: tls(`,"tls":{"sni":"a.example","chain":["` + strings.Repeat("QUJD", 5000) + `"]}`), event: true,
			want: with(base(KindEveTLS), func(e *E) { e.SNI = "a.example" })},
		// flow_id above 2^53, kept exact
		{line: strings.Replace(tls(`,"tls":{}`), "89751777876473", "18446744073709551615", 1), event: true,
			want: with(base(KindEveTLS), func(e *E) { e.FlowID = 18446744073709551615 })},
		{line: strings.Replace(tls(`,"tls":{}`), "89751777876473", "9007199254740993", 1), event: true,
			want: with(base(KindEveTLS), func(e *E) { e.FlowID = 9007199254740993 })},
		// timestamp forms
		{line: strings.Replace(tls(`,"tls":{}`), "-0400", "-04:00", 1), event: true, want: base(KindEveTLS)},
		{line: strings.Replace(tls(`,"tls":{}`), "15:51:50.666597-0400", "19:51:50.666597Z", 1), event: true, want: base(KindEveTLS)},
		{line: strings.Replace(tls(`,"tls":{}`), "15:51:50.666597-0400", "20:51:50.666597+0100", 1), event: true, want: base(KindEveTLS)},
		// expanded IPv6
		{line: `{"timestamp":"2018-07-05T15:51:54.001329-0400","flow_id":1,"event_type":"tls","src_ip":"fe80:0000:0000:0000:fada:0cff:fedc:87f1","src_port":546,"dest_ip":"2001:0db8:0000:0000:0000:0000:0001:0002","dest_port":443,"proto":"TCP","tls":{"sni":"v6.example"}}`, event: true,
			want: &E{TS: tsISO(t, "2018-07-05T15:51:54.001329-04:00"), FlowID: 1, Orig: ap("[fe80::fada:cff:fedc:87f1]:546"), Resp: ap("[2001:db8::1:2]:443"), SNI: "v6.example", Kind: KindEveTLS}},
		// flow
		{line: `{"timestamp":"2018-07-05T15:51:54.001329-0400","flow_id":7,"event_type":"flow","src_ip":"10.0.0.1","src_port":5000,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","app_proto":"tls","flow":{"pkts_toserver":1,"start":"2018-07-05T15:51:23.453468-0400","end":"2018-07-05T15:51:23.453468-0400","state":"closed"}}`, event: true,
			want: &E{TS: tsISO(t, "2018-07-05T15:51:23.453468-04:00"), FlowID: 7, Orig: ap("10.0.0.1:5000"), Resp: ap("10.0.0.2:443"), Kind: KindEveFlow}},
		{line: `{"timestamp":"2018-07-05T15:51:54.001329-0400","flow_id":7,"event_type":"flow","src_ip":"10.0.0.1","src_port":5000,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","app_proto":"failed","flow":{}}`},
		{line: `{"timestamp":"2018-07-05T15:51:54.001329-0400","flow_id":7,"event_type":"flow","src_ip":"10.0.0.1","src_port":5000,"dest_ip":"10.0.0.2","dest_port":443,"proto":"UDP","app_proto":"tls","flow":{}}`},
		// alerts: the three ways to find the server
		{line: alert(``), event: true, want: alertEv("10.31.64.240:47592", "81.2.69.143:443")}, // well-known src port
		{line: alert(`,"direction":"to_client"`), event: true, want: alertEv("10.31.64.240:47592", "81.2.69.143:443")},
		{line: alert(`,"direction":"to_server"`), event: true, want: alertEv("81.2.69.143:443", "10.31.64.240:47592")},
		{line: alert(`,"direction":"to_client","flow":{"src_ip":"10.31.64.240","dest_ip":"81.2.69.143","src_port":47592,"dest_port":443}`), event: true,
			want: alertEv("10.31.64.240:47592", "81.2.69.143:443")},
		{line: alert(`,"flow":{"src_ip":"81.2.69.143","dest_ip":"10.31.64.240","src_port":443,"dest_port":47592}`), event: true, // flow block wins
			want: alertEv("81.2.69.143:443", "10.31.64.240:47592")},
		{line: alert(`,"flow":{"dest_ip":"81.2.69.143"}`), event: true, want: alertEv("10.31.64.240:47592", "81.2.69.143:443")},
		{line: strings.Replace(alert(``), `"src_port":443`, `"src_port":50000`, 1), event: true, want: func() *E {
			e := alertEv("81.2.69.143:50000", "10.31.64.240:47592")
			return e
		}()},
		{line: `{"timestamp":"2018-07-05T15:07:20.910626-0400","flow_id":904992230150281,"event_type":"alert","src_ip":"192.168.86.85","src_port":55641,"dest_ip":"192.168.156.70","dest_port":443,"proto":"TCP","alert":{"signature_id":2024833},"app_proto":"tls","flow":{"start":"2018-07-05T15:07:19.659593-0400"}}`, event: true,
			want: &E{TS: tsISO(t, "2018-07-05T15:07:19.659593-04:00"), FlowID: 904992230150281, Orig: ap("192.168.86.85:55641"), Resp: ap("192.168.156.70:443"), Kind: KindEveAlert}},
		// STARTTLS: an alert on a TLS session of an SMTP flow keeps its app_proto.
		{line: strings.Replace(alert(`,"app_proto":"SMTP"`), `"src_port":443`, `"src_port":587`, 1), event: true,
			want: with(alertEv("10.31.64.240:47592", "81.2.69.143:587"), func(e *E) { e.Service = "smtp" })},
		{line: `{"timestamp":"2021-01-27T01:28:11.488362+0100","flow_id":1,"event_type":"alert","src_ip":"81.2.69.143","src_port":80,"dest_ip":"10.31.64.240","dest_port":47592,"proto":"TCP","alert":{},"http":{"hostname":"x"},"app_proto":"http"}`},
		// other event types are skipped, even when broken after event_type
		{line: `{"timestamp":"2018-07-05T15:51:20.213418-0400","event_type":"dns","src_ip":"192.168.86.1","proto":"UDP","dns":{"type":"answer"}}`},
		{line: `{"timestamp":"2018-07-05T15:51:23.009510-0400","event_type":"stats","stats":{"uptime":5400,"decoder":{"pkts":1`},
		{line: tls(`,"tls":{}`) + "\r", event: true}, // CRLF tolerated
		{line: ""},
		// malformed
		{line: strings.Replace(tls(`,"tls":{}`), "2018-07-05T15:51:50.666597-0400", "ts-error", 1), field: "timestamp", err: "invalid timestamp"},
		{line: strings.Replace(tls(`,"tls":{}`), "89751777876473", "-1", 1), field: "flow_id"},
		{line: strings.Replace(tls(`,"tls":{}`), "89751777876473", "8.9751777876473e13", 1), field: "flow_id"},
		{line: strings.Replace(tls(`,"tls":{}`), "89751777876473", "18446744073709551616", 1), field: "flow_id"},
		{line: strings.Replace(tls(`,"tls":{}`), `"dest_ip":"17.142.164.13",`, "", 1), field: "dest_ip", err: "missing"},
		{line: strings.Replace(tls(`,"tls":{}`), `"17.142.164.13"`, `"17.142.164"`, 1), field: "dest_ip", err: "invalid IP address"},
		{line: strings.Replace(tls(`,"tls":{}`), `"src_port":56187`, `"src_port":"x"`, 1), field: "src_port"},
		{line: strings.Replace(tls(`,"tls":{}`), `"proto":"TCP"`, `"proto":"UDP"`, 1)},
		{line: strings.Replace(tls(`,"tls":{}`), `,"proto":"TCP"`, ``, 1), field: "proto", err: "missing"},
		{line: strings.Replace(tls(`,"tls":{}`), `"event_type":"tls",`, ``, 1), field: "event_type", err: "missing"},
		{line: tls(`,"tls":{"sni":5}`), field: "tls.sni"},
		{line: tls(`,"tls":{"sni":"a"`), err: "unexpected end"},
		{line: `{"timestamp":"2018-07-05T15:51:54.001329-0400","event_type":"flow","src_ip":"10.0.0.1","src_port":5000,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","app_proto":"tls","flow":{"start":"then"}}`, field: "flow.start"},
		{line: `{"event_type":"tls",}`, err: "expected a key"},
	}
	runSteps(t, NewEveParser("src"), tests)
}

func TestTimeParsers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "2018-07-05T15:01:09.820360-0400", want: tsUnix(1530817269, 820360000)},
		{in: "2018-07-05T15:01:09.820360-04:00", want: tsUnix(1530817269, 820360000)},
		{in: "2018-07-05T19:01:09.82036Z", want: tsUnix(1530817269, 820360000)},
		{in: "2018-07-05T19:01:09Z", want: tsUnix(1530817269, 0)},
		{in: "2018-07-05T19:01:09", want: tsUnix(1530817269, 0)},
		{in: "2018-07-05T21:01:09.123456789+02", want: tsUnix(1530817269, 123456789)},
		{in: "2018-02-30T00:00:00Z", bad: true},
		{in: "2018-07-05T19:01:09.Z", bad: true},
		{in: "2018-07-05T19:01:09+2", bad: true},
		{in: "2018-07-05T19:01:09Zjunk", bad: true},
		{in: "ts-error", bad: true},
	} {
		got, err := parseISOTime([]byte(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("parseISOTime(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseISOTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in     string
		millis bool
		want   time.Time
		bad    bool
	}{
		{in: "1521911720.615923", want: tsUnix(1521911720, 615923000)},
		{in: "1521911720.6159231234", want: tsUnix(1521911720, 615923123)},
		{in: "1521911720615", millis: true, want: tsUnix(1521911720, 615000000)},
		{in: "1521911720615", want: tsUnix(1521911720615, 0)},
		{in: "-1.5", want: tsUnix(-2, 500000000)},
		{in: ".5", want: tsUnix(0, 500000000)},
		{in: "", bad: true},
		{in: "-", bad: true},
		{in: ".", bad: true},
		{in: "1e", bad: true},
		{in: "12x", bad: true},
		{in: "1234567890123456789012", bad: true},
	} {
		got, err := parseEpoch([]byte(tc.in), tc.millis)
		if tc.bad {
			if err == nil {
				t.Errorf("parseEpoch(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseEpoch(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1"},
		{"255.255.255.255", "255.255.255.255"},
		{"0.0.0.0", "0.0.0.0"},
		{"fe80:0000:0000:0000:fada:0cff:fedc:87f1", "fe80::fada:cff:fedc:87f1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"fe80::1%eth0", "fe80::1"},
		{"010.0.0.1", ""},
		{"10.0.0", ""},
		{"10.0.0.1.", ""},
		{"256.0.0.1", ""},
		{"1.2.3.4/24", ""},
		{"", ""},
	} {
		a, ok := parseAddr([]byte(tc.in))
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want {
			t.Errorf("parseAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
