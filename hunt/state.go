package hunt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stackprint/stackprint"
)

// stateMagic is the first line of a state file.
const stateMagic = "#stackprint hunt state v1"

// stateSyncEvery is how often the state file is fsynced while a run goes
// on. A SIGKILL loses nothing written (the page cache survives the
// process); the fsync covers a crash of the machine.
const stateSyncEvery = time.Second

// State is the write-ahead log of a run: "O PATH" names the output file
// (empty: a stream), "S KEY" precedes a target's first connection, "D
// OFFSET KEY" follows its record (OFFSET: the output file's size after it,
// -1 on a stream). A resumed run skips every
// target with a D line, reports every one with an S line only as
// interrupted without probing it again, and cuts its output file back to
// the last D offset, so the output holds exactly one record per target
// however the previous run ended. Every line goes out in one write, so a
// killed process leaves at most a torn last line, which is cut off.
type State struct {
	mu      sync.Mutex
	f       *os.File
	path    string
	done    map[string]bool // key → finished (D) or only started (S)
	outSize int64           // output size at the last D line; -1 when unknown
	outPath string          // output file of the last O line ("" = a stream)
	dirty   bool
	stop    chan struct{}
	stopped chan struct{}
	err     error
}

// OpenState opens or creates the state file at path and reads what a
// previous run left.
func OpenState(path string) (*State, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("hunt state: %w", err)
	}
	s := &State{f: f, path: path, done: map[string]bool{}, outSize: -1, stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := s.load(); err != nil {
		f.Close()
		return nil, err
	}
	go s.syncLoop()
	return s, nil
}

func (s *State) load() error {
	data, err := io.ReadAll(s.f)
	if err != nil {
		return fmt.Errorf("hunt state %s: %w", s.path, err)
	}
	if len(data) == 0 {
		_, err := s.f.WriteString(stateMagic + "\n")
		return err
	}
	// A torn last line (no newline) is cut off: its write never finished.
	keep := len(data)
	if i := bytes.LastIndexByte(data, '\n'); i < len(data)-1 {
		keep = i + 1
	}
	lines := strings.Split(string(data[:keep]), "\n")
	if lines[0] != stateMagic {
		return fmt.Errorf("hunt state %s: not a hunt state file (first line %q)", s.path, lines[0])
	}
	for i, l := range lines[1:] {
		if l == "" {
			continue
		}
		kind, rest, _ := strings.Cut(l, " ")
		switch kind {
		case "S":
			if _, ok := s.done[rest]; !ok {
				s.done[rest] = false
			}
		case "O":
			s.outPath, s.outSize = rest, -1
		case "D":
			off, key, ok := strings.Cut(rest, " ")
			n, err := strconv.ParseInt(off, 10, 64)
			if !ok || err != nil {
				return fmt.Errorf("hunt state %s:%d: bad line %q", s.path, i+2, l)
			}
			s.done[key] = true
			s.outSize = n
		default:
			return fmt.Errorf("hunt state %s:%d: bad line %q", s.path, i+2, l)
		}
	}
	if keep < len(data) {
		if err := s.f.Truncate(int64(keep)); err != nil {
			return fmt.Errorf("hunt state %s: cut torn line: %w", s.path, err)
		}
	}
	_, err = s.f.Seek(0, io.SeekEnd)
	return err
}

// Key is how the state names a target.
func Key(t stackprint.Target) string {
	sni := t.SNI
	if sni == "" {
		sni = "-"
	}
	return t.Addr().String() + " " + sni
}

// Previous reports what the previous runs did with key: finished, or only
// started (interrupted).
func (s *State) Previous(key string) (seen, finished bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.done[key]
	return ok, f
}

// Counts returns the finished and the interrupted targets of previous runs.
func (s *State) Counts() (finished, interrupted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.done {
		if f {
			finished++
		} else {
			interrupted++
		}
	}
	return
}

// OutputSize is the size of the output file path after the last record
// a previous run logged for it, or -1 when none is known (another file,
// a stream): only then may the caller cut the file back to it.
func (s *State) OutputSize(path string) int64 {
	if path == "" || path != s.outPath {
		return -1
	}
	return s.outSize
}

// SetOutput logs the output file the D lines that follow refer to
// ("" for a stream); a resumed run only cuts back the file it names.
func (s *State) SetOutput(path string) error {
	if path == s.outPath {
		return nil
	}
	s.outPath, s.outSize = path, -1
	return s.append("O " + path + "\n")
}

// Started logs that key's first connection is about to be made.
func (s *State) Started(key string) error { return s.append("S " + key + "\n") }

// Finished logs that key's record is written; off is the output size
// after it (-1: a stream).
func (s *State) Finished(key string, off int64) error {
	return s.append("D " + strconv.FormatInt(off, 10) + " " + key + "\n")
}

func (s *State) append(line string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if _, err := s.f.WriteString(line); err != nil {
		s.err = fmt.Errorf("hunt state %s: %w", s.path, err)
		return s.err
	}
	s.dirty = true
	return nil
}

func (s *State) syncLoop() {
	defer close(s.stopped)
	t := time.NewTicker(stateSyncEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_ = s.sync()
		}
	}
}

func (s *State) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty || s.err != nil {
		return s.err
	}
	s.dirty = false
	if err := s.f.Sync(); err != nil {
		s.err = fmt.Errorf("hunt state %s: fsync: %w", s.path, err)
	}
	return s.err
}

// Close syncs and closes the file.
func (s *State) Close() error {
	close(s.stop)
	<-s.stopped
	err := s.sync()
	return errors.Join(err, s.f.Close())
}
