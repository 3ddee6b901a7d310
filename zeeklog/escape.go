package zeeklog

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The markers and layouts of Zeek's ASCII writer with its defaults.
const (
	TimeLayout          = "2006-01-02-15-04-05" // #open and #close, like Zeek's strftime %Y-%m-%d-%H-%M-%S
	UnsetField          = "-"
	EmptyField          = "(empty)"
	DefaultSetSeparator = ","
)

// zeekTime renders seconds since the epoch with exactly six decimals, as
// Zeek's ASCII writer does.
func zeekTime(t time.Time) string {
	if t.IsZero() {
		return UnsetField
	}
	return micros(t.Round(time.Microsecond).UnixMicro())
}

func zeekInterval(d time.Duration) string {
	return micros(d.Round(time.Microsecond).Microseconds())
}

func micros(us int64) string {
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	return fmt.Sprintf("%s%d.%06d", sign, us/1e6, us%1e6)
}

// Escape renders s as the value of a Zeek TSV string field, byte for
// byte as Zeek's ASCII writer (with its default enable_utf_8=T) does:
//
//   - "" is "(empty)"; a whole value "-" is "\x2d" and "(empty)" is
//     "\x28empty)", so neither reads back as unset or empty;
//   - the separator TAB is "\x09" and a backslash is "\\";
//   - other control bytes (0x00-0x1f, 0x7f) are "\xHH", lower-case hex;
//   - valid UTF-8 passes through raw, unless the run of bytes between two
//     escapes (TAB or backslash) holds invalid UTF-8, a C1 control, a
//     private-use or a U+FFF0-U+FFFF code point: then every non-ASCII byte
//     of that run is "\xHH", valid sequences included, as Zeek's
//     escape_utf8 falls back to escaping the whole chunk.
//
// It does not escape ',' (set_separator): that applies only inside sets and
// vectors, which stackprint.log does not have.
func Escape(s string) string {
	switch s {
	case "":
		return EmptyField
	case UnsetField:
		return `\x2d`
	case EmptyField:
		return `\x28empty)`
	}
	if plainASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			escapeChunk(&b, s[start:i])
			b.WriteString(`\\`)
			start = i + 1
		case '\t':
			escapeChunk(&b, s[start:i])
			b.WriteString(`\x09`)
			start = i + 1
		}
	}
	escapeChunk(&b, s[start:])
	return b.String()
}

func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// escapeChunk writes a run of bytes that holds no TAB or backslash.
func escapeChunk(b *strings.Builder, s string) {
	bad := hasBadUTF8(s)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
			i++
		case c < 0x80 || bad:
			hexByte(b, c)
			i++
		default:
			_, n := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+n])
			i += n
		}
	}
}

// hasBadUTF8 reports whether s holds a byte sequence Zeek will not pass
// through raw.
func hasBadUTF8(s string) bool {
	for i := 0; i < len(s); {
		if s[i] < 0x80 {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1, // invalid, truncated, overlong, surrogate
			r >= 0x80 && r <= 0x9f,     // C1 controls
			r >= 0xe000 && r <= 0xf8ff, // private use area
			r >= 0xfff0 && r <= 0xffff: // specials, U+FFFD included
			return true
		}
		i += n
	}
	return false
}

func hexByte(b *strings.Builder, c byte) {
	const digits = "0123456789abcdef"
	b.WriteString(`\x`)
	b.WriteByte(digits[c>>4])
	b.WriteByte(digits[c&0xf])
}

// EscapeInput makes s one field of a file for Zeek's input framework (an
// Intel file): its reader decodes \xHH (and nothing else), so control
// bytes, backslashes and invalid UTF-8 are written that way; whole values
// "-" and "(empty)" are escaped so they do not read as unset or empty.
func EscapeInput(s string) string {
	switch s {
	case "":
		return EmptyField
	case UnsetField:
		return `\x2d`
	case EmptyField:
		return `\x28empty)`
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			hexByte(&b, c)
			i++
			continue
		}
		if c < 0x80 {
			b.WriteByte(c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			hexByte(&b, c)
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}
