package probe

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/stackprint/stackprint"
)

// jarmRawEmpty is the raw JARM of a run without any answer (and of every run
// aborted by a timeout).
const jarmRawEmpty = "|||,|||,|||,|||,|||,|||,|||,|||,|||,|||"

// ErrJARMHash marks the raw strings on which jarm.py's jarm_hash crashes.
var ErrJARMHash = errors.New("raw jarm not hashable")

// jarmHashCiphers is jarm.py's cipher_bytes list: position i (1-based, 2 hex
// digits) is the prefix code of the suite.
var jarmHashCiphers = [...]string{
	"0004", "0005", "0007", "000a", "0016", "002f", "0033", "0035", "0039", "003c",
	"003d", "0041", "0045", "0067", "006b", "0084", "0088", "009a", "009c", "009d",
	"009e", "009f", "00ba", "00be", "00c0", "00c4", "c007", "c008", "c009", "c00a",
	"c011", "c012", "c013", "c014", "c023", "c024", "c027", "c028", "c02b", "c02c",
	"c02f", "c030", "c060", "c061", "c072", "c073", "c076", "c077", "c09c", "c09d",
	"c09e", "c09f", "c0a0", "c0a1", "c0a2", "c0a3", "c0ac", "c0ad", "c0ae", "c0af",
	"cc13", "cc14", "cca8", "cca9", "1301", "1302", "1303", "1304", "1305",
}

// jarmCipherChars is cipher_bytes: "00" for no cipher, the 1-based index in
// hex, or 70 ("46") for anything not in the list.
func jarmCipherChars(c string) string {
	if c == "" {
		return "00"
	}
	for i, s := range jarmHashCiphers {
		if c == s {
			return fmt.Sprintf("%02x", i+1)
		}
	}
	return fmt.Sprintf("%02x", len(jarmHashCiphers)+1)
}

// jarmVersionChar is version_byte: "abcdef"[int(version[3:4])]. Python
// indexes code points and int() accepts any Unicode decimal digit, so a
// hostile field can still hash; digits 6-9, letters and short fields crash.
func jarmVersionChar(v string) (byte, error) {
	if v == "" {
		return '0', nil
	}
	i := 0
	for _, r := range v {
		if i < 3 {
			i++
			continue
		}
		d, ok := decimalValue(r)
		if !ok || d > 5 {
			return 0, fmt.Errorf("%w: version %q", ErrJARMHash, v)
		}
		return "abcdef"[d], nil
	}
	return 0, fmt.Errorf("%w: version %q shorter than 4 characters", ErrJARMHash, v)
}

// decimalValue is the value of a Unicode decimal digit as Python 3.11's
// int() reads it (Unicode 14.0). Every Nd digit belongs to a contiguous run
// 0..9, so a table of the runs' zeros suffices and keeps the answer
// independent of Go's Unicode version.
func decimalValue(r rune) (int, bool) {
	if r >= '0' && r <= '9' {
		return int(r - '0'), true
	}
	for _, z := range unicode14DigitZeros {
		if r >= z && r <= z+9 {
			return int(r - z), true
		}
	}
	return 0, false
}

// unicode14DigitZeros lists the non-ASCII DIGIT ZERO code points of Unicode
// 14.0 (category Nd), generated with Python 3.11's unicodedata.
var unicode14DigitZeros = [...]rune{
	0x0660, 0x06f0, 0x07c0, 0x0966, 0x09e6, 0x0a66, 0x0ae6, 0x0b66, 0x0be6, 0x0c66,
	0x0ce6, 0x0d66, 0x0de6, 0x0e50, 0x0ed0, 0x0f20, 0x1040, 0x1090, 0x17e0, 0x1810,
	0x1946, 0x19d0, 0x1a80, 0x1a90, 0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0,
	0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10, 0x104a0, 0x10d30, 0x11066, 0x110f0,
	0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950,
	0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec,
	0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
}

// JARMHash is jarm.py's jarm_hash (docs/JARM.md §1.9): 30 prefix characters from
// each probe's cipher and version, then the first 32 hex characters of the
// SHA-256 of all ALPN and extension fields concatenated. The all-"|||" raw
// hashes to stackprint.ZeroJARM.
//
// It errors (wrapping ErrJARMHash) exactly where jarm.py crashes: a piece
// with fewer than 4 "|" fields, or a version whose 4th character is not a
// decimal digit 0-5. Like jarm.py it hashes whatever pieces it is given, so a
// raw string with other than ten pieces (a hostile ALPN containing ",")
// yields a value that is not 62 characters long.
func JARMHash(raw string) (string, error) {
	if raw == jarmRawEmpty {
		return stackprint.ZeroJARM, nil
	}
	pieces := strings.Split(raw, ",")
	out := make([]byte, 0, 3*len(pieces)+32)
	h := sha256.New()
	for i, p := range pieces {
		f := strings.Split(p, "|")
		if len(f) < 4 {
			return "", fmt.Errorf("%w: piece %d %q has %d fields", ErrJARMHash, i+1, p, len(f))
		}
		v, err := jarmVersionChar(f[1])
		if err != nil {
			return "", fmt.Errorf("piece %d: %w", i+1, err)
		}
		out = append(out, jarmCipherChars(f[0])...)
		out = append(out, v)
		h.Write([]byte(f[2]))
		h.Write([]byte(f[3]))
	}
	sum := h.Sum(nil)
	out = append(out, hex.EncodeToString(sum)[:32]...)
	return string(out), nil
}

// jarmRawAmbiguous reports whether a per-probe string carries an ALPN with
// "|" or ",", which shifts the fields jarm_hash splits on.
func jarmRawAmbiguous(s string) bool {
	return strings.Count(s, "|") != 3 || strings.Contains(s, ",")
}
