package tailer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Run follows the input until ctx is done and then returns nil. It returns
// an error when the handler does, or when called a second time.
//
// The file does not need to exist yet. Lines appended to it are delivered
// as soon as fsnotify reports a change, and at the latest after
// PollInterval. See the package documentation for rotation, truncation,
// catch-up and resume.
func (t *Tailer) Run(ctx context.Context) error {
	if !t.running.CompareAndSwap(false, true) {
		return fmt.Errorf("tailer: input %q: Run called twice", t.in.Name)
	}
	abs, err := filepath.Abs(t.in.Path)
	if err != nil {
		return fmt.Errorf("tailer: input %q: %w", t.in.Name, err)
	}
	f := &follower{
		t:       t,
		opts:    t.opts,
		log:     t.log,
		sink:    sink{h: t.h, log: t.log, st: &t.st},
		wake:    make(chan struct{}, 1),
		pattern: abs,
		glob:    strings.ContainsAny(filepath.Base(abs), "*?["),
		dir:     filepath.Dir(abs),
		lanes:   map[string]*lane{},
		known:   map[devInoKey]*knownFile{},
		resume:  map[string]Position{},
		startup: true,
		now:     time.Now,
	}
	for _, p := range t.opts.Resume {
		pp, err := filepath.Abs(p.Path)
		if err != nil {
			continue
		}
		f.resume[pp] = p
	}
	f.dw = t.opts.Watcher
	if f.dw == nil {
		if t.noWatch {
			f.dw = newPollingWatcher(t.log)
			t.log.Warn("tailer: fsnotify disabled, polling", "interval", t.opts.PollInterval)
		} else {
			f.dw = NewDirWatcher(t.log)
		}
		f.ownDW = true
	}
	defer f.close()
	return f.run(ctx)
}

type devInoKey struct{ dev, ino uint64 }

// knownFile remembers a file read in this run, so that it is never read
// again under another name (rotated sibling, glob match, copy).
type knownFile struct {
	dev, ino uint64
	fp       fingerprint
	offset   int64
	seen     time.Time
}

const maxKnown = 4096

type follower struct {
	t    *Tailer
	opts Options
	log  *slog.Logger
	sink sink
	wake chan struct{}

	dw     *DirWatcher
	ownDW  bool
	sub    *dirSub
	subDir string // the (symlink-resolved) directory watched

	pattern string // absolute path, or a glob in the file name
	glob    bool
	dir     string // directory of pattern, as configured (may hold a symlink)

	lanes    map[string]*lane // by path
	known    map[devInoKey]*knownFile
	resume   map[string]Position
	startup  bool // FromEnd applies to the files found now
	lastGlob time.Time
	now      func() time.Time
	scratch  []byte
}

// lane follows one path: the configured one, or one glob match.
type lane struct {
	path    string
	p       lineParser
	cur     *openFile
	backlog []candidate // generations to read, in order, before the path's file
	prevMod time.Time   // modification time of the last finished generation
	resume  *Position   // applied at the first open
	fromEnd bool
	opened  int  // files opened at the path
	catchUp bool // a generation was finished: look for the ones after it before opening the path
	recheck bool // … and look again when the path has a file
	// started is false until Options.Started was told where reading
	// began (lanes without a resume position, read from the start).
	started bool
	// resumed: the lane resumed in a rotated or archived generation; the
	// files read are remembered one by one, none is taken as history.
	resumed bool

	lastOpenErr, lastStatErr string
}

// openFile is a file being read. It stays open across a rename so that its
// rest can be drained.
type openFile struct {
	f        *os.File // nil while parked (glob mode)
	gz       *gzip.Reader
	name     string // real path when opened
	dev, ino uint64
	fp       fingerprint
	lr       *lineReader
	fc       fileCtx
	catchUp  bool // a rotated/archived generation: read to its end, then finished
	gone     bool // the lane's path names another file, or none
	goneAt   time.Time
	lastGrow time.Time
	mod      time.Time
	chkSize  int64
	chkMod   time.Time
	readErr  string
	progress int64 // offset last reported to Options.Progress
	parked   bool
	changed  bool  // a read found other first bytes: restart before anything else
	startOff int64 // where reading began (0, a resume or a known offset)
}

func (of *openFile) position(path string) Position {
	p := Position{Path: path, Dev: of.dev, Ino: of.ino, Fingerprint: of.fp.sum, FPLen: len(of.fp.prefix), Archive: of.gz != nil}
	if of.lr != nil {
		p.Offset = of.lr.pos
	}
	return p
}

func (of *openFile) close() {
	if of.gz != nil {
		_ = of.gz.Close()
	}
	if of.f != nil {
		_ = of.f.Close()
		of.f = nil
	}
}

func (f *follower) close() {
	for _, ln := range f.lanes {
		if ln.cur != nil {
			ln.cur.close()
		}
	}
	if f.sub != nil {
		f.dw.unsubscribe(f.sub)
	}
	if f.ownDW {
		_ = f.dw.Close()
	}
}

func (f *follower) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *follower) run(ctx context.Context) error {
	tick := time.NewTicker(f.opts.PollInterval)
	defer tick.Stop()
	for {
		f.watchDir()
		if err := f.step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		f.startup = false
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		case <-tick.C:
		}
	}
}

// watchDir keeps the directory watch on the directory the configured one
// resolves to now (logs/current is a symlink that zeekctl retargets).
func (f *follower) watchDir() {
	dir, err := filepath.EvalSymlinks(f.dir)
	if err != nil {
		dir = f.dir
	}
	if f.sub != nil && dir != f.subDir {
		f.dw.unsubscribe(f.sub)
		f.sub = nil
	}
	if f.sub == nil {
		base := filepath.Base(f.pattern)
		match := func(name string) bool {
			if f.glob {
				ok, _ := filepath.Match(base, name)
				return ok
			}
			return name == base
		}
		f.sub, f.subDir = f.dw.subscribe(dir, match, f.poke), dir
		return
	}
	f.dw.ensure(f.sub)
}

// step brings every lane up to date.
func (f *follower) step(ctx context.Context) error {
	if f.glob {
		f.scanGlob()
	} else if len(f.lanes) == 0 {
		f.addLane(f.pattern)
	}
	paths := make([]string, 0, len(f.lanes))
	for p := range f.lanes {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		ln := f.lanes[p]
		done, err := f.stepLane(ctx, ln)
		if err != nil {
			return err
		}
		if done && f.glob {
			delete(f.lanes, p)
		}
	}
	if f.glob {
		f.parkIdle()
	}
	return nil
}

func (f *follower) addLane(path string) *lane {
	ln := &lane{path: path, p: newParser(f.t.in)}
	if pos, ok := f.resumeFor(path); ok {
		ln.resume = &pos
	}
	if f.startup && f.opts.FromEnd && len(f.opts.Resume) == 0 {
		_, err := os.Stat(path)
		ln.fromEnd = err == nil // not for a file created later
	}
	ln.started = ln.resume != nil || ln.fromEnd || f.opts.Started == nil
	f.lanes[path] = ln
	return ln
}

// resumeFor picks the committed position for a lane: the one stored under
// its path; else one whose fingerprint is the file's at the path now (the
// configured path changed, e.g. logs/current/conn.log for
// spool/zeek/conn.log: state follows the file, not the configuration); else,
// for a single path, the only position there is (validated like any other).
func (f *follower) resumeFor(path string) (Position, bool) {
	if pos, ok := f.resume[path]; ok {
		delete(f.resume, path)
		return pos, true
	}
	if len(f.resume) == 0 {
		return Position{}, false
	}
	head, _ := readHead(path, false, maxFPLen)
	for k, pos := range f.resume {
		if len(head) > 0 && matchesPosition(head, pos) {
			delete(f.resume, k)
			f.log.Info("tailer: resume position stored under another path matches the file", "file", path, "position", pos.String())
			return pos, true
		}
	}
	if !f.glob && len(f.resume) == 1 {
		for k, pos := range f.resume {
			delete(f.resume, k)
			return pos, true
		}
	}
	return Position{}, false
}

// scanGlob starts a lane for every matching file not read yet.
func (f *follower) scanGlob() {
	now := f.now()
	if !f.startup && now.Sub(f.lastGlob) < min(f.opts.PollInterval, 100*time.Millisecond) {
		return
	}
	f.lastGlob = now
	matches, _ := filepath.Glob(f.pattern)
	for _, m := range matches {
		if _, ok := f.lanes[m]; ok {
			continue
		}
		fi, err := os.Stat(m)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		dev, ino := devIno(fi)
		if f.openElsewhere(dev, ino) {
			continue // being read under its old name (renamed within the glob)
		}
		if k := f.known[devInoKey{dev, ino}]; k != nil && fi.Size() <= k.offset && f.headMatches(m, k.fp) {
			continue // read to its end under another name (json-streaming's numeric shift)
		}
		// New, or read before and grown since: openPath goes on where it was.
		f.addLane(m)
	}
}

func (f *follower) openElsewhere(dev, ino uint64) bool {
	for _, ln := range f.lanes {
		if ln.cur != nil && ln.cur.dev == dev && ln.cur.ino == ino {
			return true
		}
	}
	return false
}

func (f *follower) headMatches(path string, fp fingerprint) bool {
	head, err := readHead(path, false, maxFPLen)
	return err == nil && newFingerprint(head).same(fp)
}

// parkIdle releases the fd of glob files that are quiet while a newer
// match is being written (a time-named file after the switch); they are
// reopened at their offset when they grow again.
func (f *follower) parkIdle() {
	var newest time.Time
	for _, ln := range f.lanes {
		if ln.cur != nil && ln.cur.mod.After(newest) {
			newest = ln.cur.mod
		}
	}
	now := f.now()
	for _, ln := range f.lanes {
		of := ln.cur
		if of == nil || of.parked || of.catchUp || of.f == nil || !of.mod.Before(newest) ||
			now.Sub(of.lastGrow) < f.opts.RotateWait || of.lr.partial() > 0 {
			continue
		}
		f.log.Info("tailer: file quiet while a newer one is written; closing it until it grows", "file", ln.path, "offset", of.lr.pos)
		of.close()
		of.parked = true
	}
}

// stepLane reads what is new for one lane. done reports that the lane's
// path is gone and its file finished.
func (f *follower) stepLane(ctx context.Context, ln *lane) (done bool, err error) {
	for {
		if ln.cur == nil {
			switch {
			case len(ln.backlog) > 0:
				c := ln.backlog[0]
				ln.backlog = ln.backlog[1:]
				if of := f.openCandidate(ln, c); of != nil {
					ln.cur = of
				}
				continue
			case ln.resume != nil:
				pos := *ln.resume
				ln.resume = nil
				f.applyResume(ln, pos)
				continue
			case ln.catchUp:
				// Generations rotated away since the one just finished
				// are read now, even while the path has no file yet
				// (Zeek creates it lazily); once it appears, look again.
				ln.catchUp = false
				ln.backlog = f.middleGenerations(ln)
				if _, err := os.Stat(ln.path); err != nil {
					ln.recheck = true
				}
				continue
			case ln.recheck:
				if _, err := os.Stat(ln.path); err == nil {
					ln.recheck = false
					ln.backlog = f.middleGenerations(ln)
					continue
				}
				fallthrough
			default:
				if !f.openPath(ln, 0, nil) {
					_, statErr := os.Stat(ln.path)
					return errors.Is(statErr, fs.ErrNotExist) && f.glob, nil
				}
			}
		}
		of := ln.cur
		if of.catchUp {
			if err := f.drain(ctx, ln, of); err != nil {
				return false, err
			}
			if of.gz == nil && !of.fc.closed {
				// Rotated a moment ago: the writer may not have let go.
				if fi, err := of.f.Stat(); err == nil && f.now().Sub(fi.ModTime()) < f.opts.RotateWait {
					return false, nil
				}
			}
			if err := f.finish(ctx, ln, of); err != nil {
				return false, err
			}
			if len(ln.backlog) == 0 {
				// The path may have rotated again meanwhile: look once more
				// before opening it.
				ln.catchUp = true
			}
			continue
		}
		if of.parked {
			switch f.unpark(ln, of) {
			case parkStay:
				return false, nil
			case parkGone:
				// Renamed, removed or replaced while closed: it was quiet,
				// so it is finished as it is.
				if err := f.finish(ctx, ln, of); err != nil {
					return false, err
				}
				ln.catchUp = true
				if _, err := os.Stat(ln.path); errors.Is(err, fs.ErrNotExist) {
					return f.glob, nil
				}
				continue
			}
		}
		if !of.gone {
			if why := f.truncated(of); why != "" {
				f.restart(ln, of, why)
				continue
			}
		}
		if f.t.testHook != nil {
			f.t.testHook("before drain")
		}
		if err := f.drain(ctx, ln, of); err != nil {
			return false, err
		}
		if of.changed {
			f.restart(ln, of, errHeadChanged.Error())
			continue
		}
		f.report(ln, of)
		fi, err := os.Stat(ln.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Renamed or removed, the new file not there yet (Zeek creates
			// it on the next write). The writer may still append to the
			// old one: keep reading it until it is quiet.
			if !of.gone {
				f.log.Info("tailer: path renamed or removed; reading the open file until it is quiet", "file", ln.path)
				of.gone, of.goneAt = true, f.now()
			}
			if !f.released(of) {
				return false, nil
			}
			if err := f.finish(ctx, ln, of); err != nil {
				return false, err
			}
			ln.catchUp = true
			return f.glob, nil
		case err != nil:
			if msg := err.Error(); msg != ln.lastStatErr {
				f.log.Warn("tailer: stat failed", "file", ln.path, "err", err)
				ln.lastStatErr = msg
			}
			return false, nil
		}
		ln.lastStatErr = ""
		dev, ino := devIno(fi)
		if dev == of.dev && ino == of.ino {
			of.gone = false
			return false, nil
		}
		// Rotated: another file at the path. Finish the old one first
		// (it may still be written until the writer lets go).
		if !of.gone {
			of.gone, of.goneAt = true, f.now()
		}
		if !f.released(of) {
			return false, nil
		}
		if err := f.finish(ctx, ln, of); err != nil {
			return false, err
		}
		ln.catchUp = true
	}
}

// released reports whether a file the path no longer names can be closed:
// it ended with #close, or nothing was written to it for RotateWait.
func (f *follower) released(of *openFile) bool {
	if of.fc.closed {
		return true
	}
	quiet := of.goneAt
	if of.lastGrow.After(quiet) {
		quiet = of.lastGrow
	}
	return f.now().Sub(quiet) >= f.opts.RotateWait
}

// Outcomes of unpark.
const (
	parkStay     = iota // unchanged: stays closed
	parkReopened        // it grew: open again at its offset
	parkGone            // the path is gone or names another file
)

// unpark reopens a parked glob file when it changed.
func (f *follower) unpark(ln *lane, of *openFile) int {
	fi, err := os.Stat(ln.path)
	if errors.Is(err, fs.ErrNotExist) {
		return parkGone
	}
	if err != nil {
		return parkStay
	}
	dev, ino := devIno(fi)
	if dev != of.dev || ino != of.ino {
		return parkGone
	}
	if fi.Size() == of.chkSize && fi.ModTime().Equal(of.chkMod) {
		return parkStay
	}
	fh, err := os.Open(ln.path)
	if err != nil {
		return parkStay
	}
	if _, err := fh.Seek(of.lr.pos, io.SeekStart); err != nil {
		_ = fh.Close()
		return parkStay
	}
	of.f, of.parked = fh, false
	of.lr.reset(fh, of.lr.pos)
	of.lastGrow = f.now()
	f.log.Info("tailer: quiet file grew; reading it again", "file", ln.path, "offset", of.lr.pos)
	return parkReopened
}

// truncated checks whether the current file was truncated in place: fewer
// bytes than were read, or other bytes at its start (truncated and written
// again past the old offset before we looked; inode reuse; copytruncate
// with a writer that keeps its offset). It returns why, or "".
func (f *follower) truncated(of *openFile) string {
	fi, err := of.f.Stat()
	if err != nil {
		return ""
	}
	of.mod = fi.ModTime()
	size := fi.Size()
	if size < of.lr.readPos() {
		return fmt.Sprintf("size %d < %d bytes read", size, of.lr.readPos())
	}
	if size == of.chkSize && of.mod.Equal(of.chkMod) {
		return ""
	}
	of.chkSize, of.chkMod = size, of.mod
	n := len(of.fp.prefix)
	if n == 0 {
		return ""
	}
	if cap(f.scratch) < n {
		f.scratch = make([]byte, maxFPLen)
	}
	buf := f.scratch[:n]
	k, _ := of.f.ReadAt(buf, 0)
	if k < n || !bytes.Equal(buf, of.fp.prefix) {
		return "the first bytes changed (new header or first line)"
	}
	return ""
}

// restart reads the current file again from offset 0 with a reset parser.
// A copy of the old content under a rotated name (copytruncate) is read
// first from where we were, so lines written before the copy are not lost.
func (f *follower) restart(ln *lane, of *openFile, why string) {
	f.t.st.truncations.Add(1)
	f.log.Warn("tailer: file truncated in place, reading it again from the start", "file", ln.path, "why", why,
		"offset", of.lr.pos, "dropped_partial_bytes", of.lr.partial())
	if of.fp.complete {
		for _, c := range f.candidates(ln) {
			if c.fp.same(of.fp) && c.size > of.lr.pos && !c.gz {
				f.log.Info("tailer: reading the rest of the truncated content from its copy", "copy", c.path, "offset", of.lr.pos)
				c.offset = of.lr.pos
				c.header = true
				ln.backlog = append(ln.backlog, c)
				break
			}
		}
	}
	f.remember(of)
	if len(ln.backlog) > 0 {
		// Read the copy first, then this file from 0.
		of.close()
		ln.cur = nil
		return
	}
	if _, err := of.f.Seek(0, io.SeekStart); err != nil {
		f.log.Warn("tailer: seek failed, reopening", "file", ln.path, "err", err)
		of.close()
		ln.cur = nil
		return
	}
	of.lr.reset(of.f, 0)
	ln.p.reset()
	head := make([]byte, maxFPLen)
	k, _ := of.f.ReadAt(head, 0)
	of.fp = newFingerprint(head[:k])
	of.fc = fileCtx{path: ln.path, p: ln.p, lineKnown: true, ident: of.position(ln.path).Ident()}
	of.chkSize, of.chkMod = 0, time.Time{}
	of.progress = -1
	of.changed = false
}

// drain delivers every complete line available in of.
func (f *follower) drain(ctx context.Context, ln *lane, of *openFile) error {
	start := of.lr.readPos()
	defer func() {
		if of.lr.readPos() > start {
			of.lastGrow = f.now()
		}
	}()
	for n := 0; ; n++ {
		if n&255 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		line, long, err := of.lr.next()
		if errors.Is(err, io.EOF) {
			of.readErr = ""
			f.sink.stampIn = 0 // caught up: the next event is stamped
			return nil
		}
		if errors.Is(err, errHeadChanged) {
			return nil // the caller restarts (of.changed)
		}
		if err != nil {
			if msg := err.Error(); msg != of.readErr {
				f.log.Warn("tailer: read failed", "file", of.name, "offset", of.lr.pos, "err", err)
				of.readErr = msg
			}
			return nil
		}
		if !of.fp.complete && of.lr.pos > int64(len(of.fp.prefix)) && of.gz == nil {
			f.refreshFP(of)
		}
		if !ln.started && (of.fp.complete || long || len(bytes.TrimSpace(line)) > 0 && line[0] != '#') {
			if err := f.started(ln, of); err != nil {
				return err
			}
		}
		if err := f.sink.line(ctx, &of.fc, line, long, of.lr.pos); err != nil {
			return err
		}
	}
}

// started tells Options.Started where the lane began reading, before its
// first event.
func (f *follower) started(ln *lane, of *openFile) error {
	p := of.position(ln.path)
	p.Offset = of.startOff
	if err := f.opts.Started(p); err != nil {
		return fmt.Errorf("tailer: input %q: record the start position %s: %w", f.t.in.Name, p, err)
	}
	ln.started = true
	f.log.Info("tailer: start position recorded", "position", p.String())
	return nil
}

// refreshFP extends the fingerprint of a file that was short when opened.
func (f *follower) refreshFP(of *openFile) {
	head := make([]byte, maxFPLen)
	k, _ := of.f.ReadAt(head, 0)
	fp := newFingerprint(head[:k])
	if len(fp.prefix) <= len(of.fp.prefix) || !bytes.HasPrefix(fp.prefix, of.fp.prefix) {
		return // changed under us: the truncation check will see it
	}
	of.fp = fp
	of.fc.ident = of.position(of.fc.path).Ident()
}

// report calls Options.Progress with the position reached.
func (f *follower) report(ln *lane, of *openFile) {
	if f.opts.Progress == nil || of.lr.pos == of.progress || len(of.fp.prefix) == 0 {
		return
	}
	of.progress = of.lr.pos
	f.opts.Progress(of.position(ln.path))
}

// finish closes a file that will not grow any more. An unfinished last line
// is processed as a line on its own, never glued to the next file.
func (f *follower) finish(ctx context.Context, ln *lane, of *openFile) error {
	ln.cur = nil
	defer of.close()
	if of.f != nil && of.gz == nil {
		if fi, err := of.f.Stat(); err == nil {
			of.mod = fi.ModTime()
		}
	}
	if line, long, ok := of.lr.flush(); ok {
		f.t.st.partialLines.Add(1)
		f.log.Warn("tailer: finished file ended without a newline; processing its last line on its own", "file", of.name, "offset", of.lr.pos)
		if err := f.sink.line(ctx, &of.fc, line, long, of.lr.pos); err != nil {
			return err
		}
	}
	f.report(ln, of)
	f.remember(of)
	if of.mod.After(ln.prevMod) {
		ln.prevMod = of.mod
	}
	f.log.Info("tailer: finished file", "file", of.name, "lines", of.fc.lineNo, "offset", of.lr.pos)
	return nil
}

// baseline marks the rotated and archived generations present when a lane
// opens its first file as read: they are older than where this run starts
// (file times are too coarse to tell generations written within a few
// milliseconds apart).
func (f *follower) baseline(ln *lane) {
	for _, c := range f.candidates(ln) {
		k := devInoKey{c.dev, c.ino}
		if c.gz {
			k.ino |= 1 << 63
		}
		f.known[k] = &knownFile{dev: c.dev, ino: c.ino, fp: c.fp, offset: c.size, seen: f.now()}
	}
}

// remember records a file as read, up to its current offset.
func (f *follower) remember(of *openFile) {
	k := devInoKey{of.dev, of.ino}
	if of.gz != nil {
		k = devInoKey{of.dev, of.ino | 1<<63}
	}
	f.known[k] = &knownFile{dev: of.dev, ino: of.ino, fp: of.fp, offset: of.lr.pos, seen: f.now()}
	if len(f.known) > maxKnown {
		// Forget the oldest quarter at once (amortised O(log n) per file).
		keys := make([]devInoKey, 0, len(f.known))
		for k := range f.known {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b devInoKey) int { return f.known[a].seen.Compare(f.known[b].seen) })
		for _, k := range keys[:len(keys)-maxKnown*3/4] {
			delete(f.known, k)
		}
	}
}

// knownAs returns the entry of a file read before in this run with of's
// complete fingerprint.
func (f *follower) knownAs(of *openFile) *knownFile {
	if !of.fp.complete {
		return nil
	}
	if k := f.known[devInoKey{of.dev, of.ino}]; k != nil && k.fp.complete && bytes.Equal(k.fp.prefix, of.fp.prefix) {
		return k
	}
	for _, k := range f.known {
		if k.fp.complete && bytes.Equal(k.fp.prefix, of.fp.prefix) {
			return k
		}
	}
	return nil
}

func (f *follower) forget(of *openFile) {
	for key, k := range f.known {
		if bytes.Equal(k.fp.prefix, of.fp.prefix) {
			delete(f.known, key)
		}
	}
}

// isKnown reports whether c is a file read in this run (same inode and
// content, or the same complete fingerprint: a copy or an archive of it).
// For the same inode grown since, rest is the offset to read on from.
func (f *follower) isKnown(c candidate) (known bool, rest int64) {
	if c.gz {
		if k := f.known[devInoKey{c.dev, c.ino | 1<<63}]; k != nil && k.fp.same(c.fp) {
			return true, 0
		}
	} else if k := f.known[devInoKey{c.dev, c.ino}]; k != nil && k.fp.same(c.fp) {
		if c.size > k.offset {
			return false, k.offset
		}
		return true, 0
	}
	for _, ln := range f.lanes {
		if of := ln.cur; of != nil && (of.dev == c.dev && of.ino == c.ino && !c.gz || of.fp.complete && c.fp.complete && of.fp.same(c.fp)) {
			return true, 0
		}
	}
	if !c.fp.complete {
		return false, 0
	}
	for _, k := range f.known {
		if k.fp.complete && k.fp.same(c.fp) {
			return true, 0
		}
	}
	return false, 0
}

// openPath opens the lane's path and makes it the current file, at offset
// start (0, or a resume offset). It reports false when there is nothing to
// open yet, or when want is set and the file opened is not want's (the
// path rotated between the check and the open).
func (f *follower) openPath(ln *lane, start int64, want *Position) bool {
	fh, err := os.Open(ln.path)
	if err != nil {
		if msg := err.Error(); msg != ln.lastOpenErr {
			if errors.Is(err, fs.ErrNotExist) {
				f.log.Info("tailer: waiting for the file to appear", "file", ln.path)
			} else {
				f.log.Warn("tailer: open failed, retrying", "file", ln.path, "err", err)
			}
			ln.lastOpenErr = msg
		}
		return false
	}
	fi, err := fh.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	var magic [2]byte
	if err == nil {
		if n, _ := fh.ReadAt(magic[:], 0); n == 2 && magic == [2]byte{0x1f, 0x8b} {
			err = errors.New("gzip-compressed while being written (Zeek CompressLogsInFlight / gzip_level): not readable line by line; set the writer to plain text, or read the archives with `stackprint scan`")
		}
	}
	if err != nil {
		_ = fh.Close()
		if msg := err.Error(); msg != ln.lastOpenErr {
			f.log.Error("tailer: cannot follow file", "file", ln.path, "err", err)
			ln.lastOpenErr = msg
		}
		return false
	}
	if want != nil {
		head := make([]byte, want.FPLen)
		k, _ := fh.ReadAt(head, 0)
		if !matchesPosition(head[:k], *want) {
			_ = fh.Close()
			return false
		}
	}
	ln.lastOpenErr = ""
	if ln.opened == 0 && !ln.resumed {
		f.baseline(ln)
	}
	of := f.newOpenFile(ln, fh, fi, ln.path, nil)
	if start > 0 {
		if err := f.seekTo(ln, of, start); err != nil {
			f.log.Warn("tailer: cannot resume, reading from the start", "file", ln.path, "offset", start, "err", err)
			f.t.st.resumeFallbacks.Add(1)
			of.close()
			return f.openPath(ln, 0, nil)
		}
	} else if k := f.knownAs(of); k != nil && k.offset > 0 && fi.Size() >= k.offset {
		// The same file again (the directory came back after a blip, a
		// remount changed the device id): go on where we were.
		f.log.Info("tailer: file read before in this run; continuing where it was left", "file", ln.path, "offset", k.offset)
		if err := f.seekTo(ln, of, k.offset); err != nil {
			of.close()
			ln.cur = nil
			f.forget(of)
			return f.openPath(ln, 0, nil)
		}
	} else if ln.fromEnd && fi.Size() > 0 {
		f.skipToEnd(ln, of, fi.Size())
	}
	ln.fromEnd = false
	of.startOff = of.lr.pos
	if ln.opened++; ln.opened > 1 {
		f.t.st.rotations.Add(1)
	}
	ln.cur = of
	f.log.Info("tailer: following file", "file", ln.path, "offset", of.lr.pos, "size", fi.Size())
	return true
}

// newOpenFile sets up reading fh from offset 0 with the lane's parser reset.
func (f *follower) newOpenFile(ln *lane, fh *os.File, fi os.FileInfo, name string, gz *gzip.Reader) *openFile {
	of := &openFile{f: fh, gz: gz, name: name, mod: fi.ModTime(), lastGrow: f.now(), progress: -1}
	of.dev, of.ino = devIno(fi)
	var head []byte
	if gz != nil {
		head, _ = readHead(name, true, maxFPLen)
	} else {
		head = make([]byte, maxFPLen)
		k, _ := fh.ReadAt(head, 0)
		head = head[:k]
	}
	of.fp = newFingerprint(head)
	ln.p.reset()
	of.fc = fileCtx{path: ln.path, p: ln.p, lineKnown: true, ident: of.position(ln.path).Ident()}
	var r io.Reader = fh
	if gz != nil {
		r = gz
	}
	of.lr = newLineReader(r, f.opts.MaxLineBytes, 0)
	of.lr.nul = &f.t.st.nulBytes
	if gz == nil {
		of.lr.cr.verify = func() error { return f.verifyHead(of) }
	}
	return of
}

// errHeadChanged discards data read from a file whose first bytes are no
// longer those it was opened with.
var errHeadChanged = errors.New("the first bytes changed while reading")

// verifyHead runs after every read of a followed file, before its lines are
// delivered. truncated checks the first bytes before a read, but a
// copytruncate with a writer that keeps its offset can happen between that
// check and the read: the read then returns the new content past the old
// offset as if it were appended, and the restart that follows reads it
// again. Checking after the read closes that window: data read after the
// truncation is dropped here and read once, from the start.
func (f *follower) verifyHead(of *openFile) error {
	n := len(of.fp.prefix)
	if of.catchUp || n == 0 {
		return nil
	}
	if cap(f.scratch) < n {
		f.scratch = make([]byte, maxFPLen)
	}
	buf := f.scratch[:n]
	if k, _ := of.f.ReadAt(buf, 0); k < n || !bytes.Equal(buf, of.fp.prefix) {
		of.changed = true
		return errHeadChanged
	}
	return nil
}

// seekTo positions a freshly opened file at off, a line boundary. The Zeek
// header lines before off are fed to the parser first, so that the lines
// that follow can be parsed.
func (f *follower) seekTo(ln *lane, of *openFile, off int64) error {
	var src io.Reader = of.f
	if of.gz != nil {
		src = of.gz
	}
	if f.t.in.Format == FormatZeek && len(of.fp.prefix) > 0 && of.fp.prefix[0] == '#' {
		var sec io.Reader = io.NewSectionReader(of.f, 0, off)
		if of.gz != nil {
			sec = io.LimitReader(of.gz, off)
		}
		lr := newLineReader(sec, f.opts.MaxLineBytes, 0)
		var n int64
		for {
			line, long, err := lr.next()
			if err != nil {
				break
			}
			n++
			if !long && len(line) > 0 && line[0] == '#' {
				if bytes.HasPrefix(line, []byte("#close")) {
					of.fc.closed = true
				}
				_, _, _ = ln.p.parse(line)
			}
		}
		if lr.pos != off {
			return fmt.Errorf("offset %d is not a line boundary (last line ends at %d)", off, lr.pos)
		}
		of.fc.lineNo = n
	} else {
		if of.gz != nil {
			if _, err := io.CopyN(io.Discard, of.gz, off); err != nil {
				return fmt.Errorf("skip %d decompressed bytes: %w", off, err)
			}
		}
		of.fc.lineKnown = false
	}
	if of.gz == nil {
		var last [1]byte
		if _, err := of.f.ReadAt(last[:], off-1); err != nil || last[0] != '\n' {
			return fmt.Errorf("offset %d is not just past a newline", off)
		}
		if _, err := of.f.Seek(off, io.SeekStart); err != nil {
			return err
		}
	}
	of.lr.reset(src, off)
	return nil
}

// skipToEnd positions of at size, the end of the file when it was opened.
// The leading Zeek header block is still read so that the lines that follow
// can be parsed; a file holding nothing but (part of) a header is read on
// from where the header stops.
func (f *follower) skipToEnd(ln *lane, of *openFile, size int64) {
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
			_ = f.sink.line(context.Background(), &of.fc, line, false, of.lr.pos) // meta lines never reach the handler
		}
		if !sawData || of.lr.pos >= size {
			return
		}
	}
	if _, err := of.f.Seek(size, io.SeekStart); err != nil {
		f.log.Warn("tailer: seek to end failed, reading from the start", "file", ln.path, "err", err)
		_, _ = of.f.Seek(0, io.SeekStart)
		of.lr.reset(of.f, 0)
		ln.p.reset()
		of.fc = fileCtx{path: ln.path, p: ln.p, lineKnown: true, ident: of.fc.ident}
		return
	}
	of.lr.reset(of.f, size)
	of.fc.lineKnown = false
	var last [1]byte
	if _, err := of.f.ReadAt(last[:], size-1); err != nil || last[0] != '\n' {
		of.lr.resync() // size falls inside a line: start after it
	}
}

// candidate is an older generation of a lane's path: a rotated sibling or
// an archive.
type candidate struct {
	path     string
	gz       bool
	mod      time.Time
	size     int64
	dev, ino uint64
	fp       fingerprint
	offset   int64 // where to start reading (decompressed)
	header   bool  // feed the header lines before offset to the parser
}

// isRotatedName reports whether name looks like a rotated generation of
// base: base's stem (up to its first dot), a '.', '-' or '_', then anything
// with a digit (conn.2024-01-01-10-00-00.log, conn.10:00:00-11:00:00.log.gz,
// eve.json.1, json_streaming_conn.1.log, conn__2021-…__.log).
func isRotatedName(base, name string) bool {
	if name == base || strings.HasPrefix(name, ".") {
		return false
	}
	stem, _, _ := strings.Cut(base, ".")
	rest, ok := strings.CutPrefix(strings.TrimSuffix(name, ".gz"), stem)
	if !ok || rest == "" || !strings.ContainsRune(".-_", rune(rest[0])) {
		return false
	}
	return strings.ContainsAny(rest, "0123456789")
}

// candidates lists the rotated siblings and archives of the lane's path
// modified within MaxCatchUpAge, with their fingerprints.
func (f *follower) candidates(ln *lane) []candidate {
	var paths []string
	dir, base := filepath.Dir(ln.path), filepath.Base(ln.path)
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if isRotatedName(base, e.Name()) {
				paths = append(paths, filepath.Join(dir, e.Name()))
			}
		}
	}
	for _, g := range f.t.in.Archives {
		m, _ := filepath.Glob(g)
		paths = append(paths, m...)
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	oldest := f.now().Add(-f.opts.MaxCatchUpAge)
	var out []candidate
	for _, p := range paths {
		if p == ln.path {
			continue
		}
		if f.glob {
			if ok, _ := filepath.Match(f.pattern, p); ok {
				continue // a file of the glob is a lane of its own
			}
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().Before(oldest) {
			continue
		}
		c := candidate{path: p, gz: strings.HasSuffix(p, ".gz"), mod: fi.ModTime(), size: fi.Size()}
		c.dev, c.ino = devIno(fi)
		head, err := readHead(p, c.gz, maxFPLen)
		if err != nil {
			f.log.Warn("tailer: cannot read a rotated or archived file", "file", p, "err", err)
			continue
		}
		c.fp = newFingerprint(head)
		out = append(out, c)
	}
	return out
}

// middleGenerations lists the generations written between the one just
// finished and the file now at the path, not read yet: the path rotated
// more than once between two looks (R11), or while we were down.
func (f *follower) middleGenerations(ln *lane) []candidate {
	after := ln.prevMod
	var pathDev, pathIno uint64
	var pathFP fingerprint
	if fi, err := os.Stat(ln.path); err == nil {
		pathDev, pathIno = devIno(fi)
		if head, err := readHead(ln.path, false, maxFPLen); err == nil {
			pathFP = newFingerprint(head)
		}
	}
	var out []candidate
	for _, c := range f.candidates(ln) {
		if c.dev == pathDev && c.ino == pathIno && !c.gz || len(c.fp.prefix) == 0 ||
			pathFP.complete && c.fp.complete && c.fp.same(pathFP) {
			continue
		}
		known, rest := f.isKnown(c)
		switch {
		case known:
			continue
		case rest > 0:
			// Read before, released, written again since (late writes to
			// a renamed file): read on from where we stopped.
			c.offset = rest
		case c.mod.Before(after):
			continue
		}
		out = append(out, c)
	}
	return orderGenerations(out)
}

// orderGenerations sorts by modification time and drops the second of two
// files with the same content (a rotated file and its archive while
// archive-log runs), preferring the uncompressed one.
func orderGenerations(cs []candidate) []candidate {
	slices.SortStableFunc(cs, func(a, b candidate) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	var out []candidate
	for _, c := range cs {
		dup := false
		for i, o := range out {
			if o.fp.complete && c.fp.complete && o.fp.same(c.fp) {
				dup = true
				if o.gz && !c.gz {
					out[i] = c
				}
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}

// openCandidate opens an older generation to be read to its end.
func (f *follower) openCandidate(ln *lane, c candidate) *openFile {
	fh, err := os.Open(c.path)
	if err != nil {
		f.log.Warn("tailer: rotated or archived file vanished before it could be read", "file", c.path, "err", err)
		return nil
	}
	fi, err := fh.Stat()
	if err != nil {
		_ = fh.Close()
		return nil
	}
	var zr *gzip.Reader
	if c.gz {
		if zr, err = gzip.NewReader(bufio.NewReaderSize(fh, readBufSize)); err != nil {
			_ = fh.Close()
			f.log.Warn("tailer: cannot read archive", "file", c.path, "err", err)
			return nil
		}
	}
	of := f.newOpenFile(ln, fh, fi, c.path, zr)
	of.catchUp = true
	if c.offset > 0 {
		if err := f.seekTo(ln, of, c.offset); err != nil {
			f.log.Warn("tailer: cannot continue in the rotated or archived file", "file", c.path, "offset", c.offset, "err", err)
			of.close()
			return nil
		}
	}
	of.startOff = of.lr.pos
	f.t.st.catchUp.Add(1)
	f.log.Info("tailer: catching up from an older generation", "file", c.path, "offset", c.offset, "for", ln.path)
	return of
}

// applyResume validates a committed position: the path's file when its
// fingerprint matches and it is long enough; else the rotated or archived
// generation with that fingerprint, followed by the newer ones; else the
// path from the start, with a warning saying why.
func (f *follower) applyResume(ln *lane, pos Position) {
	fi, err := os.Stat(ln.path)
	why := ""
	switch {
	case pos.Offset < 0 || pos.FPLen < 0 || pos.FPLen > maxFPLen || len(pos.Fingerprint) != 64:
		f.t.st.resumeFallbacks.Add(1)
		f.log.Warn("tailer: invalid checkpoint; reading the file from the start", "position", pos.String())
		return
	case err != nil:
		why = "path: " + err.Error()
	case !fi.Mode().IsRegular():
		why = "path is not a regular file"
	default:
		head, err := readHead(ln.path, false, max(pos.FPLen, 1))
		switch {
		case err != nil:
			why = "path: " + err.Error()
		case !matchesPosition(head, pos):
			why = "the file at the path has another fingerprint (rotated, replaced, truncated or inode reused)"
		case fi.Size() < pos.Offset:
			why = fmt.Sprintf("the file at the path is shorter (%d bytes) than the position", fi.Size())
		default:
			if f.t.testHook != nil {
				f.t.testHook("resume: path checked")
			}
			if f.openPath(ln, pos.Offset, &pos) {
				f.log.Info("tailer: resumed", "position", pos.String())
				return
			}
			why = "cannot open the path, or it names another file since it was checked"
		}
	}
	cands := f.candidates(ln)
	for i, c := range cands {
		head := c.fp.prefix
		if pos.FPLen > len(head) {
			continue
		}
		if !matchesPosition(head, pos) {
			continue
		}
		found := cands[i]
		found.offset, found.header = pos.Offset, true
		var newer []candidate
		for _, o := range cands {
			if o.path != found.path && !o.mod.Before(found.mod) && !(o.fp.complete && found.fp.complete && o.fp.same(found.fp)) {
				newer = append(newer, o)
			}
		}
		if fi, err := os.Stat(ln.path); err == nil {
			d, i := devIno(fi)
			newer = slices.DeleteFunc(newer, func(o candidate) bool { return o.dev == d && o.ino == i && !o.gz })
		}
		ln.backlog = append([]candidate{found}, orderGenerations(newer)...)
		ln.resumed = true
		f.log.Info("tailer: resuming in a rotated or archived generation", "position", pos.String(), "file", found.path,
			"newer_generations", len(ln.backlog)-1, "why_not_the_path", why)
		return
	}
	f.t.st.resumeFallbacks.Add(1)
	f.log.Warn("tailer: checkpoint not found; reading the file from the start", "position", pos.String(),
		"why", why, "rotated_or_archived_checked", len(cands))
}
