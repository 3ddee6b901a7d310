package db

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// Learn roles: which list a target came from (docs/ATSF.md §3).
const (
	RoleBlock = "block" // block list: abuse.ch Feodo Tracker, SSLBL IPs, …
	RoleTop   = "top"   // top list: Tranco, …, assumed benign
)

func checkRole(role string) error {
	if role != RoleBlock && role != RoleTop {
		return fmt.Errorf("learn role %q: want block or top", role)
	}
	return nil
}

// LearnResult is the outcome of probing one list entry during a learn run.
type LearnResult struct {
	Role   string            `json:"role"`
	Entry  string            `json:"entry"`          // the list entry as host:port, the resume key
	Hint   string            `json:"hint,omitempty"` // e.g. the malware family a block list names
	Target stackprint.Target `json:"target"`         // the resolved target; IP invalid when not resolved
	Status string            `json:"status"`         // a stackprint.Status, or dns_error
	Error  string            `json:"error,omitempty"`
	Fingerprints
	At time.Time `json:"at"`
}

// LearnStats are the learned counts of one fingerprint.
type LearnStats struct {
	Kind      string            `json:"kind"`
	Value     string            `json:"value"`
	Block     uint64            `json:"block"`
	Top       uint64            `json:"top"`
	Hints     map[string]uint64 `json:"hints,omitempty"` // block-list hints and how often
	FirstSeen time.Time         `json:"first_seen"`
	LastSeen  time.Time         `json:"last_seen"`
}

// TopHints are the n most frequent block-list hints of h, most frequent
// first, ties by name.
func TopHints(h map[string]uint64, n int) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && (h[keys[j]] > h[keys[j-1]] || h[keys[j]] == h[keys[j-1]] && keys[j] < keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	if len(keys) > n {
		keys = keys[:n]
	}
	return keys
}

// Score returns B/(B+T).
func (s LearnStats) Score() float64 {
	v, _ := score(s.Block, s.Top)
	return v
}

// Key returns the fingerprint the stats are about.
func (s LearnStats) Key() Key { return Key{Kind: s.Kind, Value: s.Value} }

func learnKey(role, entry string) []byte { return []byte(role + "\x00" + entry) }

// LearnFinished returns the list entries of role a learn run has finished
// (probed, or given up on with a recorded status), so an interrupted run
// resumes without probing them again.
func (d *DB) LearnFinished(role string) (map[string]bool, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	prefix := learnKey(role, "")
	out := map[string]bool{}
	err := d.view(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketLearnTargets)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out[string(k[len(prefix):])] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read learn progress from %q: %w", d.path, err)
	}
	return out, nil
}

// RecordLearn stores the outcome of one list entry and, in the same
// transaction, counts each of its fingerprints once for its role. An entry
// already recorded is left alone and reported as not counted, so replaying
// results after an interruption never counts twice.
func (d *DB) RecordLearn(lr LearnResult) (counted bool, err error) {
	if err := checkRole(lr.Role); err != nil {
		return false, err
	}
	lr.Entry = strings.TrimSpace(lr.Entry)
	if lr.Entry == "" {
		return false, fmt.Errorf("learn result: entry required")
	}
	// Only normalised fingerprints are counted.
	fps := Fingerprints{
		JARM:       normalisedOrEmpty(KindJARM, lr.JARM),
		ATSF:       normalisedOrEmpty(KindATSF, lr.ATSF),
		CertSHA256: normalisedOrEmpty(KindCertSHA256, lr.CertSHA256),
		CertSHA1:   normalisedOrEmpty(KindCertSHA1, lr.CertSHA1),
	}
	lr.Fingerprints = fps
	if lr.At.IsZero() {
		lr.At = d.now().UTC()
	}
	err = d.update(func(tx *bolt.Tx) error {
		lt, err := bucket(tx, bucketLearnTargets)
		if err != nil {
			return err
		}
		lk := learnKey(lr.Role, lr.Entry)
		if lt.Get(lk) != nil {
			return nil
		}
		raw, err := json.Marshal(lr)
		if err != nil {
			return fmt.Errorf("encode learn result %s: %w", lr.Entry, err)
		}
		if err := lt.Put(lk, raw); err != nil {
			return err
		}
		lb, err := bucket(tx, bucketLearned)
		if err != nil {
			return err
		}
		for _, k := range fps.keys() {
			bk := key(k.Kind, k.Value)
			st, _, err := getLearned(tx, bk)
			if err != nil {
				return err
			}
			st.Kind, st.Value = k.Kind, k.Value
			if lr.Role == RoleBlock {
				st.Block++
				if h := strings.TrimSpace(lr.Hint); h != "" {
					if st.Hints == nil {
						st.Hints = map[string]uint64{}
					}
					st.Hints[h]++
				}
			} else {
				st.Top++
			}
			st.FirstSeen = earliest(st.FirstSeen, lr.At)
			st.LastSeen = latest(st.LastSeen, lr.At)
			raw, err := json.Marshal(st)
			if err != nil {
				return err
			}
			if err := lb.Put(bk, raw); err != nil {
				return err
			}
			if err := syncCounts(tx, st); err != nil {
				return err
			}
		}
		counted = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record learn result %s %s in %q: %w", lr.Role, lr.Entry, d.path, err)
	}
	return counted, nil
}

// syncCounts copies learned counts into the DB record of the fingerprint,
// when there is one.
func syncCounts(tx *bolt.Tx, st LearnStats) error {
	rec, ok, err := getRecord(tx, st.Kind, st.Value)
	if err != nil || !ok {
		return err
	}
	rec.BlockCount, rec.TopCount = st.Block, st.Top
	rec.FirstSeen = earliest(rec.FirstSeen, st.FirstSeen)
	rec.LastSeen = latest(rec.LastSeen, st.LastSeen)
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket([]byte(bucketFingerprints)).Put(key(st.Kind, st.Value), raw)
}

func getLearned(tx *bolt.Tx, bk []byte) (LearnStats, bool, error) {
	b := tx.Bucket([]byte(bucketLearned))
	if b == nil {
		return LearnStats{}, false, nil
	}
	raw := b.Get(bk)
	if raw == nil {
		return LearnStats{}, false, nil
	}
	var st LearnStats
	if err := json.Unmarshal(raw, &st); err != nil {
		return LearnStats{}, false, fmt.Errorf("decode learned %q: %w", bk, err)
	}
	return st, true, nil
}

// LearnScores returns the learned counts of every fingerprint, highest
// score first, then most block-list observations, then by key.
func (d *DB) LearnScores() ([]LearnStats, error) {
	var out []LearnStats
	err := d.view(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketLearned)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var st LearnStats
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("decode learned %q: %w", k, err)
			}
			out = append(out, st)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read learned scores from %q: %w", d.path, err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if sa, sb := a.Score(), b.Score(); sa != sb {
			return sa > sb
		}
		if a.Block != b.Block {
			return a.Block > b.Block
		}
		if a.Top != b.Top {
			return a.Top < b.Top
		}
		return a.Kind+a.Value < b.Kind+b.Value
	})
	return out, nil
}

// LearnResults returns every recorded list entry of role ("" = both).
func (d *DB) LearnResults(role string) ([]LearnResult, error) {
	var prefix []byte
	if role != "" {
		if err := checkRole(role); err != nil {
			return nil, err
		}
		prefix = learnKey(role, "")
	}
	var out []LearnResult
	err := d.view(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketLearnTargets)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var lr LearnResult
			if err := json.Unmarshal(v, &lr); err != nil {
				return fmt.Errorf("decode learn result %q: %w", k, err)
			}
			out = append(out, lr)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read learn results from %q: %w", d.path, err)
	}
	return out, nil
}

// ResetLearn forgets every learn result and learned count, and zeroes the
// counts in the DB records, for a fresh learn run.
func (d *DB) ResetLearn() error {
	err := d.update(func(tx *bolt.Tx) error {
		for _, name := range []string{bucketLearnTargets, bucketLearned} {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return fmt.Errorf("delete bucket %s: %w", name, err)
			}
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		fb, err := bucket(tx, bucketFingerprints)
		if err != nil {
			return err
		}
		type kv struct{ k, v []byte }
		var rewrite []kv
		err = fb.ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode key %q: %w", k, err)
			}
			if r.BlockCount == 0 && r.TopCount == 0 {
				return nil
			}
			r.BlockCount, r.TopCount = 0, 0
			raw, err := json.Marshal(r)
			if err != nil {
				return err
			}
			rewrite = append(rewrite, kv{append([]byte(nil), k...), raw})
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range rewrite {
			if err := fb.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reset learn state in %q: %w", d.path, err)
	}
	return nil
}

// PromoteOptions selects learned fingerprints to add to the DB.
type PromoteOptions struct {
	Label      string  `json:"label"`
	Category   string  `json:"category,omitempty"`
	Source     string  `json:"source,omitempty"`
	Confidence string  `json:"confidence,omitempty"`
	Threshold  float64 `json:"threshold"` // minimum score B/(B+T), 0 < t ≤ 1
	MinBlock   uint64  `json:"min_block"` // minimum block-list targets
}

// PromoteLearned adds (or updates) a DB record for every learned
// fingerprint whose score reaches the threshold with at least MinBlock
// block-listed targets, in one transaction, and returns them as stored.
// Fingerprints that equal a known default stack are promoted with low
// confidence whatever was asked, and say so in their notes.
func (d *DB) PromoteLearned(o PromoteOptions) ([]Record, error) {
	if o.Threshold <= 0 || o.Threshold > 1 {
		return nil, fmt.Errorf("promote: threshold %v: want 0 < threshold ≤ 1", o.Threshold)
	}
	if o.MinBlock < 1 {
		o.MinBlock = 1
	}
	scores, err := d.LearnScores()
	if err != nil {
		return nil, err
	}
	var recs []Record
	for _, st := range scores {
		if st.Score() < o.Threshold || st.Block < o.MinBlock {
			continue
		}
		r := Record{
			Kind: st.Kind, Value: st.Value, Label: o.Label, Category: o.Category,
			Source: o.Source, Confidence: o.Confidence,
			Notes:      fmt.Sprintf("learned: %d block-listed, %d top-list targets, score %.2f", st.Block, st.Top, st.Score()),
			BlockCount: st.Block, TopCount: st.Top, FirstSeen: st.FirstSeen, LastSeen: st.LastSeen,
		}
		if hs := topHints(st.Hints, 3); hs != "" {
			r.Notes += "; block list names " + hs
		}
		if ds, ok := DefaultStack(st.Kind, st.Value); ok {
			r.Confidence = ConfidenceLow
			r.Notes += "; equals a default stack: " + ds
		}
		if err := ValidateRecord(&r); err != nil {
			return nil, fmt.Errorf("promote %s %s: %w", st.Kind, st.Value, err)
		}
		recs = append(recs, r)
	}
	now := d.now().UTC()
	var stored []Record
	err = d.update(func(tx *bolt.Tx) error {
		for _, r := range recs {
			// An entry curated from another source keeps its label,
			// source and confidence; only the learned counts refresh.
			if old, ok, err := getRecord(tx, r.Kind, r.Value); err != nil {
				return err
			} else if ok && old.Source != r.Source {
				r = old
			}
			s, err := put(tx, r, now)
			if err != nil {
				return err
			}
			stored = append(stored, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("promote learned fingerprints in %q: %w", d.path, err)
	}
	if len(stored) > 0 {
		d.gen.Add(1)
	}
	return stored, nil
}

// topHints renders the n most frequent hints as "A (3), B (1)".
func topHints(h map[string]uint64, n int) string {
	type kv struct {
		k string
		v uint64
	}
	var all []kv
	for k, v := range h {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	var parts []string
	for i, e := range all {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}
