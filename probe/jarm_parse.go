package probe

import (
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// jarmEmpty is the per-probe string of a probe without a usable answer.
const jarmEmpty = "|||"

// clamp is Python's d[a:b] on a bytes object: never fails, may be short.
func clamp(d []byte, a, b int) []byte {
	if a >= len(d) {
		return nil
	}
	if b > len(d) {
		b = len(d)
	}
	return d[a:b]
}

// beInt is jarm.py's int(codecs.encode(s, 'hex'), 16). ok is false for an
// empty slice, where Python raises ValueError.
func beInt(s []byte) (v int, ok bool) {
	if len(s) == 0 {
		return 0, false
	}
	for _, c := range s {
		v = v<<8 | int(c)
	}
	return v, true
}

// ParseJARMAnswer reduces the bytes of one probe answer to jarm.py's
// per-probe string "cipher|version|alpn|extensions" (docs/JARM.md §1.8),
// reproducing read_packet and extract_extension_info quirk for quirk:
// Python's clamped slices, the IndexError → "|" versus other error → "|||"
// asymmetry, the magic 0x0b / 0eac0b / absolute 0ff00b checks, and the
// strict UTF-8 ALPN with three bytes dropped. It never panics.
func ParseJARMAnswer(d []byte) string {
	// read_packet: any exception becomes "|||".
	if len(d) == 0 || d[0] == 0x15 {
		return jarmEmpty
	}
	if d[0] != 0x16 || len(d) < 6 || d[5] != 0x02 {
		return jarmEmpty
	}
	if len(d) < 44 {
		return jarmEmpty // data[43] raises IndexError
	}
	recLen := int(d[3])<<8 | int(d[4]) // jarm.py's "server_hello_length"
	sid := int(d[43])
	cipher := clamp(d, sid+44, sid+46)
	version := d[9:11]

	ext, ok := jarmExtensions(d, sid, recLen)
	if !ok {
		return jarmEmpty
	}
	var sb strings.Builder
	sb.Grow(2*len(cipher) + 2*len(version) + 2 + len(ext))
	sb.WriteString(hex.EncodeToString(cipher))
	sb.WriteByte('|')
	sb.WriteString(hex.EncodeToString(version))
	sb.WriteByte('|')
	sb.WriteString(ext)
	return sb.String()
}

// jarmExtensions is extract_extension_info. It returns "|" where jarm.py
// catches an IndexError or takes an early exit, and ok=false where any other
// exception escapes to read_packet (which then yields "|||").
func jarmExtensions(d []byte, sid, recLen int) (string, bool) {
	if len(d) <= sid+47 {
		return "|", true // IndexError
	}
	if d[sid+47] == 0x0b {
		return "|", true
	}
	if string(clamp(d, sid+50, sid+53)) == "\x0e\xac\x0b" || string(clamp(d, 82, 85)) == "\x0f\xf0\x0b" {
		return "|", true
	}
	if sid+42 >= recLen {
		return "|", true
	}
	total, _ := beInt(clamp(d, sid+47, sid+49)) // non-empty: d[sid+47] exists
	pos := sid + 49
	end := total + pos - 1 // the -1 is jarm.py's

	var types [][]byte
	var alpn []byte
	alpnSeen, alpnSentinel := false, false
	for pos < end {
		typ := clamp(d, pos, pos+2)
		n, ok := beInt(clamp(d, pos+2, pos+4))
		if !ok {
			return "", false // int('', 16) raises ValueError
		}
		types = append(types, typ)
		first := !alpnSeen && string(typ) == "\x00\x10"
		if first {
			alpnSeen = true
		}
		if n == 0 {
			// jarm.py stores the str "" here; calling .decode() on it
			// for an ALPN raises AttributeError.
			alpnSentinel = alpnSentinel || first
			pos += 4
			continue
		}
		if first {
			alpn = clamp(d, pos+4, pos+4+n)
		}
		pos += 4 + n
	}
	if alpnSentinel {
		return "", false
	}
	if alpnSeen {
		alpn = clamp(alpn, 3, len(alpn))
		if !utf8.Valid(alpn) {
			return "", false // UnicodeDecodeError
		}
	}

	var sb strings.Builder
	sb.Grow(len(alpn) + 1 + 5*len(types))
	sb.Write(alpn)
	sb.WriteByte('|')
	for i, t := range types {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(hex.EncodeToString(t))
	}
	return sb.String(), true
}
