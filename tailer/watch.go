package tailer

import (
	"errors"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// DirWatcher is one fsnotify watcher shared by every tailer given it in
// Options.Watcher: one inotify instance for the process and one watch per
// directory however many inputs live there (inotify's per-user limits on
// instances and watches are small). Only directories are watched, never
// files (an atomic replace would break a file watch); events only wake the
// tailers, which then stat and read.
//
// When fsnotify cannot start, or a directory cannot be watched (inotify
// limits: "no space left on device", "too many open files"; file systems
// without events: NFS, FUSE), the tailers poll alone; a queue overflow
// wakes every tailer for a full rescan.
type DirWatcher struct {
	log *slog.Logger
	w   *fsnotify.Watcher // nil: polling only
	add func(dir string) error
	rm  func(dir string) error

	mu     sync.Mutex
	dirs   map[string]*watchedDir
	closed bool
	wg     sync.WaitGroup
}

type watchedDir struct {
	active bool // the fsnotify watch is in place
	warned bool
	subs   map[*dirSub]struct{}
}

// dirSub is one tailer's interest in a directory.
type dirSub struct {
	dir   string
	match func(base string) bool // names in dir that concern the subscriber
	poke  func()                 // must not block
}

// NewDirWatcher starts a shared watcher. It never fails: without fsnotify
// the tailers poll, and a warning says so. Close it after the tailers that
// use it have stopped.
func NewDirWatcher(log *slog.Logger) *DirWatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DirWatcher{log: log, dirs: map[string]*watchedDir{}}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("tailer: fsnotify unavailable, polling only", "err", err)
		return d
	}
	d.w, d.add, d.rm = w, w.Add, w.Remove
	d.wg.Add(1)
	go d.loop(w.Events, w.Errors)
	return d
}

// newPollingWatcher is a watcher without fsnotify (tests, noWatch).
func newPollingWatcher(log *slog.Logger) *DirWatcher {
	return &DirWatcher{log: log, dirs: map[string]*watchedDir{}}
}

// Close stops the watcher.
func (d *DirWatcher) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	var err error
	if d.w != nil {
		err = d.w.Close()
	}
	d.wg.Wait()
	return err
}

// subscribe registers interest in dir and tries to watch it.
func (d *DirWatcher) subscribe(dir string, match func(string) bool, poke func()) *dirSub {
	s := &dirSub{dir: dir, match: match, poke: poke}
	d.mu.Lock()
	defer d.mu.Unlock()
	wd := d.dirs[dir]
	if wd == nil {
		wd = &watchedDir{subs: map[*dirSub]struct{}{}}
		d.dirs[dir] = wd
	}
	wd.subs[s] = struct{}{}
	d.ensureLocked(dir, wd)
	return s
}

func (d *DirWatcher) unsubscribe(s *dirSub) {
	d.mu.Lock()
	defer d.mu.Unlock()
	wd := d.dirs[s.dir]
	if wd == nil {
		return
	}
	delete(wd.subs, s)
	if len(wd.subs) == 0 {
		if wd.active && d.rm != nil && !d.closed {
			_ = d.rm(s.dir)
		}
		delete(d.dirs, s.dir)
	}
}

// ensure (re)adds the watch of s's directory when it is missing (the
// directory did not exist, or was removed or moved away: a watch follows a
// moved directory, so it is dropped and added again by path). It reports
// whether the directory is watched.
func (d *DirWatcher) ensure(s *dirSub) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	wd := d.dirs[s.dir]
	if wd == nil {
		return false
	}
	return d.ensureLocked(s.dir, wd)
}

func (d *DirWatcher) ensureLocked(dir string, wd *watchedDir) bool {
	if wd.active {
		return true
	}
	if d.add == nil || d.closed {
		return false
	}
	if d.rm != nil {
		_ = d.rm(dir)
	}
	if err := d.add(dir); err != nil {
		if !wd.warned {
			d.log.Warn("tailer: cannot watch directory, polling it until it can be", "dir", dir, "err", err)
			wd.warned = true
		}
		return false
	}
	if wd.warned {
		d.log.Info("tailer: watching directory", "dir", dir)
	}
	wd.warned = false
	wd.active = true
	return true
}

func (d *DirWatcher) loop(events <-chan fsnotify.Event, errs <-chan error) {
	defer d.wg.Done()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			d.event(ev)
		case err, ok := <-errs:
			if !ok {
				return
			}
			d.error(err)
		}
	}
}

func (d *DirWatcher) event(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if wd := d.dirs[name]; wd != nil && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		// The watched directory itself went away (zeekctl post-terminate
		// moves the spool): re-add by path, rescan.
		wd.active = false
		for s := range wd.subs {
			s.poke()
		}
	}
	wd := d.dirs[filepath.Dir(name)]
	if wd == nil {
		return
	}
	base := filepath.Base(name)
	for s := range wd.subs {
		if s.match == nil || s.match(base) {
			s.poke()
		}
	}
}

// error handles an fsnotify error: on a queue overflow events were lost, so
// every subscriber rescans; other errors are logged and rescanned too.
func (d *DirWatcher) error(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		d.log.Warn("tailer: fsnotify event queue overflowed; rescanning every file")
	} else {
		d.log.Warn("tailer: fsnotify error; rescanning", "err", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, wd := range d.dirs {
		for s := range wd.subs {
			s.poke()
		}
	}
}
