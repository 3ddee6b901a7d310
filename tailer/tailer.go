package tailer

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stackprint/stackprint"
)

// Input formats.
const (
	FormatZeek = "zeek" // Zeek TSV or JSON, detected per file
	FormatEve  = "eve"  // Suricata eve.json
)

// Defaults of Options.
const (
	DefaultPollInterval  = 250 * time.Millisecond
	DefaultMaxLineBytes  = 1 << 20
	DefaultRotateWait    = 2 * time.Second
	DefaultMaxCatchUpAge = 7 * 24 * time.Hour
)

// Input is one configured log file.
type Input struct {
	Name string // becomes Event.Source; the file's base name when empty
	// Path is the file to follow, or a glob of files to follow together
	// (metacharacters in the file name only): time-named files
	// (eve-%Y-%m-%d-%H:%M.json) and threaded eve (eve.*.json).
	Path   string
	Format string // FormatZeek or FormatEve
	// Archives are globs of older generations of Path to consider when
	// catching up (for zeekctl: /opt/zeek/logs/20*/conn.*.log.gz), on top
	// of Path's rotated siblings in its own directory (conn.<digits…>.log,
	// eve.json.1, with or without .gz).
	Archives []string
	// FieldNames maps Zeek field names to the names this package knows
	// (Log::default_field_name_map); nil: only the standard names with
	// either scope separator.
	FieldNames map[string]string
}

// Handler receives each event. It may block (backpressure); it should
// return when ctx is done. A returned error stops the tailer.
type Handler func(ctx context.Context, ev stackprint.Event) error

// Options tune a Tailer or ReadFile. The zero value is usable.
type Options struct {
	PollInterval time.Duration // safety-net rescan even with fsnotify; default 250ms
	MaxLineBytes int           // longer lines are skipped and counted; default 1 MiB
	FromEnd      bool          // start at the end of a file that exists at start (its Zeek header is still read); not with Resume
	Logger       *slog.Logger  // nil: discard

	// RotateWait is how long a rotated (or deleted) file must stay quiet
	// before it is closed, unless it ended with #close; default 2s.
	RotateWait time.Duration
	// MaxCatchUpAge bounds the rotated and archived generations read
	// when catching up, by modification time; default 7 days.
	MaxCatchUpAge time.Duration
	// Resume holds the positions committed for this input (at most one per
	// Position.Path; see Position and the package documentation). A
	// position that cannot be found is logged, counted and ignored.
	Resume []Position
	// Progress, when set, is called from Run's goroutine, in order with
	// the handler calls, with the position reached after lines that were
	// not events (skipped, header, malformed, long): whenever a file has
	// been read to its end and when a file is finished. Committing it is
	// safe once every event handed before it is settled.
	Progress func(Position)
	// Started, when set, is called from Run's goroutine for each followed
	// path that has no position in Resume and is read from its start (not
	// FromEnd): once, just before the first line that could be an event is
	// handed to the handler, with the position where reading began (the
	// start of the file). The caller commits it before returning: until a
	// first checkpoint exists, a restart cannot tell "never started" from
	// "stopped before the first checkpoint" and takes the generations
	// already rotated away as history, so a daemon killed before its first
	// checkpoint would skip the generations rotated while it was down. An
	// error stops the tailer.
	Started func(Position) error
	// Watcher is a DirWatcher shared with other tailers; nil: the tailer
	// starts its own.
	Watcher *DirWatcher
}

func (o Options) withDefaults() Options {
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RotateWait <= 0 {
		o.RotateWait = DefaultRotateWait
	}
	if o.MaxCatchUpAge <= 0 {
		o.MaxCatchUpAge = DefaultMaxCatchUpAge
	}
	return o
}

// Stats counts what a tailer has seen. Every line read is counted in Lines
// and in at most one of Events, ParseErrors, Skipped or LongLines; header,
// comment and blank lines are counted in Lines only.
type Stats struct {
	Lines       uint64 // lines read, including header lines and long lines
	Events      uint64 // TLS events handed to the handler (counted before the call)
	ParseErrors uint64 // malformed lines
	Skipped     uint64 // valid records that are not TLS events (conn without ssl, eve dns, notice.log, …)
	LongLines   uint64 // lines longer than MaxLineBytes, dropped
	Rotations   uint64 // switches to a new file at the path (rename+create)
	Truncations uint64 // in-place truncations (restarted at offset 0)

	CatchUpFiles    uint64 // rotated or archived generations read (catch-up, resume, copytruncate copies)
	ResumeFallbacks uint64 // Resume positions not found: the file was read from the start
	PartialLines    uint64 // unfinished last lines of finished files, processed as lines
	NULBytes        uint64 // NUL bytes skipped at line starts (copytruncate with a non-append writer)
	InvalidSNI      uint64 // events whose SNI was not a host name (ValidSNI): delivered without it
}

type counters struct {
	lines, events, parseErrors, skipped, longLines, rotations, truncations atomic.Uint64
	catchUp, resumeFallbacks, partialLines, nulBytes, invalidSNI           atomic.Uint64
	lastEvent                                                              atomic.Int64 // unix nanoseconds
}

func (c *counters) snapshot() Stats {
	return Stats{
		Lines:       c.lines.Load(),
		Events:      c.events.Load(),
		ParseErrors: c.parseErrors.Load(),
		Skipped:     c.skipped.Load(),
		LongLines:   c.longLines.Load(),
		Rotations:   c.rotations.Load(),
		Truncations: c.truncations.Load(),

		CatchUpFiles:    c.catchUp.Load(),
		ResumeFallbacks: c.resumeFallbacks.Load(),
		PartialLines:    c.partialLines.Load(),
		NULBytes:        c.nulBytes.Load(),
		InvalidSNI:      c.invalidSNI.Load(),
	}
}

func unixNanoTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// lineParser is what ZeekParser and EveParser share.
type lineParser interface {
	parse(line []byte) (stackprint.Event, lineClass, error)
	reset()
}

func newParser(in Input) lineParser {
	if in.Format == FormatEve {
		return NewEveParser(in.Name)
	}
	p := NewZeekParser(in.Name)
	if in.FieldNames != nil {
		p.SetFieldNames(in.FieldNames)
	}
	return p
}

func validate(in Input) (Input, error) {
	switch in.Format {
	case FormatZeek, FormatEve:
	default:
		return in, fmt.Errorf("tailer: input %q: format %q: want %q or %q", in.Name, in.Format, FormatZeek, FormatEve)
	}
	if in.Path == "" {
		return in, fmt.Errorf("tailer: input %q: empty path", in.Name)
	}
	if in.Name == "" {
		in.Name = filepath.Base(in.Path)
	}
	return in, nil
}

// Tailer follows one file: see the package documentation.
type Tailer struct {
	in      Input
	opts    Options
	h       Handler
	log     *slog.Logger
	st      counters
	running atomic.Bool

	noWatch  bool               // tests: behave as if fsnotify could not start
	testHook func(where string) // tests: called by the follower at fixed points, to run a race deterministically
}

// New validates the input and returns a Tailer; Run starts it.
func New(in Input, opts Options, h Handler) (*Tailer, error) {
	in, err := validate(in)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("tailer: input %q: nil handler", in.Name)
	}
	if strings.HasSuffix(in.Path, ".gz") {
		return nil, fmt.Errorf("tailer: input %q: cannot follow the compressed file %s (a gzip file being written is not readable line by line); use ReadFile for archives", in.Name, in.Path)
	}
	if strings.ContainsAny(filepath.Dir(in.Path), "*?[") {
		return nil, fmt.Errorf("tailer: input %q: path %s: glob metacharacters are only supported in the file name", in.Name, in.Path)
	}
	for _, g := range in.Archives {
		if _, err := filepath.Match(g, ""); err != nil {
			return nil, fmt.Errorf("tailer: input %q: archives glob %q: %w", in.Name, g, err)
		}
	}
	opts = opts.withDefaults()
	return &Tailer{
		in:   in,
		opts: opts,
		h:    h,
		log:  opts.Logger.With("input", in.Name, "path", in.Path),
	}, nil
}

// Stats returns the counters so far. It is safe for concurrent use.
func (t *Tailer) Stats() Stats { return t.st.snapshot() }

// LastEvent returns when the last event was handed to the handler, zero
// before the first. It is safe for concurrent use.
func (t *Tailer) LastEvent() time.Time { return unixNanoTime(t.st.lastEvent.Load()) }

// fileCtx is the per-file state of line processing.
type fileCtx struct {
	path      string // Event.File
	ident     string // Event.Ident
	p         lineParser
	lineNo    int64
	lineKnown bool // false after starting mid-file (FromEnd)
	errLogged int
	closed    bool // a Zeek #close line was read: nothing follows
}

// where names a line for messages: "path line N" or "path at offset X".
func (fc *fileCtx) where(off int64) string {
	if fc.lineKnown {
		return fmt.Sprintf("%s line %d", fc.path, fc.lineNo)
	}
	return fmt.Sprintf("%s at offset %d", fc.path, off)
}

// sink processes complete lines: parse, count, log, deliver.
type sink struct {
	h   Handler
	log *slog.Logger
	st  *counters
	// stampIn counts the events until lastEvent is read from the clock
	// again: the first event after the reader caught up (the follower
	// zeroes it at the end of the file), then every stampEvery-th (a
	// clock read per event costs more than parsing a field).
	stampIn int
}

const stampEvery = 256

const maxLoggedParseErrors = 10

// line handles one complete line that ends at offset end. Only a handler
// error is returned.
func (s *sink) line(ctx context.Context, fc *fileCtx, line []byte, long bool, end int64) error {
	s.st.lines.Add(1)
	fc.lineNo++
	if long {
		s.st.longLines.Add(1)
		s.log.Warn("tailer: line too long, skipped", "where", fc.where(end))
		return nil
	}
	if len(line) > 6 && line[0] == '#' && string(line[:6]) == "#close" {
		fc.closed = true
	}
	ev, class, err := fc.p.parse(line)
	if err != nil {
		s.st.parseErrors.Add(1)
		fc.errLogged++
		switch {
		case fc.errLogged <= maxLoggedParseErrors:
			s.log.Warn("tailer: malformed line", "err", fmt.Errorf("%s: %w", fc.where(end), err))
			if fc.errLogged == maxLoggedParseErrors {
				s.log.Warn("tailer: further malformed lines of this file are logged at debug level")
			}
		default:
			s.log.Debug("tailer: malformed line", "err", fmt.Errorf("%s: %w", fc.where(end), err))
		}
		return nil
	}
	switch class {
	case classSkip:
		s.st.skipped.Add(1)
	case classEvent:
		if ev.SNI != "" && !ValidSNI(ev.SNI) {
			// Whatever a sensor logged as server_name is copied into every
			// record and alert of the target: only a host name is kept.
			s.st.invalidSNI.Add(1)
			s.log.Debug("tailer: server name is not a host name, dropped", "where", fc.where(end), "len", len(ev.SNI), "head", fmt.Sprintf("%.40q", ev.SNI))
			ev.SNI = ""
		}
		ev.File = fc.path
		ev.Offset = end
		ev.Ident = fc.ident
		s.st.events.Add(1)
		if s.stampIn--; s.stampIn <= 0 {
			s.st.lastEvent.Store(time.Now().UnixNano())
			s.stampIn = stampEvery
		}
		if err := s.h(ctx, ev); err != nil {
			return fmt.Errorf("%s: handler: %w", fc.where(end), err)
		}
	}
	return nil
}

// ReadFile makes one pass over a whole file without following it, for
// `stackprint scan` and tests. A file whose name ends in .gz is
// decompressed; offsets then count decompressed bytes. An incomplete last
// line is processed as if it ended with a newline. It stops at the first
// handler error and returns early with ctx's error when ctx is done. A
// plain file that ends before the size it had when it was opened (it was
// truncated while being read) gives an error. Events carry Ident as from a
// Tailer, so PositionOf works on them.
func ReadFile(ctx context.Context, in Input, opts Options, h Handler) (Stats, error) {
	var st counters
	in, err := validate(in)
	if err != nil {
		return Stats{}, err
	}
	if h == nil {
		return Stats{}, fmt.Errorf("tailer: input %q: nil handler", in.Name)
	}
	opts = opts.withDefaults()
	f, err := os.Open(in.Path)
	if err != nil {
		return Stats{}, fmt.Errorf("tailer: input %q: %w", in.Name, err)
	}
	defer f.Close()
	gz := strings.HasSuffix(in.Path, ".gz")
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, readBufSize))
		if err != nil {
			return Stats{}, fmt.Errorf("tailer: input %q: %s: %w", in.Name, in.Path, err)
		}
		defer zr.Close()
		r = zr
	}
	s := &sink{h: h, log: opts.Logger.With("input", in.Name, "path", in.Path), st: &st}
	fc := &fileCtx{path: in.Path, p: newParser(in), lineKnown: true}
	size := int64(-1)
	if fi, err := f.Stat(); err == nil {
		if fi.Mode().IsRegular() && !gz {
			size = fi.Size()
		}
		dev, ino := devIno(fi)
		if head, err := readHead(in.Path, gz, maxFPLen); err == nil {
			fp := newFingerprint(head)
			fc.ident = Position{Dev: dev, Ino: ino, Fingerprint: fp.sum, FPLen: len(fp.prefix), Archive: gz}.Ident()
		}
	}
	lr := newLineReader(r, opts.MaxLineBytes, 0)
	lr.nul = &st.nulBytes
	for n := 0; ; n++ {
		if n&255 == 0 && ctx.Err() != nil {
			return st.snapshot(), fmt.Errorf("tailer: %s: %w", in.Path, context.Cause(ctx))
		}
		line, long, err := lr.next()
		if errors.Is(err, io.EOF) {
			if line, long, ok := lr.flush(); ok {
				if err := s.line(ctx, fc, line, long, lr.offset()); err != nil {
					return st.snapshot(), fmt.Errorf("tailer: %w", err)
				}
			}
			if size >= 0 && lr.readPos() < size {
				return st.snapshot(), fmt.Errorf("tailer: %s: the file shrank while it was read (%d of its %d bytes)", in.Path, lr.readPos(), size)
			}
			return st.snapshot(), nil
		}
		if err != nil {
			return st.snapshot(), fmt.Errorf("tailer: %s: read after offset %d: %w", in.Path, lr.offset(), err)
		}
		if err := s.line(ctx, fc, line, long, lr.offset()); err != nil {
			return st.snapshot(), fmt.Errorf("tailer: %w", err)
		}
	}
}
