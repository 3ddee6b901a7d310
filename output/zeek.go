package output

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stackprint/stackprint"
)

// The stackprint.log columns. Keep names and types in step; a change here
// makes OpenFingerprintLog start a new header block in existing files.
const (
	logFields = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tserver_name\tstatus\tjarm\tconns\tduration\terror\tmatched\tmatch_label\tmatch_source"
	logTypes  = "time\tstring\taddr\tport\taddr\tport\tstring\tstring\tstring\tcount\tinterval\tstring\tbool\tstring\tstring"

	zeekTimeLayout = "2006-01-02-15-04-05" // #open and #close, like Zeek's strftime %Y-%m-%d-%H-%M-%S
	unsetField     = "-"
	emptyField     = "(empty)"
)

// FingerprintLog writes stackprint.log: one Zeek TSV record per probed
// target. It is safe for concurrent use.
type FingerprintLog struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	w      *bufio.Writer
	now    func() time.Time
	closed bool
}

// OpenFingerprintLog opens path for appending, creating it with mode 0640.
// now stamps #open and #close in its own location (time.Now, the default
// when now is nil, gives local time as Zeek does). See the package doc for
// when a header is written.
func OpenFingerprintLog(path string, now func() time.Time) (*FingerprintLog, error) {
	if now == nil {
		now = time.Now
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open fingerprint log: %w", err)
	}
	l := &FingerprintLog{path: path, f: f, w: bufio.NewWriter(f), now: now}
	rotate, err := l.start()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open fingerprint log %q: %w", path, err)
	}
	if rotate {
		// Zeek never appends after #close, and readers stop there: move the
		// finished file aside, as Zeek's own rotation names it, and begin anew.
		f.Close()
		aside := rotatedName(path, now())
		if err := os.Rename(path, aside); err != nil {
			return nil, fmt.Errorf("rotate closed fingerprint log %q: %w", path, err)
		}
		return OpenFingerprintLog(path, now)
	}
	return l, nil
}

// rotatedName is path with the time inserted before the extension, like
// Zeek's conn.2015-01-20-15-23-42.log.
func rotatedName(path string, t time.Time) string {
	ext := filepath.Ext(path)
	base := strings.TrimSuffix(path, ext)
	name := base + "." + t.Format(zeekTimeLayout) + ext
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return name
		}
		name = fmt.Sprintf("%s.%s-%d%s", base, t.Format(zeekTimeLayout), i, ext)
	}
}

// start terminates a torn last line and writes a header unless the file
// already ends in an open block with our columns.
func (l *FingerprintLog) start() (rotate bool, err error) {
	st, err := l.f.Stat()
	if err != nil {
		return false, err
	}
	needHeader := true
	if size := st.Size(); size > 0 {
		torn, err := endsTorn(l.f)
		if err != nil {
			return false, err
		}
		last, err := lastLine(l.f, size)
		if err != nil {
			return false, err
		}
		fields, err := lastLineWithPrefix(l.f, size, "#fields\t")
		if err != nil {
			return false, err
		}
		if bytes.HasPrefix(last, []byte("#close")) || string(fields) != "#fields\t"+logFields {
			return true, nil
		}
		if torn {
			l.w.WriteByte('\n')
		}
		needHeader = false
	}
	if needHeader {
		fmt.Fprintf(l.w, "#separator \\x09\n#set_separator\t,\n#empty_field\t%s\n#unset_field\t%s\n#path\tstackprint\n#open\t%s\n#fields\t%s\n#types\t%s\n",
			emptyField, unsetField, l.now().Format(zeekTimeLayout), logFields, logTypes)
	}
	// The header goes out now so a reader of the file sees a valid log even
	// before the first probe finishes.
	return false, l.flushLocked()
}

// Write buffers the record of one probed target: ev is the event that
// triggered the probe, r its result and m the DB match, nil when none. It
// is durable only after Flush.
func (l *FingerprintLog) Write(ev stackprint.Event, r stackprint.Result, m *stackprint.Match) error {
	line := formatRecord(ev, r, m)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("write %s: log closed", l.path)
	}
	if _, err := l.w.WriteString(line); err != nil {
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	return nil
}

func formatRecord(ev stackprint.Event, r stackprint.Result, m *stackprint.Match) string {
	target := r.Target
	if !target.IP.IsValid() {
		target = ev.Target()
	}
	ts := r.Started
	if ts.IsZero() {
		ts = ev.TS
	}
	var b strings.Builder
	field := func(s string) {
		if b.Len() > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(s)
	}
	field(zeekTime(ts))
	field(optString(ev.ConnID()))
	field(zeekAddr(ev.Orig.Addr()))
	field(zeekPort(ev.Orig.Addr(), ev.Orig.Port()))
	field(zeekAddr(target.IP))
	field(zeekPort(target.IP, target.Port))
	field(optString(target.SNI))
	field(optString(string(r.Status)))
	field(optString(r.JARM))
	field(strconv.Itoa(max(r.Conns, 0)))
	field(zeekInterval(r.Duration))
	field(optString(r.Error))
	if m == nil {
		field("F")
		field(unsetField)
		field(unsetField)
	} else {
		field("T")
		field(ZeekEscape(m.Label))
		field(ZeekEscape(m.Source))
	}
	b.WriteByte('\n')
	return b.String()
}

// optString renders an optional string: absent ("") is unset.
func optString(s string) string {
	if s == "" {
		return unsetField
	}
	return ZeekEscape(s)
}

func zeekAddr(a netip.Addr) string {
	if !a.IsValid() {
		return unsetField
	}
	return a.String()
}

func zeekPort(a netip.Addr, port uint16) string {
	if !a.IsValid() {
		return unsetField
	}
	return strconv.Itoa(int(port))
}

// zeekTime renders seconds since the epoch with exactly six decimals, as
// Zeek's ASCII writer does.
func zeekTime(t time.Time) string {
	if t.IsZero() {
		return unsetField
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

// Flush writes buffered records and fsyncs the file.
func (l *FingerprintLog) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("flush %s: log closed", l.path)
	}
	return l.flushLocked()
}

func (l *FingerprintLog) flushLocked() error {
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("flush %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", l.path, err)
	}
	return nil
}

// Close writes #close, flushes and closes the file. Closing twice is a
// no-op.
func (l *FingerprintLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	fmt.Fprintf(l.w, "#close\t%s\n", l.now().Format(zeekTimeLayout))
	err := l.flushLocked()
	if cerr := l.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", l.path, cerr)
	}
	return err
}

// ZeekEscape renders s as the value of a Zeek TSV string field, byte for
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
func ZeekEscape(s string) string {
	switch s {
	case "":
		return emptyField
	case unsetField:
		return `\x2d`
	case emptyField:
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
