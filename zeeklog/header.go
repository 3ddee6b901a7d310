package zeeklog

import (
	"bytes"
	"errors"
	"strings"
)

// ErrEmptySeparator is a #separator line whose value decodes to nothing.
var ErrEmptySeparator = errors.New("empty separator")

// HeaderError is a header line whose value cannot be used.
type HeaderError struct {
	Key   string // "#separator"
	Value []byte // the raw value
	Err   error
}

func (e *HeaderError) Error() string { return e.Key + " " + string(e.Value) + ": " + e.Err.Error() }
func (e *HeaderError) Unwrap() error { return e.Err }

// Header is what the '#' lines of a TSV log have declared so far: the
// separators and markers that decode the data lines after them, #path,
// #open/#close and the columns. Values are raw bytes, and Reset and each
// new header block reuse the slices, so a follower that keeps one Header
// per file does not allocate per block.
//
// Zeek begins every header block with #separator; a block replaces the
// previous one whole.
type Header struct {
	// What every data line needs first, so that it shares cache lines with
	// the state a parser keeps after its Header.
	Separator    []byte
	Empty, Unset []byte // the empty_field and unset_field markers
	Fields       [][]byte

	SetSeparator []byte
	Types        [][]byte
	Path         []byte
	PathSet      bool // a #path line was seen (Path may be empty)
	Open, Close  []byte
}

// Reset returns h to the state before any header: TAB separator, Zeek's
// default markers, no path, no columns.
func (h *Header) Reset() {
	h.resetBlock()
	h.Separator = append(h.Separator[:0], '\t')
}

func (h *Header) resetBlock() {
	h.SetSeparator = append(h.SetSeparator[:0], DefaultSetSeparator...)
	h.Empty = append(h.Empty[:0], EmptyField...)
	h.Unset = append(h.Unset[:0], UnsetField...)
	h.Path = h.Path[:0]
	h.PathSet = false
	h.Open, h.Close = h.Open[:0], h.Close[:0]
	h.Fields = h.Fields[:0]
	h.Types = h.Types[:0]
}

// SetPlainFields begins a block from the single header line of Zeek's
// tsv=T mode: the column names, TAB-separated, without '#' lines.
func (h *Header) SetPlainFields(line []byte) {
	h.resetBlock()
	h.Separator = append(h.Separator[:0], '\t')
	for f := range bytes.SplitSeq(line, []byte{'\t'}) {
		h.Fields = append(h.Fields, bytes.Clone(f))
	}
}

// Line applies one meta line (it starts with '#') and returns its key
// ("separator", "fields", ...). Unknown keys and comments change nothing.
// "#separator" is followed by a space, the other keys by the separator;
// a line without the separator (btest baselines write "#open XXXX", and
// comments have any shape) is keyed by its first word and has no value.
func (h *Header) Line(line []byte) (string, error) {
	body := line[1:]
	if v, ok := bytes.CutPrefix(body, []byte("separator ")); ok {
		sep := unescapeMeta(bytes.TrimSpace(v))
		if len(sep) == 0 {
			return "separator", &HeaderError{Key: "#separator", Value: v, Err: ErrEmptySeparator}
		}
		h.resetBlock()
		h.Separator = append(h.Separator[:0], sep...)
		return "separator", nil
	}
	var key, val []byte
	if k, v, ok := bytes.Cut(body, h.Separator); ok {
		key, val = k, v
	} else {
		key, _, _ = bytes.Cut(body, []byte{' '})
	}
	switch string(key) {
	case "set_separator":
		h.SetSeparator = append(h.SetSeparator[:0], unescapeMeta(val)...)
	case "empty_field":
		h.Empty = append(h.Empty[:0], unescapeMeta(val)...)
	case "unset_field":
		h.Unset = append(h.Unset[:0], unescapeMeta(val)...)
	case "path":
		h.Path = append(h.Path[:0], val...)
		h.PathSet = true
	case "open":
		h.Open = append(h.Open[:0], val...)
	case "close":
		h.Close = append(h.Close[:0], val...)
	case "fields":
		h.Fields = splitClone(h.Fields[:0], val, h.Separator)
	case "types":
		h.Types = splitClone(h.Types[:0], val, h.Separator)
	}
	return string(key), nil
}

func splitClone(dst [][]byte, v, sep []byte) [][]byte {
	for f := range bytes.SplitSeq(v, sep) {
		dst = append(dst, bytes.Clone(f))
	}
	return dst
}

// unescapeMeta decodes \xHH and \\ in a header value.
func unescapeMeta(v []byte) []byte {
	if bytes.IndexByte(v, '\\') < 0 {
		return v
	}
	return AppendUnescaped(nil, v)
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// AppendUnescaped decodes Zeek's TSV escapes (\xHH and \\) of v onto dst,
// as Zeek's get_unescaped_string does. Other backslash sequences are kept
// as they are.
func AppendUnescaped(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			if v[i+1] == '\\' {
				dst = append(dst, '\\')
				i++
				continue
			}
			if v[i+1] == 'x' && i+3 < len(v) {
				hi, ok1 := unhex(v[i+2])
				lo, ok2 := unhex(v[i+3])
				if ok1 && ok2 {
					dst = append(dst, hi<<4|lo)
					i += 3
					continue
				}
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// Unescape is AppendUnescaped for a string: the inverse of Escape for
// every value other than the two markers.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return string(AppendUnescaped(nil, []byte(s)))
}
