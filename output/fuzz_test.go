package output

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// FuzzZeekTSVRoundTrip writes any string as a string and a set element
// and reads it back with ReadZeekTSV.
func FuzzZeekTSVRoundTrip(f *testing.F) {
	for _, s := range awkward {
		f.Add(s)
	}
	schema := ZeekSchema{Path: "fuzz", Fields: []ZeekField{{"s", "string"}, {"set", "set[string]"}}}
	f.Fuzz(func(t *testing.T, in string) {
		path := filepath.Join(t.TempDir(), "f.log")
		l, err := OpenZeekLog(path, schema, ZeekLogOptions{Now: func() time.Time { return fixedOpen }})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Write([]any{in, []string{in, "x"}}); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		fh, _ := os.Open(path)
		defer fh.Close()
		z, err := ReadZeekTSV(fh)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if len(z.Records) != 1 || z.Records[0]["s"] != in {
			t.Fatalf("%q read back as %#v", in, z.Records)
		}
		if set := z.Records[0]["set"].([]string); len(set) != 2 || set[0] != in {
			t.Fatalf("%q in a set read back as %#v", in, set)
		}
	})
}

// FuzzReadZeekTSV: any input is parsed or refused, never a panic.
func FuzzReadZeekTSV(f *testing.F) {
	for _, name := range []string{"stackprint.log", "stackprint_alert.tsv.log", "roundtrip.tsv.log"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = ReadZeekTSV(bytes.NewReader(in))
		_, _ = ReadZeekJSON(bytes.NewReader(in), roundTripSchema())
	})
}
