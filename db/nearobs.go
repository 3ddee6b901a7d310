package db

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The observations' answers are indexed like the ATSF entries' (near.go):
// each observation that keeps its ten answers is under ten keys, one per
// ClientHello position, each the hash of the nine other answers. A new DB
// entry then finds every observed target with at least 9 of 10 equal
// answers in ten prefix lookups (a retro-hunt), however many observations
// the DB keeps, instead of reading them all.
const (
	bucketObsNear = "obs_near"
	// keyObsNearIndexed in meta records that obs_near covers every
	// observation (BuildObsNearIndex finished); keyObsNearCursor is the
	// last observation an unfinished build indexed.
	keyObsNearIndexed = "obs_near_indexed"
	keyObsNearCursor  = "obs_near_cursor"
)

// hellosProto is the STARTTLS prefix the answers of o were hashed with:
// the probe's that gave them, or for an observation stored before it was
// kept, its ATSF value's.
func hellosProto(o Observation) string {
	if o.HellosProto != "" {
		return o.HellosProto
	}
	p, _ := splitProto(o.ATSF)
	return p
}

// obsAnswers are the fields of a stored observation its index keys come
// from: decoding only them skips the history, clients and the rest.
type obsAnswers struct {
	ATSF        string   `json:"atsf"`
	Hellos      []string `json:"hellos"`
	HellosProto string   `json:"hellos_proto"`
}

func (a obsAnswers) proto() string {
	return hellosProto(Observation{Fingerprints: Fingerprints{ATSF: a.ATSF}, HellosProto: a.HellosProto})
}

// obsNearKeys are the ten index keys of answers hellos of target key tk.
func obsNearKeys(proto string, hellos []string, tk string) [][]byte {
	if len(hellos) != ATSFHellos {
		return nil
	}
	out := make([][]byte, ATSFHellos)
	for i := range ATSFHellos {
		out[i] = atsfIndexKey(i, leaveOneOut(proto, hellos, i), []byte(tk))
	}
	return out
}

// reindexObsNear moves target tk's index keys from its old answers to
// its new ones (either may be nil).
func reindexObsNear(tx *bolt.Tx, tk, oldProto string, old []string, newProto string, new []string) error {
	if oldProto == newProto && slices.Equal(old, new) {
		return nil
	}
	b, err := bucket(tx, bucketObsNear)
	if err != nil {
		return err
	}
	for _, k := range obsNearKeys(oldProto, old, tk) {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("obs_near of %q: %w", tk, err)
		}
	}
	for _, k := range obsNearKeys(newProto, new, tk) {
		if err := b.Put(k, nil); err != nil {
			return fmt.Errorf("obs_near of %q: %w", tk, err)
		}
	}
	return nil
}

// unindexObsNear drops the index keys of a stored observation about to
// be deleted.
func unindexObsNear(tx *bolt.Tx, tk, raw []byte) error {
	if !bytes.Contains(raw, []byte(`"hellos"`)) {
		return nil
	}
	var o obsAnswers
	if err := json.Unmarshal(raw, &o); err != nil {
		return fmt.Errorf("decode observation %q: %w", tk, err)
	}
	return reindexObsNear(tx, string(tk), o.proto(), o.Hellos, "", nil)
}

// obsNearBatch is how many observations one transaction of
// BuildObsNearIndex indexes: bbolt inserts into unsplit in-memory nodes,
// so one transaction over a million observations would be quadratic, and
// it would hold the writers back meanwhile.
const obsNearBatch = 2000

// BuildObsNearIndex indexes the observations' answers of a file written
// before obs_near existed (the daemon runs it at start, in the
// background), a batch per transaction, resuming where an interrupted
// build stopped (meta obs_near_cursor). Observations recorded meanwhile
// index themselves; until it ends, ObservationsNear reads every
// observation. It returns the observations indexed.
func (d *DB) BuildObsNearIndex(ctx context.Context) (int, error) {
	return d.buildObsNearIndex(ctx, obsNearBatch, 0)
}

// buildObsNearIndex is BuildObsNearIndex in batches of batch, stopping
// after maxBatches transactions (0: until done).
func (d *DB) buildObsNearIndex(ctx context.Context, batch, maxBatches int) (int, error) {
	n := 0
	for txs := 0; maxBatches == 0 || txs < maxBatches; txs++ {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		done := false
		err := d.update(func(tx *bolt.Tx) error {
			meta := tx.Bucket([]byte(bucketMeta))
			if meta == nil || meta.Get([]byte(keyObsNearIndexed)) != nil {
				done = true
				return nil
			}
			c := tx.Bucket([]byte(bucketObservations)).Cursor()
			k, v := c.First()
			if cur := meta.Get([]byte(keyObsNearCursor)); cur != nil {
				if k, v = c.Seek(cur); k != nil && bytes.Equal(k, cur) {
					k, v = c.Next()
				}
			}
			var last []byte
			for i := 0; k != nil && i < batch; k, v = c.Next() {
				last = k
				i++
				if !bytes.Contains(v, []byte(`"hellos"`)) {
					continue
				}
				var o obsAnswers
				if err := json.Unmarshal(v, &o); err != nil {
					return fmt.Errorf("decode observation %q: %w", k, err)
				}
				if err := reindexObsNear(tx, string(k), "", nil, o.proto(), o.Hellos); err != nil {
					return err
				}
				n++
			}
			if k == nil {
				done = true
				if err := meta.Delete([]byte(keyObsNearCursor)); err != nil {
					return err
				}
				return meta.Put([]byte(keyObsNearIndexed), []byte("1"))
			}
			return meta.Put([]byte(keyObsNearCursor), bytes.Clone(last))
		})
		if err != nil {
			return n, fmt.Errorf("build obs_near in %q: %w", d.path, err)
		}
		if done {
			return n, nil
		}
	}
	return n, nil
}

// ObservationsNear returns the targets probed at or after since whose last
// ATSF answers are near rec's (9 of 10 equal), for a retro-hunt of a new
// entry: ten lookups in obs_near, then the candidates read and compared
// (a hash collision or a stale key is dropped there).
func (d *DB) ObservationsNear(rec Record, since time.Time) ([]NearSighting, error) {
	if rec.Kind != KindATSF || len(rec.Hellos) != ATSFHellos {
		return nil, nil
	}
	proto, _ := splitProto(rec.Value)
	var out []NearSighting
	err := d.view(func(tx *bolt.Tx) error {
		ob, ix := tx.Bucket([]byte(bucketObservations)), tx.Bucket([]byte(bucketObsNear))
		if ob == nil {
			return nil
		}
		if ix == nil || !obsNearIndexed(tx) {
			// A file only opened read-only since an older stackprint
			// wrote it: no index yet.
			var err error
			out, err = observationsNearScan(ob, rec, proto, since)
			return err
		}
		hits := map[string]int{}
		var order []string
		c := ix.Cursor()
		for i := range ATSFHellos {
			prefix := atsfIndexKey(i, leaveOneOut(proto, rec.Hellos, i), nil)
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				tk := string(k[len(prefix):])
				if hits[tk] == 0 {
					order = append(order, tk)
				}
				hits[tk]++
			}
		}
		for _, tk := range order {
			if hits[tk] == ATSFHellos {
				continue // every answer equal: the exact match, not near
			}
			raw := ob.Get([]byte(tk))
			if raw == nil {
				continue
			}
			var o Observation
			if err := json.Unmarshal(raw, &o); err != nil {
				return fmt.Errorf("decode observation %q: %w", tk, err)
			}
			if ns, ok := nearSighting(o, rec, since); ok {
				out = append(out, ns)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("observations near %s in %q: %w", rec.Key(), d.path, err)
	}
	return out, nil
}

// markObsNearIndexed marks the index of a file without observations
// complete (a new file: each observation indexes itself).
func markObsNearIndexed(tx *bolt.Tx) error {
	meta, ob := tx.Bucket([]byte(bucketMeta)), tx.Bucket([]byte(bucketObservations))
	if meta == nil || ob == nil || meta.Get([]byte(keyObsNearIndexed)) != nil {
		return nil
	}
	if k, _ := ob.Cursor().First(); k != nil {
		return nil // BuildObsNearIndex's job, in batches
	}
	return meta.Put([]byte(keyObsNearIndexed), []byte("1"))
}

func obsNearIndexed(tx *bolt.Tx) bool {
	m := tx.Bucket([]byte(bucketMeta))
	return m != nil && m.Get([]byte(keyObsNearIndexed)) != nil
}

// observationsNearScan is ObservationsNear by reading every observation
// with answers: the way without the index (and the benchmark's baseline).
func observationsNearScan(ob *bolt.Bucket, rec Record, proto string, since time.Time) ([]NearSighting, error) {
	var out []NearSighting
	err := ob.ForEach(func(k, v []byte) error {
		if !bytes.Contains(v, []byte(`"hellos"`)) {
			return nil
		}
		var o Observation
		if err := json.Unmarshal(v, &o); err != nil {
			return fmt.Errorf("decode observation %q: %w", k, err)
		}
		if hellosProto(o) != proto {
			return nil
		}
		if ns, ok := nearSighting(o, rec, since); ok {
			out = append(out, ns)
		}
		return nil
	})
	return out, err
}

// nearSighting is o as a near sighting of rec, if its answers are near
// and were seen at or after since. An observation whose answers made no
// fingerprint (a ClientHello unanswered) was last seen at its last probe.
func nearSighting(o Observation, rec Record, since time.Time) (NearSighting, bool) {
	when := o.Seen
	if when.IsZero() {
		when = o.LastProbe
	}
	if when.Before(since) {
		return NearSighting{}, false
	}
	n := NearTo(rec, o.Hellos)
	if n == nil {
		return NearSighting{}, false
	}
	return NearSighting{Sighting: Sighting{Observation: o, Carried: when}, Near: n}, true
}
