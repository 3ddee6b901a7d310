package db

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Stats summarises the DB for `stackprint db stats`.
type Stats struct {
	Path          string         `json:"path"`
	FileSize      int64          `json:"file_size"`
	SchemaVersion int            `json:"schema_version"`
	Fingerprints  int            `json:"fingerprints"`
	ByKind        map[string]int `json:"by_kind"`
	ByCategory    map[string]int `json:"by_category"`
	BySource      map[string]int `json:"by_source"`
	ByConfidence  map[string]int `json:"by_confidence"`
	Observations  int            `json:"observations"`
	Learned       int            `json:"learned_fingerprints"`
	LearnTargets  int            `json:"learn_targets"`
	Pending       int            `json:"pending_events"`
	Watched       int            `json:"watched"`
	LastImport    *ImportInfo    `json:"last_import,omitempty"`
}

// Stats counts the records per kind, category, source and confidence and
// reports the file size and the last import. An empty category or source
// counts as "(none)".
func (d *DB) Stats() (Stats, error) {
	s := Stats{
		Path: d.path, SchemaVersion: SchemaVersion,
		ByKind: map[string]int{}, ByCategory: map[string]int{}, BySource: map[string]int{}, ByConfidence: map[string]int{},
	}
	err := d.view(func(tx *bolt.Tx) error {
		s.FileSize = tx.Size()
		if b := tx.Bucket([]byte(bucketFingerprints)); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("decode key %q: %w", k, err)
				}
				s.Fingerprints++
				s.ByKind[r.Kind]++
				s.ByCategory[orNone(r.Category)]++
				s.BySource[orNone(r.Source)]++
				s.ByConfidence[r.Confidence]++
				return nil
			})
			if err != nil {
				return err
			}
		}
		for name, dst := range map[string]*int{
			bucketObservations: &s.Observations, bucketLearned: &s.Learned,
			bucketLearnTargets: &s.LearnTargets, bucketPending: &s.Pending, bucketWatch: &s.Watched,
		} {
			if b := tx.Bucket([]byte(name)); b != nil {
				*dst = b.Stats().KeyN
			}
		}
		if meta := tx.Bucket([]byte(bucketMeta)); meta != nil {
			if raw := meta.Get([]byte(keyLastImport)); raw != nil {
				var li ImportInfo
				if err := json.Unmarshal(raw, &li); err != nil {
					return fmt.Errorf("decode meta last_import: %w", err)
				}
				s.LastImport = &li
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("stats of %q: %w", d.path, err)
	}
	return s, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
