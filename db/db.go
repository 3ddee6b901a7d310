package db

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/stackprint/stackprint"
)

// SchemaVersion is the version of the bucket layout this package reads and
// writes (see the package doc). Open migrates older files.
const SchemaVersion = 2

// DefaultTimeout is how long Open waits for the file lock.
const DefaultTimeout = time.Second

// Bucket and key names of the schema (see the package doc).
const (
	bucketMeta         = "meta"
	bucketFingerprints = "fingerprints"
	bucketObservations = "observations"
	bucketObsIndex     = "obs_index"
	bucketLearnTargets = "learn_targets"
	bucketLearned      = "learned"
	bucketProbeLog     = "probe_log"
	bucketAlerts       = "alerts"
	bucketAlertIndex   = "alert_index"
	bucketBackfill     = "backfill"
	keySchemaVersion   = "schema_version"
	keyLastImport      = "last_import"
	keyMigrations      = "migrations"
)

// schemaBuckets returns the buckets every file has after a writable Open.
// The checkpoints and pending buckets belong to the daemon's delivery
// state (state.go).
func schemaBuckets() []string {
	return []string{
		bucketMeta, bucketFingerprints, bucketObservations, bucketObsIndex,
		bucketLearnTargets, bucketLearned, bucketCheckpoints, bucketPending,
		bucketNearATSF, bucketNearJARM, bucketProbeLog, bucketAlerts, bucketAlertIndex,
		bucketWatch, bucketBackfill, bucketObsNear,
	}
}

// Options configures Open.
type Options struct {
	// Timeout bounds the wait for the file lock; 0 means DefaultTimeout.
	// bbolt itself would wait forever on 0: Open never passes it on.
	Timeout time.Duration
	// ReadOnly opens the file with a shared lock; the file must exist and
	// already be at SchemaVersion.
	ReadOnly bool
}

// DB is an open fingerprint database. It is safe for concurrent use.
type DB struct {
	bolt     *bolt.DB
	path     string
	now      func() time.Time
	migrated int // schema version migrated from, 0 if none
	readOnly bool
	gen      atomic.Uint64 // bumped on every change to fingerprints
	obsCount atomic.Int64  // observations kept (Observations)
}

// Open opens the fingerprint DB at path. A writable open creates the file
// and its buckets on first start and migrates a file written by an older
// schema, in one transaction.
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := CheckFile(path); err != nil {
		return nil, err
	}
	var b *bolt.DB
	err := guard(path, func() (err error) { // bbolt reads the freelist page when it opens
		b, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly})
		return err
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open fingerprint db %q: locked by another process (is `stackprint run` running?) after %s: %w", path, timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open fingerprint db %q: %w", path, err)
	}
	d := &DB{bolt: b, path: path, now: time.Now, readOnly: opts.ReadOnly}
	if opts.ReadOnly {
		err = d.view(checkSchemaReadOnly)
	} else {
		err = d.update(func(tx *bolt.Tx) error {
			from, err := migrate(tx, d.now().UTC())
			d.migrated = from
			if b := tx.Bucket([]byte(bucketObservations)); err == nil && b != nil {
				d.obsCount.Store(int64(b.Stats().KeyN))
			}
			return err
		})
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open fingerprint db %q: %w", path, err)
	}
	return d, nil
}

// MigratedFrom returns the schema version Open migrated the file from, or 0
// when the file was already current (or new).
func (d *DB) MigratedFrom() int { return d.migrated }

// Generation changes whenever a fingerprint record is added, changed or
// removed through this DB, so a cache of match results can tell it is
// stale.
func (d *DB) Generation() uint64 { return d.gen.Load() }

// Close releases the file and its lock.
func (d *DB) Close() error {
	if err := d.bolt.Close(); err != nil {
		return fmt.Errorf("close fingerprint db %q: %w", d.path, err)
	}
	return nil
}

// Path returns the file the DB was opened from.
func (d *DB) Path() string { return d.path }

// Add validates r and inserts or updates it (see put for how stored fields
// are merged).
func (d *DB) Add(r Record) error {
	_, err := d.AddRecord(r)
	return err
}

// AddRecord is Add returning the record as stored.
func (d *DB) AddRecord(r Record) (Record, error) {
	if err := ValidateRecord(&r); err != nil {
		return Record{}, fmt.Errorf("add fingerprint: %w", err)
	}
	now := d.now().UTC()
	var stored Record
	err := d.update(func(tx *bolt.Tx) error {
		var err error
		stored, err = put(tx, r, now)
		return err
	})
	if err != nil {
		return Record{}, fmt.Errorf("add %s %s to %q: %w", r.Kind, r.Value, d.path, err)
	}
	d.gen.Add(1)
	return stored, nil
}

// put upserts a validated record and returns it as stored:
//   - Added is kept from the stored record, else taken from r, else now;
//     Updated is now.
//   - FirstSeen and LastSeen widen to cover both the stored and r's.
//   - BlockCount and TopCount are learned, not curated: the learned bucket
//     wins when it knows the fingerprint, then non-zero counts in r, then
//     the stored counts.
func put(tx *bolt.Tx, r Record, now time.Time) (Record, error) {
	b, err := bucket(tx, bucketFingerprints)
	if err != nil {
		return Record{}, err
	}
	k := key(r.Kind, r.Value)
	if raw := b.Get(k); raw != nil {
		var old Record
		if err := json.Unmarshal(raw, &old); err != nil {
			return Record{}, fmt.Errorf("decode stored %s %s: %w", r.Kind, r.Value, err)
		}
		r.Added = old.Added
		r.FirstSeen = earliest(old.FirstSeen, r.FirstSeen)
		r.LastSeen = latest(old.LastSeen, r.LastSeen)
		if r.BlockCount == 0 {
			r.BlockCount = old.BlockCount
		}
		if r.TopCount == 0 {
			r.TopCount = old.TopCount
		}
		if len(r.Hellos) == 0 {
			r.Hellos = old.Hellos
		}
	}
	if ls, ok, err := getLearned(tx, k); err != nil {
		return Record{}, err
	} else if ok {
		r.BlockCount, r.TopCount = ls.Block, ls.Top
	}
	if r.Added.IsZero() {
		r.Added = now
	}
	r.Added = r.Added.UTC()
	r.Updated = now
	if !r.FirstSeen.IsZero() {
		r.FirstSeen = r.FirstSeen.UTC()
	}
	if !r.LastSeen.IsZero() {
		r.LastSeen = r.LastSeen.UTC()
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return Record{}, fmt.Errorf("encode %s %s: %w", r.Kind, r.Value, err)
	}
	if err := b.Put(k, raw); err != nil {
		return Record{}, fmt.Errorf("write %s %s: %w", r.Kind, r.Value, err)
	}
	if err := indexNear(tx, r, true); err != nil {
		return Record{}, err
	}
	return r, nil
}

// earliest returns the earlier of two times, ignoring zero ones.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// latest returns the later of two times.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// bucket returns a bucket that Open created.
func bucket(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	b := tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("bucket %s missing", name)
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
	err = d.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketFingerprints)
		if err != nil {
			return err
		}
		k := key(kind, value)
		rec, ok, err := getRecord(tx, kind, value)
		if err != nil || !ok {
			return err
		}
		found = true
		if err := indexNear(tx, rec, false); err != nil {
			return err
		}
		return b.Delete(k)
	})
	if err != nil {
		return false, fmt.Errorf("remove %s %s from %q: %w", kind, value, d.path, err)
	}
	if found {
		d.gen.Add(1)
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
	err = d.view(func(tx *bolt.Tx) error {
		var err error
		r, found, err = getRecord(tx, kind, value)
		return err
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("get %s %s from %q: %w", kind, value, d.path, err)
	}
	return r, found, nil
}

func getRecord(tx *bolt.Tx, kind, value string) (Record, bool, error) {
	b := tx.Bucket([]byte(bucketFingerprints))
	if b == nil {
		return Record{}, false, nil
	}
	raw := b.Get(key(kind, value))
	if raw == nil {
		return Record{}, false, nil
	}
	var r Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return Record{}, false, fmt.Errorf("decode %s %s: %w", kind, value, err)
	}
	return r, true, nil
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
	err := d.view(func(tx *bolt.Tx) error {
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
// result: its JARM, and its ATSF id and leaf certificate hashes once the
// probe engine reports them, then the near matches (Near, with
// stackprint.Match.Near set). The all-zero and the empty JARM never match.
func (d *DB) Match(r stackprint.Result) ([]stackprint.Match, error) {
	fps := FingerprintsOf(r)
	if fps.empty() && r.ATSF == nil {
		return nil, nil
	}
	var out []stackprint.Match
	err := d.view(func(tx *bolt.Tx) error {
		for _, k := range fps.keys() {
			rec, ok, err := getRecord(tx, k.Kind, k.Value)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, matchOf(rec))
			}
		}
		near, err := nearIn(tx, r)
		out = append(out, near...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("match %s in %q: %w", r.Target, d.path, err)
	}
	return out, nil
}

func matchOf(rec Record) stackprint.Match {
	return stackprint.Match{
		Kind:       rec.Kind,
		Value:      rec.Value,
		Label:      rec.Label,
		Source:     rec.Source,
		Confidence: rec.Confidence,
		Category:   rec.Category,
		BlockCount: rec.BlockCount,
		TopCount:   rec.TopCount,
	}
}

// ListFilter narrows a listing: every set field must hold.
type ListFilter struct {
	ValuePrefix string // value starts with it (hex, any case, colons ignored)
	Label       string // label contains it, case-insensitive
	Source      string // source equals it, case-insensitive
	Category    string // category equals it, case-insensitive
}

// Apply returns the records of recs that pass f, in order.
func (f ListFilter) Apply(recs []Record) []Record {
	prefix := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(f.ValuePrefix), ":", ""))
	label := strings.ToLower(strings.TrimSpace(f.Label))
	var out []Record
	for _, r := range recs {
		switch {
		case prefix != "" && !strings.HasPrefix(r.Value, prefix) && !strings.HasPrefix(strings.ReplaceAll(r.Value, ":", ""), prefix):
		case label != "" && !strings.Contains(strings.ToLower(r.Label), label):
		case f.Source != "" && !strings.EqualFold(r.Source, strings.TrimSpace(f.Source)):
		case f.Category != "" && !strings.EqualFold(r.Category, strings.TrimSpace(f.Category)):
		default:
			out = append(out, r)
		}
	}
	return out
}
