package db

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/stackprint/stackprint"
)

// SchemaVersion is the version of the bucket layout this package reads and
// writes (see the package doc).
const SchemaVersion = 1

// DefaultTimeout is how long Open waits for the file lock.
const DefaultTimeout = time.Second

// Bucket and key names of the schema (see the package doc).
const (
	bucketMeta         = "meta"
	bucketFingerprints = "fingerprints"
	keySchemaVersion   = "schema_version"
)

// Options configures Open.
type Options struct {
	// Timeout bounds the wait for the file lock; 0 means DefaultTimeout.
	Timeout time.Duration
	// ReadOnly opens the file with a shared lock; the file must exist.
	ReadOnly bool
}

// DB is an open fingerprint database. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
	now  func() time.Time
}

// Open opens the fingerprint DB at path. A writable open creates the file
// and its buckets on first start.
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open fingerprint db %q: locked by another process (is `stackprint run` running?) after %s: %w", path, timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open fingerprint db %q: %w", path, err)
	}
	d := &DB{bolt: b, path: path, now: time.Now}
	if opts.ReadOnly {
		err = b.View(checkSchema)
	} else {
		err = b.Update(initSchema)
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open fingerprint db %q: %w", path, err)
	}
	return d, nil
}

// initSchema creates the buckets and records the schema version on first
// start, and refuses a file written by a newer schema.
func initSchema(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
	if err != nil {
		return fmt.Errorf("create bucket meta: %w", err)
	}
	if _, err := tx.CreateBucketIfNotExists([]byte(bucketFingerprints)); err != nil {
		return fmt.Errorf("create bucket fingerprints: %w", err)
	}
	if meta.Get([]byte(keySchemaVersion)) == nil {
		if err := meta.Put([]byte(keySchemaVersion), []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return fmt.Errorf("write schema version: %w", err)
		}
	}
	return checkSchema(tx)
}

func checkSchema(tx *bolt.Tx) error {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		return nil // read-only open of a file never initialised: empty DB
	}
	raw := meta.Get([]byte(keySchemaVersion))
	if raw == nil {
		return nil
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil {
		return fmt.Errorf("schema version %q: not a number", raw)
	}
	if v != SchemaVersion {
		return fmt.Errorf("schema version %d: this stackprint reads version %d", v, SchemaVersion)
	}
	return nil
}

// Close releases the file and its lock.
func (d *DB) Close() error {
	if err := d.bolt.Close(); err != nil {
		return fmt.Errorf("close fingerprint db %q: %w", d.path, err)
	}
	return nil
}

// Path returns the file the DB was opened from.
func (d *DB) Path() string { return d.path }

// Add validates r and inserts or updates it. An update keeps the stored
// FirstSeen; a new record keeps a FirstSeen the caller set (an entry moved
// from another sensor) or gets now. LastSeen is always now. BlockCount and
// TopCount are learned rather than curated, so zero counts in r keep the
// stored ones.
func (d *DB) Add(r Record) error {
	if err := ValidateRecord(&r); err != nil {
		return fmt.Errorf("add fingerprint: %w", err)
	}
	now := d.now().UTC()
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		b, err := writableBucket(tx)
		if err != nil {
			return err
		}
		return put(b, r, now)
	})
	if err != nil {
		return fmt.Errorf("add %s %s to %q: %w", r.Kind, r.Value, d.path, err)
	}
	return nil
}

// put upserts a validated record.
func put(b *bolt.Bucket, r Record, now time.Time) error {
	k := key(r.Kind, r.Value)
	if raw := b.Get(k); raw != nil {
		var old Record
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("decode stored %s %s: %w", r.Kind, r.Value, err)
		}
		r.FirstSeen = old.FirstSeen
		if r.BlockCount == 0 {
			r.BlockCount = old.BlockCount
		}
		if r.TopCount == 0 {
			r.TopCount = old.TopCount
		}
	}
	if r.FirstSeen.IsZero() {
		r.FirstSeen = now
	}
	r.FirstSeen = r.FirstSeen.UTC()
	r.LastSeen = now
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", r.Kind, r.Value, err)
	}
	return b.Put(k, raw)
}

func writableBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	b := tx.Bucket([]byte(bucketFingerprints))
	if b == nil {
		return nil, errors.New("bucket fingerprints missing")
	}
	return b, nil
}

// Remove deletes the record of kind and value; it reports whether one
// existed.
func (d *DB) Remove(kind, value string) (bool, error) {
	kind, value, err := normaliseKey(kind, value)
	if err != nil {
		return false, fmt.Errorf("remove fingerprint: %w", err)
	}
	var found bool
	err = d.bolt.Update(func(tx *bolt.Tx) error {
		b, err := writableBucket(tx)
		if err != nil {
			return err
		}
		k := key(kind, value)
		found = b.Get(k) != nil
		if !found {
			return nil
		}
		return b.Delete(k)
	})
	if err != nil {
		return false, fmt.Errorf("remove %s %s from %q: %w", kind, value, d.path, err)
	}
	return found, nil
}

// Get returns the record of kind and value. The value may be given in any
// form ValidateRecord accepts (upper case, colons).
func (d *DB) Get(kind, value string) (Record, bool, error) {
	kind, value, err := normaliseKey(kind, value)
	if err != nil {
		return Record{}, false, fmt.Errorf("get fingerprint: %w", err)
	}
	var (
		r     Record
		found bool
	)
	err = d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketFingerprints))
		if b == nil {
			return nil
		}
		raw := b.Get(key(kind, value))
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, &r)
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("get %s %s from %q: %w", kind, value, d.path, err)
	}
	return r, found, nil
}

// List returns the records of one kind, or of all kinds when kind is "",
// sorted by kind, then value.
func (d *DB) List(kind string) ([]Record, error) {
	var prefix []byte
	if kind != "" {
		kind = strings.ToLower(strings.TrimSpace(kind))
		if hexLen(kind) == 0 {
			return nil, fmt.Errorf("list fingerprints: kind %q: unknown, want jarm, atsf, cert_sha256 or cert_sha1", kind)
		}
		prefix = key(kind, "")
	}
	var out []Record
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketFingerprints))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode key %q: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list fingerprints in %q: %w", d.path, err)
	}
	return out, nil
}

// Match returns the DB entries that match the fingerprints of a probe
// result. For now that is its JARM; the all-zero and the empty JARM never
// match.
func (d *DB) Match(r stackprint.Result) ([]stackprint.Match, error) {
	if !r.HasJARM() {
		return nil, nil
	}
	// The prober writes lower case; lowering is cheap insurance for a key
	// that must match byte for byte.
	jarm := strings.ToLower(r.JARM)
	var out []stackprint.Match
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketFingerprints))
		if b == nil {
			return nil
		}
		raw := b.Get(key(KindJARM, jarm))
		if raw == nil {
			return nil
		}
		var rec Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("decode jarm %s: %w", jarm, err)
		}
		out = append(out, stackprint.Match{
			Kind:       rec.Kind,
			Value:      rec.Value,
			Label:      rec.Label,
			Source:     rec.Source,
			Confidence: rec.Confidence,
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("match %s in %q: %w", r.Target, d.path, err)
	}
	return out, nil
}
