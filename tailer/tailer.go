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
	DefaultPollInterval = 250 * time.Millisecond
	DefaultMaxLineBytes = 1 << 20
)

// Input is one configured log file.
type Input struct {
	Name   string // becomes Event.Source; the file's base name when empty
	Path   string
	Format string // FormatZeek or FormatEve
}

// Handler receives each event. It may block (backpressure); it should
// return when ctx is done. A returned error stops the tailer.
type Handler func(ctx context.Context, ev stackprint.Event) error

// Options tune a Tailer or ReadFile. The zero value is usable.
type Options struct {
	PollInterval time.Duration // safety-net rescan even with fsnotify; default 250ms
	MaxLineBytes int           // longer lines are skipped and counted; default 1 MiB
	FromEnd      bool          // start at the end of a file that exists at start (its Zeek header is still read)
	Logger       *slog.Logger  // nil: discard
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
}

type counters struct {
	lines, events, parseErrors, skipped, longLines, rotations, truncations atomic.Uint64
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
	}
}

// lineParser is what ZeekParser and EveParser share.
type lineParser interface {
	parse(line []byte) (stackprint.Event, lineClass, error)
	reset()
}

func newParser(format, source string) lineParser {
	if format == FormatEve {
		return NewEveParser(source)
	}
	return NewZeekParser(source)
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

	noWatch bool // tests: behave as if fsnotify could not start
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

// fileCtx is the per-file state of line processing.
type fileCtx struct {
	path      string
	p         lineParser
	lineNo    int64
	lineKnown bool // false after starting mid-file (FromEnd)
	errLogged int
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
}

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
		ev.File = fc.path
		ev.Offset = end
		s.st.events.Add(1)
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
// handler error and returns early with ctx's error when ctx is done.
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
	var r io.Reader = f
	if strings.HasSuffix(in.Path, ".gz") {
		gz, err := gzip.NewReader(bufio.NewReaderSize(f, readBufSize))
		if err != nil {
			return Stats{}, fmt.Errorf("tailer: input %q: %s: %w", in.Name, in.Path, err)
		}
		defer gz.Close()
		r = gz
	}
	s := &sink{h: h, log: opts.Logger.With("input", in.Name, "path", in.Path), st: &st}
	fc := &fileCtx{path: in.Path, p: newParser(in.Format, in.Name), lineKnown: true}
	lr := newLineReader(r, opts.MaxLineBytes, 0)
	for n := 0; ; n++ {
		if n&255 == 0 && ctx.Err() != nil {
			return st.snapshot(), fmt.Errorf("tailer: %s: %w", in.Path, context.Cause(ctx))
		}
		line, long, err := lr.next()
		if errors.Is(err, io.EOF) {
			if line, long, ok := lr.flush(); ok {
				if err := s.line(ctx, fc, line, long, lr.pos); err != nil {
					return st.snapshot(), fmt.Errorf("tailer: %w", err)
				}
			}
			return st.snapshot(), nil
		}
		if err != nil {
			return st.snapshot(), fmt.Errorf("tailer: %s: read after offset %d: %w", in.Path, lr.pos, err)
		}
		if err := s.line(ctx, fc, line, long, lr.pos); err != nil {
			return st.snapshot(), fmt.Errorf("tailer: %w", err)
		}
	}
}
