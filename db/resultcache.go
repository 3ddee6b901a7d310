package db

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// ResultCache holds the full probe results of the daemon's dedup cache
// out of memory: a bbolt file of its own beside the state DB. It is a
// cache, so it is emptied at every open (the index that finds its rows
// lives in memory and dies with the process) and written without fsync (a
// write lost in a crash costs a probe, never a verdict). Each row carries
// the exact key of its target (tag), which the reader compares.
type ResultCache struct {
	db   *bolt.DB
	path string
}

// CachedResult is one row to write (Result set) or delete (Result nil),
// keyed by the dedup cache's 96-bit key.
type CachedResult struct {
	Key    [12]byte
	Tag    []byte
	Result *stackprint.Result
}

var bucketResults = []byte("results")

// OpenResultCache creates path afresh (removing what a previous run left).
func OpenResultCache(path string, lockTimeout time.Duration) (*ResultCache, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("result cache %q: %w", path, err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: lockTimeout, NoSync: true, NoGrowSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open result cache %q: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketResults)
		return err
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("result cache %q: %w", path, err)
	}
	return &ResultCache{db: b, path: path}, nil
}

// Apply writes and deletes rows in order, in one transaction.
func (c *ResultCache) Apply(rows []CachedResult) error {
	err := c.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketResults)
		for _, r := range rows {
			if r.Result == nil {
				if err := bk.Delete(r.Key[:]); err != nil {
					return err
				}
				continue
			}
			v, err := encodeCached(r.Tag, r.Result)
			if err != nil {
				return fmt.Errorf("encode result of %s: %w", r.Result.Target, err)
			}
			if err := bk.Put(r.Key[:], v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("result cache %q: %w", c.path, err)
	}
	return nil
}

// Get returns the row of key.
func (c *ResultCache) Get(key [12]byte) (tag []byte, r stackprint.Result, ok bool, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketResults).Get(key[:])
		if v == nil {
			return nil
		}
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return fmt.Errorf("row %x: bad tag length", key)
		}
		tag = append([]byte(nil), v[k:k+int(n)]...)
		if err := json.Unmarshal(v[k+int(n):], &r); err != nil {
			return fmt.Errorf("row %x: %w", key, err)
		}
		ok = true
		return nil
	})
	if err != nil {
		return nil, stackprint.Result{}, false, fmt.Errorf("result cache %q: %w", c.path, err)
	}
	return tag, r, ok, nil
}

// Len is the number of rows.
func (c *ResultCache) Len() int {
	n := 0
	_ = c.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketResults).Stats().KeyN
		return nil
	})
	return n
}

// Path is the file's path.
func (c *ResultCache) Path() string { return c.path }

// Close closes and removes the file: nothing in it outlives the process.
func (c *ResultCache) Close() error {
	err := c.db.Close()
	if rerr := os.Remove(c.path); err == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	return err
}

func encodeCached(tag []byte, r *stackprint.Result) ([]byte, error) {
	j, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	v := binary.AppendUvarint(make([]byte, 0, len(tag)+len(j)+2), uint64(len(tag)))
	v = append(v, tag...)
	return append(v, j...), nil
}
