package tailer

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// FieldError is a malformed line: the named field is missing or its value
// cannot be used. Parsers return it; the tailer wraps it with the file and
// line number.
type FieldError struct {
	Field string // the field name as the log spells it ("id.resp_h", "id_resp_h", "flow_id")
	Value string // the offending raw value, truncated; empty when the field is missing
	Err   error
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("field %q: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("field %q: %v: %q", e.Field, e.Err, e.Value)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Errors carried by FieldError.
var (
	ErrMissingField = errors.New("missing")
	errBadTime      = errors.New("invalid timestamp")
	errBadAddr      = errors.New("invalid IP address")
	errBadPort      = errors.New("invalid port")
	errBadNumber    = errors.New("invalid number")
)

func fieldErr(field string, raw []byte, err error) error {
	const maxShown = 64
	v := raw
	if len(v) > maxShown {
		v = v[:maxShown]
	}
	return &FieldError{Field: field, Value: string(v), Err: err}
}

// parseEpoch parses a decimal epoch time in seconds ("1521911720.615923",
// "1332008617", "-0.4") exactly to the nanosecond. With millisOK an integral
// value of magnitude >= 1e11 is taken as milliseconds (Zeek JSON TS_MILLIS).
func parseEpoch(b []byte, millisOK bool) (time.Time, error) {
	if len(b) == 0 {
		return time.Time{}, errBadTime
	}
	i, neg := 0, false
	if b[0] == '-' || b[0] == '+' {
		neg = b[0] == '-'
		i++
	}
	var sec int64
	digits := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if digits >= 18 {
			return time.Time{}, errBadTime
		}
		sec = sec*10 + int64(b[i]-'0')
		digits++
	}
	var nsec int64
	frac := false
	if i < len(b) && b[i] == '.' {
		frac = true
		i++
		scale := int64(100000000)
		fd := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			nsec += int64(b[i]-'0') * scale
			scale /= 10
			fd++
		}
		if fd == 0 && digits == 0 {
			return time.Time{}, errBadTime
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		// Exponent form: rare, go through float64 (microsecond precision).
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil || f > 1e17 || f < -1e17 {
			return time.Time{}, errBadTime
		}
		whole := int64(f)
		return time.Unix(whole, int64((f-float64(whole))*1e9)).UTC(), nil
	}
	if i != len(b) || digits == 0 && !frac {
		return time.Time{}, errBadTime
	}
	if millisOK && !frac && sec >= 1e11 {
		nsec = (sec % 1000) * 1e6
		sec /= 1000
	}
	if neg {
		sec, nsec = -sec, -nsec
	}
	return time.Unix(sec, nsec).UTC(), nil
}

func atoiFixed(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}

// parseISOTime parses RFC 3339-like timestamps as Zeek (ISO8601, "Z") and
// Suricata ("-0400", offset without a colon) write them:
// YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm|±hhmm|±hh). A missing zone means UTC.
// The result is in UTC.
func parseISOTime(b []byte) (time.Time, error) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, errBadTime
	}
	year, ok1 := atoiFixed(b[0:4])
	month, ok2 := atoiFixed(b[5:7])
	day, ok3 := atoiFixed(b[8:10])
	hour, ok4 := atoiFixed(b[11:13])
	minute, ok5 := atoiFixed(b[14:16])
	sec, ok6 := atoiFixed(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 ||
		hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, errBadTime
	}
	i := 19
	nsec := 0
	if i < len(b) && b[i] == '.' {
		i++
		scale := 100000000
		start := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			nsec += int(b[i]-'0') * scale
			scale /= 10
		}
		if i == start {
			return time.Time{}, errBadTime
		}
	}
	offset := 0
	if i < len(b) {
		switch b[i] {
		case 'Z', 'z':
			i++
		case '+', '-':
			sign := 1
			if b[i] == '-' {
				sign = -1
			}
			z := b[i+1:]
			var hh, mm int
			var ok bool
			switch {
			case len(z) == 2:
				hh, ok = atoiFixed(z)
			case len(z) == 4:
				hh, ok = atoiFixed(z[:2])
				if ok {
					mm, ok = atoiFixed(z[2:])
				}
			case len(z) == 5 && z[2] == ':':
				hh, ok = atoiFixed(z[:2])
				if ok {
					mm, ok = atoiFixed(z[3:])
				}
			}
			if !ok || hh > 23 || mm > 59 {
				return time.Time{}, errBadTime
			}
			offset = sign * (hh*3600 + mm*60)
			i = len(b)
		default:
			return time.Time{}, errBadTime
		}
	}
	if i != len(b) {
		return time.Time{}, errBadTime
	}
	if day > daysIn(year, month) && sec != 60 {
		return time.Time{}, errBadTime // e.g. February 30
	}
	// As time.Date would normalise it (a day past the month's end runs
	// into the next), without its general arithmetic.
	unix := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return time.Unix(unix, int64(nsec)).UTC(), nil
}

// daysIn is the number of days of month in year (proleptic Gregorian).
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to year-month-day
// (proleptic Gregorian; day may run past the month's end).
func daysFromCivil(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := int64(month+9) % 12 // March = 0
	doy := (153*mp+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// parsePort parses a decimal port number.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	n, ok := atoiFixed(b)
	if !ok || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// parseAddr parses an IPv4 or IPv6 address (expanded or compressed) and
// canonicalises it. Dotted IPv4 is parsed without allocating.
func parseAddr(b []byte) (netip.Addr, bool) {
	if a, ok := parseIPv4(b); ok {
		return a, true
	}
	if len(b) == 0 || len(b) > 64 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil {
		return netip.Addr{}, false
	}
	return stackprint.CanonicalAddr(a), true
}

func parseIPv4(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	part, i := 0, 0
	for part < 4 {
		start := i
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 3 {
			n = n*10 + int(b[i]-'0')
			i++
		}
		l := i - start
		if l == 0 || n > 255 || (l > 1 && b[start] == '0') {
			return netip.Addr{}, false
		}
		ip[part] = byte(n)
		part++
		if part < 4 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

// parseUint64 parses a non-negative decimal integer without going through
// float64 (Suricata flow_id can exceed 2^53).
func parseUint64(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// TLSVersion normalises the TLS version strings of Zeek ("TLSv12",
// "TLSv13", "SSLv3", "DTLSv12", "unknown-NNNNN") and Suricata ("TLSv1",
// "TLS 1.2", "TLS 1.3 draft-23", "SSLv2", "UNDETERMINED") to a protocol
// ("tls", "ssl", "dtls") and a version ("1.0", "1.2", "1.3", "3.0", …), as
// ECS tls.version_protocol and tls.version. ok is false when the string
// names no version (UNDETERMINED, unknown-…, empty); that is not an error.
func TLSVersion(s string) (proto, version string, ok bool) {
	s = strings.TrimSpace(s)
	u := strings.ToUpper(s)
	var rest string
	switch {
	case strings.HasPrefix(u, "DTLS"):
		proto, rest = "dtls", s[4:]
	case strings.HasPrefix(u, "TLS"):
		proto, rest = "tls", s[3:]
	case strings.HasPrefix(u, "SSL"):
		proto, rest = "ssl", s[3:]
	default:
		return "", "", false
	}
	rest = strings.TrimLeft(rest, "v ")
	if i := strings.IndexAny(rest, " -"); i >= 0 {
		rest = rest[:i] // "1.3 draft-23"
	}
	switch rest {
	case "":
		return "", "", false
	case "1", "10", "1.0":
		version = "1.0"
	case "11", "1.1":
		version = "1.1"
	case "12", "1.2":
		version = "1.2"
	case "13", "1.3":
		version = "1.3"
	case "2", "2.0":
		version = "2.0"
	case "3", "3.0":
		version = "3.0"
	default:
		return "", "", false
	}
	return proto, version, true
}

// canonicalSNI is stackprint.CanonicalSNI of b, without its IP-literal
// parse for the common case: a lower-case host name (letters, digits, '-'
// and '.', at least one letter, no trailing dot) is already canonical and
// cannot be an IP literal.
func canonicalSNI(b []byte, a *strArena) string {
	letter := false
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9' || c == '-' || c == '.':
		default:
			return stackprint.CanonicalSNI(string(b))
		}
	}
	if !letter || b[len(b)-1] == '.' || string(b) == "-" {
		return stackprint.CanonicalSNI(string(b))
	}
	return a.str(b)
}

// MaxSNIBytes is the longest host name: 253 bytes of labels and dots (RFC
// 1035), which RFC 6066 requires the server_name HostName to be.
const MaxSNIBytes = 253

// ValidSNI reports whether a canonical SNI (stackprint.CanonicalSNI) is a
// DNS host name as RFC 6066 defines it: ASCII, at most 253 bytes, labels of
// 1..63 letters, digits and hyphens. Underscores are accepted because real
// names carry them.
func ValidSNI(s string) bool {
	if len(s) == 0 || len(s) > MaxSNIBytes {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			if label++; label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}
