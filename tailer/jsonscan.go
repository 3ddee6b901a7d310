package tailer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
)

// A small allocation-free scanner over one JSON object per line. It walks
// the top-level members, hands out the raw bytes of each key and value, and
// skips everything else (nested objects, arrays, long strings) without
// decoding it. Only the values a parser asks for are decoded.
//
// It checks structure (quotes, brackets, commas, colons) but not the
// grammar of numbers and literals: a bare token is any run of bytes up to
// the next delimiter. The value parsers below reject what they cannot use.

var (
	errJSONEnd       = errors.New("unexpected end of JSON object")
	errJSONNotObject = errors.New("not a JSON object")
)

// tokenEnd marks the bytes that end a bare token (number or literal).
var tokenEnd = [256]bool{',': true, '}': true, ']': true, ' ': true, '\t': true, '\r': true, '\n': true}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipSpace(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i // the common case: no white space, inlined
	}
	return skipSpaceSlow(b, i)
}

func skipSpaceSlow(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

// scanString expects b[i] == '"' and returns the index just past the closing
// quote and whether the string contains escapes.
func scanString(b []byte, i int) (end int, esc bool, err error) {
	j := i + 1
	for {
		j = quoteOrBackslash(b, j)
		if j >= len(b) {
			return len(b), esc, errJSONEnd
		}
		if b[j] == '"' {
			return j + 1, esc, nil
		}
		esc = true
		j += 2 // the escaped byte cannot end the string
	}
}

const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// swarHas marks the bytes of x equal to c (exact for the lowest one).
func swarHas(x uint64, c byte) uint64 {
	y := x ^ (swarLo * uint64(c))
	return (y - swarLo) &^ y & swarHi
}

// swarEq marks with 0x80 exactly the bytes of x equal to the byte
// repeated in pat (no false positives above a match, unlike swarHas).
func swarEq(x, pat uint64) uint64 {
	y := x ^ pat
	const lo7 = 0x7f7f7f7f7f7f7f7f
	return ^((y&lo7 + lo7) | y | lo7)
}

// movemask gathers the 0x80 bits of a byte mask into the low eight bits
// (bit k for byte k).
func movemask(m uint64) uint64 { return (m >> 7) * 0x0102040810204080 >> 56 }

// prefixXOR8 sets bit k of the result to the XOR of bits 0..k of m (eight
// bits).
func prefixXOR8(m uint64) uint64 {
	m ^= m << 1
	m ^= m << 2
	m ^= m << 4
	return m & 0xff
}

// quoteOrBackslash returns the index of the first '"' or '\\' in b from j
// on, or len(b): eight bytes at a time.
func quoteOrBackslash(b []byte, j int) int {
	for ; j+8 <= len(b); j += 8 {
		x := binary.LittleEndian.Uint64(b[j:])
		if m := swarHas(x, '"') | swarHas(x, '\\'); m != 0 {
			return j + bits.TrailingZeros64(m)>>3
		}
	}
	for ; j < len(b); j++ {
		if c := b[j]; c == '"' || c == '\\' {
			return j
		}
	}
	return j
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, errJSONEnd
	}
	switch b[i] {
	case '"':
		end, _, err := scanString(b, i)
		return end, err
	case '{', '[':
		return skipNested(b, i+1, 1)
	case ',', ':', '}', ']':
		return i, fmt.Errorf("unexpected %q at byte %d", b[i], i)
	default:
		start := i
		for i < len(b) {
			c := b[i]
			if c == ',' || c == '}' || c == ']' || isJSONSpace(c) {
				break
			}
			i++
		}
		if i == start {
			return i, fmt.Errorf("empty value at byte %d", i)
		}
		return i, nil
	}
}

// skipNested returns the index just past the bracket that closes depth
// levels of objects and arrays opened before b[i]. It only tracks strings
// (with their escapes) and brackets, eight bytes at a time: each word's
// quotes, backslashes and brackets are found with exact masks and taken in
// order (a '[' closed by '}' is not caught: the value parsers only use what
// they recognise).
func skipNested(b []byte, i, depth int) (int, error) {
	const (
		quotes = swarLo * '"'
		backs  = swarLo * '\\'
		opens  = swarLo * '{' // '[' | 0x20
		closes = swarLo * '}' // ']' | 0x20
	)
	inStr := false
	skip := uint64(0) // the first byte of the next word is escaped
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		y := x | 0x2020202020202020 // '[' → '{', ']' → '}', exactly
		q, esc, br := swarEq(x, quotes), swarEq(x, backs), swarEq(y, opens)|swarEq(y, closes)
		if esc == 0 && skip == 0 {
			// No escape in the word: the bytes inside strings are a
			// prefix XOR of its quotes, and only the brackets outside
			// them are looked at.
			in := prefixXOR8(movemask(q))
			if inStr {
				in ^= 0xff
			}
			inStr = in&0x80 != 0
			for ob := movemask(br) &^ in; ob != 0; ob &= ob - 1 {
				k := bits.TrailingZeros64(ob)
				if c := b[i+k]; c == '{' || c == '[' {
					depth++
				} else if depth--; depth == 0 {
					return i + k + 1, nil
				}
			}
			continue
		}
		m := q | esc | br
		m &^= skip
		skip = 0
		for m != 0 {
			k := bits.TrailingZeros64(m)
			m &= m - 1
			c := b[i+k>>3]
			if inStr {
				switch c {
				case '"':
					inStr = false
				case '\\':
					if k == 63 {
						skip = 0x80 // the escaped byte starts the next word
					} else {
						m &^= 1 << (k + 8) // the escaped byte is not structural
					}
				}
				continue
			}
			switch c {
			case '"':
				inStr = true
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + k>>3 + 1, nil
				}
			}
		}
	}
	if skip != 0 {
		i++
	}
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
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
	}
	return len(b), errJSONEnd
}

// objIter walks the members of one JSON object.
type objIter struct {
	b     []byte
	i     int
	first bool
	done  bool
}

// newObjIter expects b (after leading white space) to start with '{'.
func newObjIter(b []byte, i int) (objIter, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return objIter{}, errJSONNotObject
	}
	return objIter{b: b, i: i + 1, first: true}, nil
}

// next returns the next member. key is the raw key without quotes (it may
// contain escapes, see keyEsc); val is the raw value (strings keep their
// quotes). ok is false after the closing brace.
func (it *objIter) next() (key, val []byte, keyEsc, ok bool, err error) {
	key, keyEsc, ok, err = it.nextKey()
	if !ok || err != nil {
		return nil, nil, false, ok, err
	}
	val, err = it.value(key)
	return key, val, keyEsc, err == nil, err
}

// nextKey returns the next member's key and leaves the iterator at its
// value: call value, or read the value with a nested iterator starting at
// it.i and then set it.i past it (one pass over nested objects).
func (it *objIter) nextKey() (key []byte, keyEsc, ok bool, err error) {
	if it.done {
		return nil, false, false, nil
	}
	b, i := it.b, skipSpace(it.b, it.i)
	if i >= len(b) {
		return nil, false, false, errJSONEnd
	}
	if b[i] == '}' {
		it.done = true
		it.i = i + 1
		return nil, false, false, nil
	}
	if !it.first {
		if b[i] != ',' {
			return nil, false, false, fmt.Errorf("expected ',' or '}' at byte %d", i)
		}
		i = skipSpace(b, i+1)
	}
	it.first = false
	if i >= len(b) {
		return nil, false, false, errJSONEnd
	}
	if b[i] != '"' {
		return nil, false, false, fmt.Errorf("expected a key at byte %d", i)
	}
	// Keys are short: a byte loop finds the end of one without escapes.
	kend, kesc := i+1, false
	for kend < len(b) && b[kend] != '"' && b[kend] != '\\' {
		kend++
	}
	if kend < len(b) && b[kend] == '"' {
		kend++
	} else {
		var err error
		if kend, kesc, err = scanString(b, i); err != nil {
			return nil, false, false, err
		}
	}
	key = b[i+1 : kend-1]
	i = skipSpace(b, kend)
	if i >= len(b) || b[i] != ':' {
		return nil, false, false, fmt.Errorf("expected ':' after key %q", key)
	}
	it.i = skipSpace(b, i+1)
	return key, kesc, true, nil
}

// value skips the value at the iterator's position and returns it.
func (it *objIter) value(key []byte) ([]byte, error) {
	b, i := it.b, it.i
	if i < len(b) {
		// Fast paths for the common values: a string without escapes and
		// a number.
		switch c := b[i]; {
		case c == '"':
			if j := quoteOrBackslash(b, i+1); j < len(b) && b[j] == '"' {
				it.i = j + 1
				return b[i : j+1], nil
			}
		case c >= '0' && c <= '9' || c == '-':
			j := i + 1
			for j < len(b) && !tokenEnd[b[j]] {
				j++
			}
			it.i = j
			return b[i:j], nil
		}
	}
	vend, err := skipValue(b, i)
	if err != nil {
		return nil, fmt.Errorf("value of %q: %w", key, err)
	}
	it.i = vend
	return it.b[i:vend], nil
}

// decodeKey returns the key with its escapes decoded (rare).
func decodeKey(raw []byte, esc bool) []byte {
	if !esc {
		return raw
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(q, '"')
	q = append(q, raw...)
	q = append(q, '"')
	var s string
	if json.Unmarshal(q, &s) != nil {
		return raw
	}
	return []byte(s)
}

func isNull(v []byte) bool { return len(v) == 4 && string(v) == "null" }

// jsonStringBytes returns the content of a JSON string value. With no
// escapes it aliases v; otherwise it decodes into a new slice.
func jsonStringBytes(v []byte) ([]byte, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, errNotString
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("bad string escape: %w", err)
	}
	return []byte(s), nil
}

var errNotString = errors.New("not a string")

// isJSONString reports whether v is a string value.
func isJSONString(v []byte) bool { return len(v) >= 2 && v[0] == '"' }
