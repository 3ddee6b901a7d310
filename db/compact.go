package db

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// CompactReport is what Compact did.
type CompactReport struct {
	Before, After int64 // file sizes
}

// Compact rewrites the DB at path without its free pages and replaces
// the file with the copy. bbolt reuses the pages that pruning frees, so
// a file bounded by db.observations_max stays at its high-water mark; it
// shrinks only when copied, which is worth it after the bound was lowered
// or a burst of new servers passed. It holds the file's lock throughout
// (no daemon may have it open) and replaces the file only once the copy
// is complete and synced; on any error the file is left as it was.
func Compact(path string, timeout time.Duration) (CompactReport, error) {
	var rep CompactReport
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := CheckFile(path); err != nil {
		return rep, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return rep, fmt.Errorf("compact: %w", err)
	}
	rep.Before = fi.Size()
	var src *bolt.DB
	err = guard(path, func() (err error) {
		src, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
		return err
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return rep, fmt.Errorf("compact %q: locked by another process (stop `stackprint run` first) after %s: %w", path, timeout, err)
	}
	if err != nil {
		return rep, fmt.Errorf("compact: open %q: %w", path, err)
	}
	defer src.Close()
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("compact: %w", err)
	}
	dst, err := bolt.Open(tmp, fi.Mode().Perm(), &bolt.Options{Timeout: timeout})
	if err != nil {
		return rep, fmt.Errorf("compact: create %q: %w", tmp, err)
	}
	done := false
	defer func() {
		if !done {
			dst.Close()
			os.Remove(tmp)
		}
	}()
	if err := guard(path, func() error { return bolt.Compact(dst, src, 64<<20) }); err != nil {
		return rep, fmt.Errorf("compact %q: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return rep, fmt.Errorf("compact: close %q: %w", tmp, err)
	}
	done = true
	if err := CheckFile(tmp); err != nil {
		os.Remove(tmp)
		return rep, fmt.Errorf("compact: the copy: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return rep, fmt.Errorf("compact: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil { // the rename, durable
		_ = d.Sync()
		d.Close()
	}
	if fi, err := os.Stat(path); err == nil {
		rep.After = fi.Size()
	}
	return rep, nil
}
