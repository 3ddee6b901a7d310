package tailer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Run follows the file until ctx is done and then returns nil. It returns
// an error when the handler does, or when called a second time.
//
// The file does not need to exist yet. Lines appended to it are delivered
// as soon as fsnotify reports a change, and at the latest after
// PollInterval. See the package documentation for rotation and truncation.
func (t *Tailer) Run(ctx context.Context) error {
	if !t.running.CompareAndSwap(false, true) {
		return fmt.Errorf("tailer: input %q: Run called twice", t.in.Name)
	}
	abs, err := filepath.Abs(t.in.Path)
	if err != nil {
		return fmt.Errorf("tailer: input %q: %w", t.in.Name, err)
	}
	_, statErr := os.Stat(abs)
	f := &follower{
		t:    t,
		path: abs,
		dir:  filepath.Dir(abs),
		sink: sink{h: t.h, log: t.log, st: &t.st},
		p:    newParser(t.in.Format, t.in.Name),
		wake: make(chan struct{}, 1),
		// FromEnd applies to a file that exists now, not to one created later.
		first: statErr == nil,
	}
	defer f.close()
	return f.run(ctx)
}

type follower struct {
	t    *Tailer
	path string // absolute
	dir  string
	sink sink
	p    lineParser // one parser, Reset for every new file

	cur   *openFile
	first bool // the next open is of the file that existed at start (FromEnd applies)

	watcher     *fsnotify.Watcher
	watching    atomic.Bool // the directory watch is in place
	watchWarned bool
	wg          sync.WaitGroup
	wake        chan struct{}

	lastOpenErr string
	lastStatErr string
	lastReadErr string
}

// openFile is the file being read: it stays open across a rename so that
// its rest can be drained.
type openFile struct {
	f    *os.File
	fi   os.FileInfo
	lr   *lineReader
	fc   fileCtx
	gone bool // the path no longer names this file
}

func (f *follower) run(ctx context.Context) error {
	f.startWatch()
	tick := time.NewTicker(f.t.opts.PollInterval)
	defer tick.Stop()
	for {
		f.ensureWatch() // no-op while the watch is in place
		if err := f.step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		case <-tick.C:
		}
	}
}

func (f *follower) close() {
	if f.watcher != nil {
		_ = f.watcher.Close() // ends watchLoop
		f.wg.Wait()
	}
	if f.cur != nil {
		_ = f.cur.f.Close()
		f.cur = nil
	}
}

// poke asks the main loop for a rescan without ever blocking.
func (f *follower) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// startWatch starts fsnotify; run adds the directory watch.
func (f *follower) startWatch() {
	if f.t.noWatch {
		f.t.log.Warn("tailer: fsnotify disabled, polling", "interval", f.t.opts.PollInterval)
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		f.t.log.Warn("tailer: fsnotify unavailable, polling", "interval", f.t.opts.PollInterval, "err", err)
		return
	}
	f.watcher = w
	f.wg.Add(1)
	go f.watchLoop(w)
}

// ensureWatch (re)adds the directory watch when it is missing: the
// directory may not exist yet, or may have been removed or moved away (a
// watch follows a moved directory, so it is dropped and re-added by path).
func (f *follower) ensureWatch() {
	if f.watcher == nil || f.watching.Load() {
		return
	}
	_ = f.watcher.Remove(f.dir)
	if err := f.watcher.Add(f.dir); err != nil {
		if !f.watchWarned {
			f.t.log.Warn("tailer: cannot watch directory, polling until it can be", "dir", f.dir, "interval", f.t.opts.PollInterval, "err", err)
			f.watchWarned = true
		}
		return
	}
	if f.watchWarned {
		f.t.log.Info("tailer: watching directory", "dir", f.dir)
	}
	f.watchWarned = false
	f.watching.Store(true)
}

func (f *follower) watchLoop(w *fsnotify.Watcher) {
	defer f.wg.Done()
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			name := filepath.Clean(ev.Name)
			switch {
			case name == f.path:
				f.poke()
			case name == f.dir && ev.Has(fsnotify.Remove|fsnotify.Rename):
				f.watching.Store(false)
				f.poke()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				f.t.log.Warn("tailer: fsnotify error", "err", err)
			}
			f.poke() // events may be lost: rescan
		}
	}
}

// step reads whatever is new and handles rotation and truncation. Only
// handler errors and ctx cancellation are returned; file system trouble is
// logged and retried at the next poll.
func (f *follower) step(ctx context.Context) error {
	if f.cur == nil && !f.open(ctx) {
		return nil
	}
	for {
		if err := f.drain(ctx, f.cur); err != nil {
			return err
		}
		fi, err := os.Stat(f.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Renamed or removed, the new file not there yet (Zeek creates
			// it on the next write). The writer may still append to the old
			// one: keep following it.
			if !f.cur.gone {
				f.t.log.Info("tailer: path renamed or removed; still reading the open file until a new one appears")
				f.cur.gone = true
			}
			return nil
		case err != nil:
			if msg := err.Error(); msg != f.lastStatErr {
				f.t.log.Warn("tailer: stat failed", "err", err)
				f.lastStatErr = msg
			}
			return nil
		case !os.SameFile(fi, f.cur.fi):
			// Rotated: everything written to the old file before the new
			// one appeared is readable now. Drain it, then switch.
			if err := f.drain(ctx, f.cur); err != nil {
				return err
			}
			if err := f.finish(ctx); err != nil {
				return err
			}
			f.t.st.rotations.Add(1)
			if !f.open(ctx) {
				return nil
			}
			continue
		}
		f.lastStatErr = ""
		f.cur.gone = false
		if fi.Size() < f.cur.lr.readPos() {
			if !f.truncated(fi.Size()) {
				return nil
			}
			continue
		}
		return nil
	}
}

// drain delivers every complete line available in of.
func (f *follower) drain(ctx context.Context, of *openFile) error {
	for n := 0; ; n++ {
		if n&255 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		line, long, err := of.lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if msg := err.Error(); msg != f.lastReadErr {
				f.t.log.Warn("tailer: read failed, retrying at the next poll", "offset", of.lr.pos, "err", err)
				f.lastReadErr = msg
			}
			return nil
		}
		f.lastReadErr = ""
		if err := f.sink.line(ctx, &of.fc, line, long, of.lr.pos); err != nil {
			return err
		}
	}
}

// finish closes the current (rotated) file. An incomplete last line is
// processed as a line on its own, never glued to the next file.
func (f *follower) finish(ctx context.Context) error {
	of := f.cur
	f.cur = nil
	defer of.f.Close()
	if line, long, ok := of.lr.flush(); ok {
		f.t.log.Warn("tailer: rotated file ended without a newline; processing its last line as is", "offset", of.lr.pos)
		if err := f.sink.line(ctx, &of.fc, line, long, of.lr.pos); err != nil {
			return err
		}
	}
	f.t.log.Info("tailer: finished rotated file", "lines", of.fc.lineNo, "offset", of.lr.pos)
	return nil
}

// truncated restarts the current file at offset 0 with a fresh parser. On
// failure the file is closed, to be reopened at the next poll.
func (f *follower) truncated(size int64) bool {
	of := f.cur
	f.t.st.truncations.Add(1)
	f.t.log.Warn("tailer: file truncated in place, reading it again from the start",
		"size", size, "read", of.lr.readPos(), "dropped_partial_bytes", of.lr.partial())
	if _, err := of.f.Seek(0, io.SeekStart); err != nil {
		f.t.log.Warn("tailer: seek failed, reopening", "err", err)
		_ = of.f.Close()
		f.cur = nil
		return false
	}
	of.lr.reset(of.f, 0)
	f.p.reset()
	of.fc = fileCtx{path: f.t.in.Path, p: f.p, lineKnown: true}
	return true
}

// open opens the path and makes it the current file. It reports false when
// there is nothing to open yet.
func (f *follower) open(ctx context.Context) bool {
	fh, err := os.Open(f.path)
	if err != nil {
		if msg := err.Error(); msg != f.lastOpenErr {
			if errors.Is(err, fs.ErrNotExist) {
				f.t.log.Info("tailer: waiting for the file to appear")
			} else {
				f.t.log.Warn("tailer: open failed, retrying", "err", err)
			}
			f.lastOpenErr = msg
		}
		return false
	}
	fi, err := fh.Stat()
	if err == nil && fi.IsDir() {
		err = errors.New("is a directory")
	}
	if err != nil {
		_ = fh.Close()
		if msg := err.Error(); msg != f.lastOpenErr {
			f.t.log.Warn("tailer: cannot read", "err", err)
			f.lastOpenErr = msg
		}
		return false
	}
	f.lastOpenErr = ""
	f.p.reset()
	of := &openFile{f: fh, fi: fi, fc: fileCtx{path: f.t.in.Path, p: f.p, lineKnown: true}}
	of.lr = newLineReader(fh, f.t.opts.MaxLineBytes, 0)
	first := f.first
	f.first = false
	if first && f.t.opts.FromEnd && fi.Size() > 0 {
		f.skipToEnd(ctx, of, fi.Size())
	}
	f.cur = of
	f.t.log.Info("tailer: following file", "offset", of.lr.pos, "size", fi.Size())
	return true
}

// skipToEnd positions of at size, the end of the file when it was opened.
// The leading Zeek header block is still read so that the lines that follow
// can be parsed; a file holding nothing but (part of) a header is read on
// from where the header stops.
func (f *follower) skipToEnd(ctx context.Context, of *openFile, size int64) {
	if f.t.in.Format == FormatZeek {
		sawData := false
		for {
			line, long, err := of.lr.next()
			if err != nil {
				break
			}
			if long || len(line) == 0 || line[0] != '#' {
				sawData = true
				break
			}
			_ = f.sink.line(ctx, &of.fc, line, false, of.lr.pos) // meta lines never reach the handler
		}
		if !sawData || of.lr.pos >= size {
			return
		}
	}
	if _, err := of.f.Seek(size, io.SeekStart); err != nil {
		f.t.log.Warn("tailer: seek to end failed, reading from the start", "err", err)
		_, _ = of.f.Seek(0, io.SeekStart)
		of.lr.reset(of.f, 0)
		f.p.reset()
		of.fc = fileCtx{path: f.t.in.Path, p: f.p, lineKnown: true}
		return
	}
	of.lr.reset(of.f, size)
	of.fc.lineKnown = false
	var last [1]byte
	if _, err := of.f.ReadAt(last[:], size-1); err != nil || last[0] != '\n' {
		of.lr.resync() // size falls inside a line: start after it
	}
}
