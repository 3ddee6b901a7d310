package tailer

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stackprint/stackprint"
)

// sampleSeeds adds the first lines of the sample files of one format as
// seeds (whole header blocks for TSV).
func sampleSeeds(f *testing.F, prefix string, lines int) {
	paths, _ := filepath.Glob(filepath.Join(samplesDir, prefix+"*"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		ls := bytes.SplitAfter(b, []byte{'\n'})
		f.Add(bytes.Join(ls[:min(lines, len(ls))], nil))
	}
}

func checkParsed(t *testing.T, ev stackprint.Event, ok bool, err error) {
	t.Helper()
	switch {
	case ok && err != nil:
		t.Fatalf("event and error: %+v, %v", ev, err)
	case ok:
		if ev.Kind == "" || !ev.Resp.IsValid() || !ev.Orig.IsValid() || ev.Source != "fuzz" {
			t.Fatalf("incomplete event %+v", ev)
		}
		if ev.SNI != stackprint.CanonicalSNI(ev.SNI) {
			t.Fatalf("SNI %q not canonical", ev.SNI)
		}
		if ev.Resp.Addr() != stackprint.CanonicalAddr(ev.Resp.Addr()) || ev.Orig.Addr() != stackprint.CanonicalAddr(ev.Orig.Addr()) {
			t.Fatalf("address not canonical: %+v", ev)
		}
	case ev != (stackprint.Event{}):
		t.Fatalf("non-event with content %+v", ev)
	case err != nil && err.Error() == "":
		t.Fatal("empty error message")
	}
}

func FuzzZeekParser(f *testing.F) {
	sampleSeeds(f, "zeek-", 12)
	f.Add([]byte("#separator \\x7c\n#fields|ts|uid|id.orig_h|id.orig_p|id.resp_h|id.resp_p|server_name\n1.5|C1|10.0.0.1|1|::1|443|a\\x2eb\n"))
	f.Add([]byte(`{"ts":"2018-03-24T17:15:20.615923Z","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443,"server_name":"\u0041"}` + "\n"))
	for _, sni := range []string{"a.example", "A.example.", "10.0.0.1", "-", "x-1.b2", "1.2.3.4.", "::1", "[::1]", " a "} {
		f.Add([]byte(sni))
	}
	f.Add([]byte(`{"ts":1,"service":["ssl"],"conn_state":"SF","proto":"tcp","id_orig_h":"1.1.1.1","id_orig_p":1,"id_resp_h":"2.2.2.2","id_resp_p":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := NewZeekParser("fuzz")
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			ev, ok, err := p.ParseLine(line)
			checkParsed(t, ev, ok, err)
		}
		p.Reset()
		ev, ok, err := p.ParseLine(data)
		checkParsed(t, ev, ok, err)
		if got, want := canonicalSNI(data, &strArena{}), stackprint.CanonicalSNI(string(data)); got != want {
			t.Fatalf("canonicalSNI(%q) = %q, want %q", data, got, want)
		}
	})
}

func FuzzEveParser(f *testing.F) {
	sampleSeeds(f, "suricata-eve", 8)
	sampleSeeds(f, "suricata-verify", 1)
	f.Add([]byte(`{"timestamp":"2021-01-27T01:28:11.488362+0100","flow_id":18446744073709551615,"event_type":"alert","src_ip":"fe80:0000:0000:0000:fada:0cff:fedc:87f1","src_port":443,"dest_ip":"10.0.0.1","dest_port":5555,"proto":"TCP","direction":"to_client","tls":{"sni":"A.example."},"flow":{"src_ip":"10.0.0.1","dest_ip":"fe80::fada:cff:fedc:87f1"}}`))
	f.Add([]byte(`{"event_type":"flow","app_proto":"tls","proto":"TCP","src_ip":"1.1.1.1","src_port":1,"dest_ip":"2.2.2.2","dest_port":2,"flow":{"start":"2018-07-05T15:51:23.453468-04:00"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := NewEveParser("fuzz")
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			ev, ok, err := p.ParseLine(line)
			checkParsed(t, ev, ok, err)
		}
	})
}

// FuzzLineReader checks the line splitting against a plain reference,
// with the input arriving in small pieces.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), uint8(2))
	f.Add([]byte(strings.Repeat("x", 300)+"\nshort\n"), uint8(10))
	f.Add([]byte("\x00\x00\x00a\x00b\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00long-ish\n\x00"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, maxLen uint8) {
		limit := int(maxLen) + 1
		type item struct {
			line string
			long bool
			end  int64
		}
		var want []item
		var off int64
		rest := data
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			off += int64(i + 1)
			line := bytes.TrimLeft(rest[:i], "\x00") // NUL runs at line starts are skipped
			if len(line) > limit {
				want = append(want, item{long: true, end: off})
			} else {
				want = append(want, item{line: string(line), end: off})
			}
			rest = rest[i+1:]
		}
		rest = bytes.TrimLeft(rest, "\x00")
		lr := newLineReader(iotest.HalfReader(bytes.NewReader(data)), limit, 0)
		var got []item
		for {
			line, long, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, item{line: string(line), long: long, end: lr.pos})
		}
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("line %d: %+v, want %+v", i, got[i], want[i])
			}
		}
		if lr.partial() != int64(len(rest)) {
			t.Fatalf("partial %d bytes, want %d", lr.partial(), len(rest))
		}
		line, long, ok := lr.flush()
		if len(rest) > limit {
			if !long || !ok {
				t.Fatalf("flush of a long tail: %q %v %v", line, long, ok)
			}
		} else if s := strings.TrimSuffix(string(rest), "\r"); ok != (strings.TrimSpace(s) != "") || ok && string(line) != s {
			t.Fatalf("flush = %q %v, want %q", line, ok, rest)
		}
		if lr.pos != int64(len(data)) {
			t.Fatalf("pos %d after flush, want %d", lr.pos, len(data))
		}

	})
}

// FuzzScanString checks the word-at-a-time string scanner against a plain
// loop.
func FuzzScanString(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"x`, `"\\"`, `"\\\"\\"`, `"unterminated`, `"0123456789abcdef\"0123456789"`, `"ab\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0] != '"' {
			return
		}
		wantEnd, wantEsc, wantErr := len(data), false, true
		for j := 1; j < len(data); j++ {
			if data[j] == '\\' {
				wantEsc = true
				j++
				continue
			}
			if data[j] == '"' {
				wantEnd, wantErr = j+1, false
				break
			}
		}
		end, esc, err := scanString(data, 0)
		if (err != nil) != wantErr || !wantErr && (end != wantEnd || esc != wantEsc) {
			t.Fatalf("scanString(%q) = %d %v %v, want %d %v err=%v", data, end, esc, err, wantEnd, wantEsc, wantErr)
		}
	})
}

// FuzzSkipNested checks the word-at-a-time skipper against a plain loop.
func FuzzSkipNested(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"}"}],"c":"\"{"}x`, `[[["]"]]]`, `{"x":"ab\\"}`, `{`, `{"a":"[{]}"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0] != '{' && data[0] != '[' {
			return
		}
		want, wantErr := len(data), true
		depth := 0
	loop:
		for i := 0; i < len(data); i++ {
			switch data[i] {
			case '"':
				end, _, err := scanString(data, i)
				if err != nil {
					break loop
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					want, wantErr = i+1, false
					break loop
				}
			}
		}
		got, err := skipValue(data, 0)
		if (err != nil) != wantErr || !wantErr && got != want {
			t.Fatalf("skipValue(%q) = %d, %v; want %d, err=%v", data, got, err, want, wantErr)
		}
	})
}
