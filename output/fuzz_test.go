package output

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzZeekEscape checks what readers of stackprint.log rely on: an escaped
// value is one TSV field on one line, valid UTF-8, never mistaken for the
// unset or empty marker, and decodes back to the input.
func FuzzZeekEscape(f *testing.F) {
	for _, s := range []string{"", "-", "(empty)", "a\tb\\c\n", "ñ\xc0\x81", "😄\x07", "\xee\x8b\xa0", "\\x41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := ZeekEscape(in)
		if i := strings.IndexFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
			t.Fatalf("ZeekEscape(%q) = %q: raw control byte at %d", in, out, i)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("ZeekEscape(%q) = %q: invalid UTF-8", in, out)
		}
		if out == "-" {
			t.Fatalf("ZeekEscape(%q) is the unset marker", in)
		}
		if out == "(empty)" {
			if in != "" {
				t.Fatalf("ZeekEscape(%q) is the empty marker", in)
			}
			return
		}
		if back := zeekUnescape(out); back != in {
			t.Fatalf("ZeekEscape(%q) = %q decodes to %q", in, out, back)
		}
	})
}
