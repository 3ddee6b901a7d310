package zeeklog

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestZeekJSONEscape(t *testing.T) {
	// Pairs from Zeek's own btest baseline (json-non-printable-escaping):
	// a raw 0x07 and the literal text \x07 both come out as "\\x07".
	tests := []struct{ in, want string }{
		{"/non_printable_\x07", `"/non_printable_\\x07"`},
		{`/non_printable_literal_\x07`, `"/non_printable_literal_\\x07"`},
		{"/printable_😄", `"/printable_😄"`},
		{"tab\tnl\ncr\r", `"tab\tnl\ncr\r"`},
		{`quote" back\`, `"quote\" back\\"`},
		{"bad\xffbyte", `"bad\\xffbyte"`},
		{"del\x7f", `"del\\x7f"`},
		{"-", `"-"`},
		{"", `""`},
		{"<&>", `"<&>"`},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		writeJSONString(&b, EscapeJSON(tt.in))
		if b.String() != tt.want {
			t.Errorf("%q → %s, want %s", tt.in, b.String(), tt.want)
		}
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

// FuzzZeekEscape checks what readers of stackprint.log rely on: an escaped
// value is one TSV field on one line, valid UTF-8, never mistaken for the
// unset or empty marker, and decodes back to the input.
func FuzzZeekEscape(f *testing.F) {
	for _, s := range []string{"", "-", "(empty)", "a\tb\\c\n", "ñ\xc0\x81", "😄\x07", "\xee\x8b\xa0", "\\x41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := Escape(in)
		if i := strings.IndexFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
			t.Fatalf("Escape(%q) = %q: raw control byte at %d", in, out, i)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("Escape(%q) = %q: invalid UTF-8", in, out)
		}
		if out == "-" {
			t.Fatalf("Escape(%q) is the unset marker", in)
		}
		if out == "(empty)" {
			if in != "" {
				t.Fatalf("Escape(%q) is the empty marker", in)
			}
			return
		}
		if back := Unescape(out); back != in {
			t.Fatalf("Escape(%q) = %q decodes to %q", in, out, back)
		}
	})
}

// testZone is a non-UTC zone: times are written as epoch seconds whatever
// their location.
var testZone = time.FixedZone("CET", 3600)
