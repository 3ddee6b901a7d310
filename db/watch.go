package db

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint/watch"
)

// bucketWatch holds the watch list (see the package doc):
//
//	ip:port[/sni] → JSON watch.Entry
const bucketWatch = "watch"

// ErrWatchExists is returned by WatchAdd for a target already watched.
var ErrWatchExists = errors.New("already watched")

// ErrNotWatched is returned for a target that is not on the watch list.
var ErrNotWatched = errors.New("not watched")

// WatchAdd validates and stores entries, all or none. An entry whose
// target is already watched fails the whole call with ErrWatchExists
// unless replace is set; replacing keeps the stored baseline and state and
// takes the new settings (every, label, origin).
func (d *DB) WatchAdd(entries []watch.Entry, replace bool) ([]watch.Entry, error) {
	now := d.now().UTC()
	out := make([]watch.Entry, 0, len(entries))
	err := d.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucketWatch))
		if err != nil {
			return err
		}
		var errs []error
		for _, e := range entries {
			// An imported entry's errors name its file and line.
			where, _ := strings.CutPrefix(e.Origin, "import ")
			if where == e.Origin {
				where = ""
			} else {
				where += ": "
			}
			if err := e.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s%w", where, err))
				continue
			}
			k := []byte(e.Key())
			if raw := b.Get(k); raw != nil {
				if !replace {
					errs = append(errs, fmt.Errorf("%s%s: %w (watch rm it first, or import with --replace)", where, e.Key(), ErrWatchExists))
					continue
				}
				var old watch.Entry
				if err := json.Unmarshal(raw, &old); err != nil {
					return fmt.Errorf("decode watch entry %s: %w", k, err)
				}
				e.Added, e.Baseline, e.BaselineAt, e.State = old.Added, old.Baseline, old.BaselineAt, old.State
			}
			if e.Added.IsZero() {
				e.Added = now
			}
			if err := putWatch(b, e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return nil, fmt.Errorf("watch list in %q: %w", d.path, err)
	}
	return out, nil
}

func putWatch(b *bolt.Bucket, e watch.Entry) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode watch entry %s: %w", e.Key(), err)
	}
	return b.Put([]byte(e.Key()), raw)
}

// WatchList returns the watch list in key order.
func (d *DB) WatchList() ([]watch.Entry, error) {
	var out []watch.Entry
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketWatch))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var e watch.Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode watch entry %q: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("watch list in %q: %w", d.path, err)
	}
	slices.SortFunc(out, func(a, b watch.Entry) int { return compareWatchKeys(a.Key(), b.Key()) })
	return out, nil
}

func compareWatchKeys(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// WatchRemove deletes the entry of key; it reports whether there was one.
func (d *DB) WatchRemove(key string) (bool, error) {
	var found bool
	err := d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketWatch))
		if b == nil {
			return nil
		}
		found = b.Get([]byte(key)) != nil
		if !found {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return false, fmt.Errorf("watch rm %s in %q: %w", key, d.path, err)
	}
	return found, nil
}

// WatchUpdate runs fn on the stored entry of key in one transaction (fn's
// error rolls it back); it reports false when key is not watched. fn may
// not change the entry's target.
func (d *DB) WatchUpdate(key string, fn func(*watch.Entry) error) (bool, error) {
	var found bool
	err := d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketWatch))
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return nil
		}
		found = true
		var e watch.Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("decode watch entry %s: %w", key, err)
		}
		if err := fn(&e); err != nil {
			return err
		}
		if e.Key() != key {
			return fmt.Errorf("watch entry %s: an update may not change its target (now %s)", key, e.Key())
		}
		return putWatch(b, e)
	})
	if err != nil {
		return false, fmt.Errorf("watch %s in %q: %w", key, d.path, err)
	}
	return found, nil
}

// checkWatch decodes every watch entry (db check).
func checkWatch(tx *bolt.Tx) error {
	b := tx.Bucket([]byte(bucketWatch))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		var e watch.Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("watch entry %q: %w", k, err)
		}
		if e.Key() != string(k) {
			return fmt.Errorf("watch entry %q: stored under another key than its target %s", k, e.Key())
		}
		return nil
	})
}
