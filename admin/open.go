package admin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/stackprint/stackprint/db"
)

// Mode is how OpenFile opens the DB file when no daemon answers.
type Mode int

const (
	// ReadWrite opens an existing file for writing.
	ReadWrite Mode = iota
	// Create opens the file for writing, creating it and its directory.
	Create
	// ReadOnly opens an existing file with a shared lock.
	ReadOnly
)

// OpenFile opens the DB file at path for the CLI when no daemon answered
// on socket (named in errors). The file lock wait is bounded by timeout,
// so a daemon that holds the file without answering on its socket gives a
// clear error, never a hang. migratedFrom is the schema version the file
// was migrated from (0: none).
func OpenFile(path, socket string, timeout time.Duration, mode Mode) (l *Local, migratedFrom int, err error) {
	switch mode {
	case Create:
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, 0, fmt.Errorf("create db directory: %w", err)
		}
	case ReadOnly:
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, 0, fmt.Errorf("no fingerprint DB at %s", path)
		}
	default:
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, 0, fmt.Errorf("no fingerprint DB at %s (it is created by `stackprint run` or the first `stackprint db add|import`)", path)
		}
	}
	d, err := db.Open(path, db.Options{Timeout: timeout, ReadOnly: mode == ReadOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		if mode == ReadOnly {
			return nil, 0, fmt.Errorf("%w; and no daemon answered on the admin socket %s", err, socket)
		}
		return nil, 0, fmt.Errorf("%w; and no daemon answered on the admin socket %s (is it an older stackprint, or is db.admin_socket different there?)", err, socket)
	}
	if err != nil {
		return nil, 0, err
	}
	if mode != ReadOnly {
		migratedFrom = d.MigratedFrom()
	}
	return NewLocal(d, true), migratedFrom, nil
}
