package zeeklog

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

	"github.com/stackprint/stackprint/internal/fileio"
)

// Format is the writer mode of a Zeek log: LogAscii with or without
// use_json.
type Format string

// The Zeek log formats.
const (
	TSV  Format = "tsv"
	JSON Format = "json"
)

// Field is one column: its flattened name (id.orig_h) and Zeek type
// (time, interval, string, enum, addr, port, count, int, double, bool,
// set[string], vector[string]).
type Field struct {
	Name, Type string
}

// Schema is a log stream: its #path and its columns.
type Schema struct {
	Path   string
	Fields []Field
}

func (s Schema) fieldsLine() string {
	var b strings.Builder
	b.WriteString("#fields")
	for _, f := range s.Fields {
		b.WriteString("\t" + f.Name)
	}
	return b.String()
}

func (s Schema) typesLine() string {
	var b strings.Builder
	b.WriteString("#types")
	for _, f := range s.Fields {
		b.WriteString("\t" + f.Type)
	}
	return b.String()
}

// Options configures a Log.
type Options struct {
	Format Format // default TSV
	// RotateInterval rotates at multiples of the interval since local
	// midnight (1h rotates on the hour), like Zeek's rotation_interval.
	// 0 never rotates by time.
	RotateInterval time.Duration
	// RotateSize rotates before a record would take the file past this
	// many bytes. 0 never rotates by size.
	RotateSize int64
	// Now stamps #open and #close and drives rotation; default time.Now,
	// whose local time is what Zeek writes.
	Now func() time.Time
}

// Log writes one Zeek log file (TSV with Zeek's exact header, or JSON
// lines) and rotates it the way Zeek does: #close, rename to
// PATH-BASE.YYYY-MM-DD-HH-MM-SS.EXT (the file's open time), and a new file
// begun on the next record. It is safe for concurrent use.
//
// Values passed to Write follow the column's Zeek type:
//
//	nil                         unset ("-"; left out in JSON)
//	time       time.Time        zero time is unset
//	interval   time.Duration
//	string, enum  string        "" is "(empty)" in TSV, "" in JSON
//	addr       netip.Addr       an invalid address is unset
//	port       uint16 or int
//	count      uint64 or int (not negative)
//	int        int64 or int
//	double     float64
//	bool       bool
//	set[string], vector[string]  []string; empty is "(empty)" / []
type Log struct {
	mu         sync.Mutex
	path       string
	schema     Schema
	opts       Options
	f          *os.File // nil between a rotation and the next record
	w          *bufio.Writer
	size       int64 // bytes in the current file, buffered ones included
	hdr        int64 // bytes of the header this writer wrote to it
	opened     time.Time
	nextRotate time.Time
	closed     bool
}

// Open opens path for appending, creating it (mode 0640) with a
// header. An existing TSV file is appended to only when it is still open
// (no #close) and its last #fields line is this schema's; otherwise it is
// moved aside under Zeek's rotated name, since Zeek never appends after
// #close and readers stop there. A torn last line (a crash mid-write) is
// ended first so the next record starts on its own line.
func Open(path string, schema Schema, opts Options) (*Log, error) {
	if opts.Format == "" {
		opts.Format = TSV
	}
	if opts.Format != TSV && opts.Format != JSON {
		return nil, fmt.Errorf("zeek log %s: unknown format %q (want tsv or json)", path, opts.Format)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Log{path: path, schema: schema, opts: opts}
	if err := l.open(true); err != nil {
		return nil, fmt.Errorf("open zeek log %s: %w", path, err)
	}
	return l, nil
}

// open opens or creates the file; resume allows appending to an existing
// one.
func (l *Log) open(resume bool) error {
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	now := l.opts.Now()
	l.f, l.w, l.size, l.hdr, l.opened = f, bufio.NewWriter(f), st.Size(), 0, now
	if st.Size() > 0 {
		appendable, opened, err := l.inspect(st.Size())
		if err != nil || !resume || !appendable {
			f.Close()
			l.f = nil
			if err != nil {
				return err
			}
			if opened.IsZero() {
				opened = now
			}
			if err := rotateAside(l.path, opened); err != nil {
				return err
			}
			return l.open(false)
		}
		if torn, err := fileio.EndsTorn(f); err != nil {
			f.Close()
			l.f = nil
			return err
		} else if torn {
			l.w.WriteByte('\n')
			l.size++
		}
		if !opened.IsZero() {
			l.opened = opened
		}
	} else if l.opts.Format == TSV {
		l.writeHeader(now)
	}
	l.scheduleRotation(now)
	// The header goes out now so a reader sees a valid log even before the
	// first record.
	return l.flushLocked()
}

// inspect decides whether an existing file can be appended to, and returns
// its #open time when it has one.
func (l *Log) inspect(size int64) (appendable bool, opened time.Time, err error) {
	if l.opts.Format == JSON {
		// JSON logs have no header or #close; lines carry their own names.
		return true, time.Time{}, nil
	}
	last, err := fileio.LastLine(l.f, size)
	if err != nil {
		return false, time.Time{}, err
	}
	fields, err := fileio.LastLineWithPrefix(l.f, size, "#fields\t")
	if err != nil {
		return false, time.Time{}, err
	}
	if open, err := fileio.LastLineWithPrefix(l.f, size, "#open\t"); err == nil && open != nil {
		if t, err := time.ParseInLocation(TimeLayout, string(bytes.TrimPrefix(open, []byte("#open\t"))), l.opts.Now().Location()); err == nil {
			opened = t
		}
	}
	ok := !bytes.HasPrefix(last, []byte("#close")) && string(fields) == l.schema.fieldsLine()
	return ok, opened, nil
}

func (l *Log) writeHeader(now time.Time) {
	n, _ := l.w.Write(l.schema.AppendHeader(nil, now))
	l.size += int64(n)
	l.hdr = int64(n)
}

// AppendHeader appends the TSV header block Zeek's ASCII writer begins a
// log with, stamped #open at open.
func (s Schema) AppendHeader(b []byte, open time.Time) []byte {
	return fmt.Appendf(b, "#separator \\x09\n#set_separator\t,\n#empty_field\t%s\n#unset_field\t%s\n#path\t%s\n#open\t%s\n%s\n%s\n",
		EmptyField, UnsetField, s.Path, open.Format(TimeLayout), s.fieldsLine(), s.typesLine())
}

// scheduleRotation sets the next interval boundary after now.
func (l *Log) scheduleRotation(now time.Time) {
	l.nextRotate = time.Time{}
	if iv := l.opts.RotateInterval; iv > 0 {
		y, m, d := now.Date()
		base := time.Date(y, m, d, 0, 0, 0, 0, now.Location())
		n := now.Sub(base)/iv + 1
		l.nextRotate = base.Add(n * iv)
	}
}

// rotateAside renames path to its rotated name, stamped with the file's
// open time.
func rotateAside(path string, opened time.Time) error {
	aside := rotatedName(path, opened)
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	return fileio.SyncDir(filepath.Dir(path))
}

// rotatedName is path with the time inserted before the extension, like
// Zeek's conn.2015-01-20-15-23-42.log; a name already taken gets -1, -2...
func rotatedName(path string, t time.Time) string {
	ext := filepath.Ext(path)
	base := strings.TrimSuffix(path, ext)
	name := base + "." + t.Format(TimeLayout) + ext
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return name
		}
		name = fmt.Sprintf("%s.%s-%d%s", base, t.Format(TimeLayout), i, ext)
	}
}

// Write buffers one record (values in column order); it is durable only
// after Flush. A record that would cross a rotation boundary goes to the
// next file.
func (l *Log) Write(rec []any) error {
	line, err := l.format(rec)
	if err != nil {
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("write %s: log closed", l.path)
	}
	now := l.opts.Now()
	if l.f != nil && l.rotationDue(now, int64(len(line))) {
		if err := l.rotateLocked(now); err != nil {
			return err
		}
	}
	if l.f == nil {
		if err := l.open(false); err != nil {
			return fmt.Errorf("reopen %s after rotation: %w", l.path, err)
		}
	}
	n, err := l.w.Write(line)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	return nil
}

func (l *Log) rotationDue(now time.Time, next int64) bool {
	if !l.nextRotate.IsZero() && !now.Before(l.nextRotate) {
		return true
	}
	// A file holding only its header is never rotated for size: the record
	// would not fit in the next one either.
	return l.opts.RotateSize > 0 && l.size+next > l.opts.RotateSize && l.size > l.hdr
}

// MaybeRotate rotates when the rotation interval has passed; the daemon
// calls it from a ticker so a quiet log still rotates on time.
func (l *Log) MaybeRotate() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.f == nil {
		return nil
	}
	now := l.opts.Now()
	if l.nextRotate.IsZero() || now.Before(l.nextRotate) {
		return nil
	}
	return l.rotateLocked(now)
}

// Rotate closes the current file (TSV: with #close), renames it to its
// rotated name and begins a new file with the next record.
func (l *Log) Rotate() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("rotate %s: log closed", l.path)
	}
	if l.f == nil {
		return nil
	}
	return l.rotateLocked(l.opts.Now())
}

func (l *Log) rotateLocked(now time.Time) error {
	if err := l.closeFileLocked(now); err != nil {
		return err
	}
	if err := rotateAside(l.path, l.opened); err != nil {
		return err
	}
	l.scheduleRotation(now)
	return nil
}

// closeFileLocked writes #close (TSV), flushes, fsyncs and closes.
func (l *Log) closeFileLocked(now time.Time) error {
	if l.opts.Format == TSV {
		fmt.Fprintf(l.w, "#close\t%s\n", now.Format(TimeLayout))
	}
	err := l.flushLocked()
	if cerr := l.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", l.path, cerr)
	}
	l.f, l.w = nil, nil
	return err
}

// Rollback undoes a failed write: the buffered records are dropped and the
// file is cut back to its last whole line (a TSV file that lost its header
// gets it again), so a write that ran out of space leaves no partial
// record. The caller writes the dropped records again.
func (l *Log) Rollback() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.f == nil {
		return nil
	}
	l.w.Reset(l.f)
	size, torn, err := fileio.TruncateTorn(l.f)
	if err != nil {
		return fmt.Errorf("roll back %s: %w", l.path, err)
	}
	if size < l.hdr { // part of the header this writer began the file with
		if err := l.f.Truncate(0); err != nil {
			return fmt.Errorf("roll back %s: %w", l.path, err)
		}
		size = 0
	}
	l.size = size
	switch {
	case torn:
		l.w.WriteByte('\n')
		l.size++
	case size == 0 && l.opts.Format == TSV:
		l.writeHeader(l.opened)
	}
	return nil
}

// FlushBuffer hands buffered records to the OS without an fsync: readers
// see them at once and they survive a crash of this process; Flush (at a
// checkpoint) makes them durable against power loss too.
func (l *Log) FlushBuffer() error { return l.flush(false) }

// Flush writes buffered records and fsyncs the file.
func (l *Log) Flush() error { return l.flush(true) }

func (l *Log) flush(sync bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("flush %s: log closed", l.path)
	}
	if l.f == nil {
		return nil
	}
	if !sync {
		if err := l.w.Flush(); err != nil {
			return fmt.Errorf("flush %s: %w", l.path, err)
		}
		return nil
	}
	return l.flushLocked()
}

func (l *Log) flushLocked() error {
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("flush %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", l.path, err)
	}
	return nil
}

// Close writes #close (TSV), flushes and closes the file. Closing twice
// is a no-op.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.f == nil {
		return nil
	}
	return l.closeFileLocked(l.opts.Now())
}

// format renders one record as a line, newline included.
func (l *Log) format(rec []any) ([]byte, error) {
	return l.schema.format(l.opts.Format, rec)
}

// AppendRecord appends one record (values in column order, typed as Log.Write
// takes them) as a line in format f, newline included.
func (s Schema) AppendRecord(b []byte, f Format, rec []any) ([]byte, error) {
	line, err := s.format(f, rec)
	if err != nil {
		return b, err
	}
	return append(b, line...), nil
}

func (s Schema) format(format Format, rec []any) ([]byte, error) {
	if len(rec) != len(s.Fields) {
		return nil, fmt.Errorf("%d values for %d fields", len(rec), len(s.Fields))
	}
	var b bytes.Buffer
	if format == JSON {
		b.WriteByte('{')
		n := 0
		for i, f := range s.Fields {
			if isUnset(rec[i]) {
				continue // json_include_unset_fields=F
			}
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			writeJSONString(&b, f.Name)
			b.WriteByte(':')
			if err := jsonValue(&b, f.Type, rec[i]); err != nil {
				return nil, fmt.Errorf("field %s: %w", f.Name, err)
			}
		}
		b.WriteString("}\n")
		return b.Bytes(), nil
	}
	for i, f := range s.Fields {
		if i > 0 {
			b.WriteByte('\t')
		}
		s, err := tsvValue(f.Type, rec[i])
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		b.WriteString(s)
	}
	b.WriteByte('\n')
	out := b.Bytes()
	if out[0] == '#' {
		// Zeek's DoWrite: a record must never read as a header line.
		out = append([]byte(`\x23`), out[1:]...)
	}
	return out, nil
}

func isUnset(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case time.Time:
		return x.IsZero()
	case netip.Addr:
		return !x.IsValid()
	}
	return false
}

func tsvValue(typ string, v any) (string, error) {
	if isUnset(v) {
		return UnsetField, nil
	}
	switch typ {
	case "time":
		t, ok := v.(time.Time)
		if !ok {
			return "", typeErr(typ, v)
		}
		return zeekTime(t), nil
	case "interval":
		d, ok := v.(time.Duration)
		if !ok {
			return "", typeErr(typ, v)
		}
		return zeekInterval(d), nil
	case "string", "enum":
		s, ok := v.(string)
		if !ok {
			return "", typeErr(typ, v)
		}
		return Escape(s), nil
	case "addr":
		a, ok := v.(netip.Addr)
		if !ok {
			return "", typeErr(typ, v)
		}
		return a.Unmap().String(), nil
	case "port", "count", "int":
		n, err := integer(typ, v)
		if err != nil {
			return "", err
		}
		return n, nil
	case "double":
		f, ok := v.(float64)
		if !ok {
			return "", typeErr(typ, v)
		}
		return zeekDouble(f), nil
	case "bool":
		b, ok := v.(bool)
		if !ok {
			return "", typeErr(typ, v)
		}
		if b {
			return "T", nil
		}
		return "F", nil
	case "set[string]", "vector[string]", "set[enum]", "vector[enum]":
		ss, ok := v.([]string)
		if !ok {
			return "", typeErr(typ, v)
		}
		if len(ss) == 0 {
			return EmptyField, nil
		}
		parts := make([]string, len(ss))
		for i, s := range ss {
			// set_separator inside an element is \x2c; Escape never
			// produces a comma itself.
			parts[i] = strings.ReplaceAll(Escape(s), ",", `\x2c`)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("unsupported Zeek type %s", typ)
}

func integer(typ string, v any) (string, error) {
	switch x := v.(type) {
	case int:
		if typ != "int" && x < 0 {
			return "", fmt.Errorf("negative %s %d", typ, x)
		}
		return strconv.Itoa(x), nil
	case int64:
		if typ != "int" && x < 0 {
			return "", fmt.Errorf("negative %s %d", typ, x)
		}
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case uint16:
		return strconv.Itoa(int(x)), nil
	}
	return "", typeErr(typ, v)
}

func typeErr(typ string, v any) error {
	return fmt.Errorf("a %T is not a Zeek %s", v, typ)
}

// zeekDouble is Zeek's shortest form with ".0" added when integral.
func zeekDouble(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eEn") { // not NaN/Inf
		s += ".0"
	}
	return s
}

// jsonSeconds renders microseconds as Zeek's JSON writer renders a time or
// interval double: the shortest decimal, ".0" when integral. At µs
// resolution and epoch magnitudes the six-decimal form with trailing zeros
// trimmed is that shortest form.
func jsonSeconds(us int64) string {
	s := micros(us)
	s = strings.TrimRight(s, "0")
	if strings.HasSuffix(s, ".") {
		s += "0"
	}
	return s
}

func jsonValue(b *bytes.Buffer, typ string, v any) error {
	switch typ {
	case "time":
		t, ok := v.(time.Time)
		if !ok {
			return typeErr(typ, v)
		}
		b.WriteString(jsonSeconds(t.Round(time.Microsecond).UnixMicro()))
	case "interval":
		d, ok := v.(time.Duration)
		if !ok {
			return typeErr(typ, v)
		}
		b.WriteString(jsonSeconds(d.Round(time.Microsecond).Microseconds()))
	case "string", "enum":
		s, ok := v.(string)
		if !ok {
			return typeErr(typ, v)
		}
		writeJSONString(b, EscapeJSON(s))
	case "addr":
		a, ok := v.(netip.Addr)
		if !ok {
			return typeErr(typ, v)
		}
		writeJSONString(b, a.Unmap().String())
	case "port", "count", "int":
		n, err := integer(typ, v)
		if err != nil {
			return err
		}
		b.WriteString(n)
	case "double":
		f, ok := v.(float64)
		if !ok {
			return typeErr(typ, v)
		}
		if f != f {
			b.WriteString("null") // NaN, as Zeek writes it
			return nil
		}
		b.WriteString(zeekDouble(f))
	case "bool":
		x, ok := v.(bool)
		if !ok {
			return typeErr(typ, v)
		}
		b.WriteString(strconv.FormatBool(x))
	case "set[string]", "vector[string]", "set[enum]", "vector[enum]":
		ss, ok := v.([]string)
		if !ok {
			return typeErr(typ, v)
		}
		b.WriteByte('[')
		for i, s := range ss {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, EscapeJSON(s))
		}
		b.WriteByte(']')
	default:
		return fmt.Errorf("unsupported Zeek type %s", typ)
	}
	return nil
}

// EscapeJSON applies what Zeek's JSON writer (default
// json_string_escape_policy HEX) does to a string before JSON encoding:
// valid UTF-8 and TAB, LF, CR, BS, FF pass (JSON then escapes those five);
// other control bytes and every byte of an invalid sequence become the
// text \xHH. A backslash is not doubled, so the text \x07 and the byte
// 0x07 look the same: Zeek's JSON strings cannot always be decoded back.
func EscapeJSON(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && !jsonShort(c) || c == 0x7f || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c < 0x20 && !jsonShort(c), c == 0x7f:
			hexByte(&b, c)
			i++
		case c < 0x80:
			b.WriteByte(c)
			i++
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n <= 1 {
				hexByte(&b, c)
				i++
				continue
			}
			b.WriteString(s[i : i+n])
			i += n
		}
	}
	return b.String()
}

func jsonShort(c byte) bool {
	return c == '\t' || c == '\n' || c == '\r' || c == '\b' || c == '\f'
}

// writeJSONString writes s (valid UTF-8) as a JSON string the way
// rapidjson does: quote, backslash and control characters escaped, the
// rest raw (no HTML escaping, no \u2028 escaping).
func writeJSONString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}
