package zeeklog

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// The header the writer produces is the header the reader side decodes.
func TestHeaderReadsWriterHeader(t *testing.T) {
	s := Schema{Path: "ssl", Fields: []Field{{Name: "ts", Type: "time"}, {Name: "server_name", Type: "string"}}}
	open := time.Date(2025, 3, 4, 6, 0, 0, 0, time.UTC)
	var h Header
	h.Reset()
	for _, line := range splitLines(s.AppendHeader(nil, open)) {
		if _, err := h.Line(line); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
	if string(h.Separator) != "\t" || string(h.SetSeparator) != "," || string(h.Empty) != EmptyField || string(h.Unset) != UnsetField {
		t.Errorf("markers %q %q %q %q", h.Separator, h.SetSeparator, h.Empty, h.Unset)
	}
	if !h.PathSet || string(h.Path) != "ssl" || string(h.Open) != "2025-03-04-06-00-00" {
		t.Errorf("path %q (set %v), open %q", h.Path, h.PathSet, h.Open)
	}
	if !slices.EqualFunc(h.Fields, [][]byte{[]byte("ts"), []byte("server_name")}, slices.Equal) ||
		!slices.EqualFunc(h.Types, [][]byte{[]byte("time"), []byte("string")}, slices.Equal) {
		t.Errorf("fields %q types %q", h.Fields, h.Types)
	}
}

// A new #separator begins a new block; other separators and btest's
// "#open XXXX" are understood; an empty separator is refused by name.
func TestHeaderBlocks(t *testing.T) {
	var h Header
	h.Reset()
	for _, l := range []string{"#separator \\x09", "#path\tconn", "#fields\ta\tb", "#separator ;", "#set_separator;|", "#open XXXX", "#fields;x;y;z"} {
		if _, err := h.Line([]byte(l)); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
	}
	if string(h.Separator) != ";" || string(h.SetSeparator) != "|" || h.PathSet || len(h.Fields) != 3 || len(h.Open) != 0 {
		t.Errorf("after the second block: sep %q set %q path set %v fields %q open %q", h.Separator, h.SetSeparator, h.PathSet, h.Fields, h.Open)
	}
	_, err := h.Line([]byte("#separator  "))
	var he *HeaderError
	if !errors.As(err, &he) || he.Key != "#separator" || !errors.Is(err, ErrEmptySeparator) {
		t.Errorf("empty separator: %v", err)
	}
	if got := Unescape(`a\x2cb\\c\x4`); got != `a,b\c\x4` {
		t.Errorf("Unescape = %q", got)
	}
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := slices.Index(b, '\n')
		out = append(out, b[:i])
		b = b[i+1:]
	}
	return out
}
