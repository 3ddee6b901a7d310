package probe

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stackprint/stackprint"
)

func FuzzParseJARMAnswer(f *testing.F) {
	for _, c := range readJARMParserCases(f, "parser_crafted_cases.jsonl") {
		f.Add(mustHex(f, c.Hex))
	}
	for _, c := range readJARMCaptures(f) {
		for _, p := range c.Probes {
			if p.Response != nil && *p.Response != "TIMEOUT" {
				f.Add(mustHex(f, *p.Response))
			}
		}
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		in := bytes.Clone(d)
		s := ParseJARMAnswer(d)
		if !bytes.Equal(in, d) {
			t.Fatal("input modified")
		}
		if s != jarmEmpty && strings.Count(s, "|") < 3 {
			t.Fatalf("%q has fewer than 4 fields", s)
		}
		if !utf8.ValidString(s) {
			t.Fatalf("%q is not UTF-8, jarm.py could not have produced it", s)
		}
		if s2 := ParseJARMAnswer(d); s2 != s {
			t.Fatalf("not deterministic: %q then %q", s, s2)
		}
	})
}

func FuzzJARMHash(f *testing.F) {
	for _, c := range readJARMCaptures(f) {
		f.Add(c.Raw)
	}
	for _, s := range []string{"", jarmRawEmpty, "|||,|||", "c02f|0306||", "c02f|030\u0663||", "a|b|c", "c02f|0303|a|b|0010,|||"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		h, err := JARMHash(raw)
		if err != nil {
			if !errors.Is(err, ErrJARMHash) || h != "" {
				t.Fatalf("error %v with hash %q", err, h)
			}
			return
		}
		want := 3*len(strings.Split(raw, ",")) + 32
		if raw == jarmRawEmpty {
			want = len(stackprint.ZeroJARM)
		}
		if len(h) != want {
			t.Fatalf("JARMHash(%q) = %q: %d chars, want %d", raw, h, len(h), want)
		}
	})
}
