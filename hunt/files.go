package hunt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stackprint/stackprint/db"
)

// Backuper is the fingerprint DB a hunt matches against: the file or the
// running daemon that owns it.
type Backuper interface {
	Backup(ctx context.Context, path string) (int64, error)
}

// Snapshot copies the fingerprint DB src (named name in errors) into a
// private file and opens it for exact and near matching, so the run holds
// no lock on the live DB. The returned func closes and removes the copy.
func Snapshot(ctx context.Context, src Backuper, name string) (*db.DB, func(), error) {
	dir, err := os.MkdirTemp("", "stackprint-hunt-")
	if err != nil {
		return nil, nil, fmt.Errorf("hunt: %w", err)
	}
	snap := filepath.Join(dir, "fingerprints.db")
	if _, err := src.Backup(ctx, snap); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("hunt: snapshot of %s: %w", name, err)
	}
	// Writable: the private copy may need the near index built (a file
	// written by an older stackprint).
	d, err := db.Open(snap, db.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("hunt: snapshot of %s: %w", name, err)
	}
	return d, func() { d.Close(); os.RemoveAll(dir) }, nil
}

// OpenOutput opens the record file for appending. With a state whose
// last finished record in this same file ended at offset N, what lies
// past N was written by a run that died before logging it: it is cut off
// (its target is reported as interrupted instead).
func OpenOutput(path string, state *State) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, 0, fmt.Errorf("hunt: --out: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("hunt: --out: %w", err)
	}
	size := fi.Size()
	if state != nil {
		abs, err := filepath.Abs(path)
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("hunt: --out: %w", err)
		}
		if n := state.OutputSize(abs); n >= 0 && n < size {
			if err := f.Truncate(n); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("hunt: --out: cut records past the state's last one: %w", err)
			}
			size = n
		}
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("hunt: --out: %w", err)
	}
	if state != nil {
		abs, _ := filepath.Abs(path)
		if err := state.SetOutput(abs); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	return f, size, nil
}

// ParsePorts parses a comma-separated port list.
func ParsePorts(s string) ([]uint16, error) {
	var out []uint16
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("invalid port %q", f)
		}
		out = append(out, uint16(n))
	}
	if len(out) == 0 {
		return nil, errors.New("no port")
	}
	return out, nil
}

// CountTargets is the progress total: the targets the files expand to
// (duplicates and out-of-scope ones included; host names count once); -1
// when a file cannot be opened.
func CountTargets(files []string, ports []uint16) int {
	n := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return -1
		}
		_ = ReadSpecs(f, name, func(s Spec) error { n += s.Count(ports); return nil }, func(BadLine) {})
		f.Close()
	}
	return n
}

// OpenSources opens the target files in order ("-" is stdin, named
// "stdin"). The returned func closes them.
func OpenSources(files []string, stdin io.Reader) ([]Source, func(), error) {
	var sources []Source
	var open []*os.File
	closeAll := func() {
		for _, f := range open {
			f.Close()
		}
	}
	for _, name := range files {
		if name == "-" {
			sources = append(sources, Source{Name: "stdin", R: stdin})
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("hunt: %w", err)
		}
		open = append(open, f)
		sources = append(sources, Source{Name: name, R: f})
	}
	return sources, closeAll, nil
}
