package tailer

import (
	"math/rand/v2"
	"testing"
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
