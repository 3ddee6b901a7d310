package tailer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// skipNestedRef is skipNested byte by byte: the reference the word-wise
// version must agree with.
func skipNestedRef(b []byte, i, depth int) (int, error) {
	inStr := false
	for ; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch c {
			case '"':
				inStr = false
			case '\\':
				i++
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1, nil
			}
		}
	}
	return len(b), errJSONEnd
}

// TestSkipNestedWords checks the word-wise scan against the reference on
// random bytes dense in quotes, escapes and brackets, at every start, so
// that escapes and quotes fall on every position of a word.
func TestSkipNestedWords(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = `"\{}[]a:, `
	for n := range 3000 {
		b := make([]byte, 1+rng.IntN(80))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		for start := range len(b) + 1 {
			depth := 1 + n%3
			gotEnd, gotErr := skipNested(b, start, depth)
			wantEnd, wantErr := skipNestedRef(b, start, depth)
			if gotEnd != wantEnd || gotErr != wantErr {
				t.Fatalf("skipNested(%q, %d, %d) = %d, %v; want %d, %v", b, start, depth, gotEnd, gotErr, wantEnd, wantErr)
			}
		}
	}
}

// TestStrArena: strings from the arena keep their bytes while later ones
// are added, across chunks, and long ones are copied on their own.
func TestStrArena(t *testing.T) {
	var a strArena
	var got, want []string
	for i := range 2000 {
		b := []byte("C" + strings.Repeat(string(rune('a'+i%26)), i%70))
		got = append(got, a.str(b))
		want = append(want, string(b))
		clear(b) // the caller's buffer is reused: the string must not change
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("string %d = %q, want %q", i, got[i], want[i])
		}
	}
	if a.str(nil) != "" {
		t.Fatal("empty")
	}
}

// TestParseISOTimeDates compares the date arithmetic with time.Date on
// every day of years around the edges, and month ends run over.
func TestParseISOTimeDates(t *testing.T) {
	for _, year := range []int{0, 1, 4, 100, 400, 1582, 1899, 1900, 1969, 1970, 1999, 2000, 2023, 2024, 2100, 2400, 9999} {
		for month := 1; month <= 12; month++ {
			for day := 1; day <= 31; day++ {
				for _, sec := range []int{0, 59, 60} {
					s := fmt.Sprintf("%04d-%02d-%02dT23:59:%02d.5-0130", year, month, day, sec)
					got, err := parseISOTime([]byte(s))
					want := time.Date(year, time.Month(month), day, 23, 59, sec, 5e8, time.UTC)
					if want.Day() != day && sec != 60 {
						if err == nil {
							t.Fatalf("%s: %v, want an error", s, got)
						}
						continue
					}
					want = want.Add(90 * time.Minute)
					if err != nil || got != want {
						t.Fatalf("%s: %v, %v; want %v", s, got, err, want)
					}
				}
			}
		}
	}
}

// FuzzSplitTSV checks the word-wise TSV splitter against bytes.Split: the
// same column count and the same values in every slot, for any separator
// and any header.
func FuzzSplitTSV(f *testing.F) {
	f.Add([]byte("ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tx\tconn_state"), []byte("1.5\tC1\t10.0.0.1\t1\t11.0.0.1\t443\ttcp\tssl\t0.1\tSF"), byte('\t'))
	f.Add([]byte("a\tts\tid.resp_h"), []byte("\t\t\t\t\t\t\t\t\t"), byte('\t'))
	f.Add([]byte("ts|server_name|id.resp_h"), []byte("1|a|b|c"), byte('|'))
	f.Fuzz(func(t *testing.T, fields, line []byte, sep byte) {
		p := NewZeekParser("fuzz")
		p.hdr.Separator = []byte{sep}
		p.hdr.Fields = bytes.Split(fields, []byte{sep})
		p.finishSchema()
		p.vals = [numSlots][]byte{}
		n := p.splitTSV(line, sep)
		cols := bytes.Split(line, []byte{sep})
		if n != len(cols) {
			t.Fatalf("%d columns, want %d", n, len(cols))
		}
		for s := range numSlots {
			c := p.col[s]
			var want []byte
			if c >= 0 && c < len(cols) && c <= p.maxCol {
				want = cols[c]
			}
			if got := p.vals[s]; !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Fatalf("slot %s (column %d) = %q, want %q", slotName(s), c, got, want)
			}
		}
	})
}
