package db

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// Daemon state kept next to the fingerprints (see the package doc):
//   - checkpoints: input name → opaque tailer position (just past the last
//     settled line), written only by CommitState;
//   - pending: 8-byte big-endian key → JSON stackprint.Event, events whose
//     probe had not finished when their position was committed ("parked").
const (
	bucketCheckpoints = "checkpoints"
	bucketPending     = "pending"
	// backlog: client bucket (2 bytes, stackprint.ClientBucket) + pending
	// key → nothing; the parked events the daemon does not hold in
	// memory, grouped by client so they are loaded back fairly.
	bucketBacklog = "backlog"
)

// PendingEvent is a parked event and the key it is stored under.
type PendingEvent struct {
	Key   uint64
	Event stackprint.Event
}

// CommitState stores checkpoints, parks events and removes unparked keys in
// one transaction, so a checkpoint never moves past an event that is
// neither settled nor parked. It returns the keys assigned to park, in
// order.
func (d *DB) CommitState(checkpoints map[string][]byte, park []stackprint.Event, unpark []uint64) ([]uint64, error) {
	return d.CommitStateSpill(checkpoints, park, nil, unpark)
}

// CommitStateSpill is CommitState that also spills events: they are
// parked like the others and listed in the backlog, the events the running
// daemon does not hold in memory (LoadBacklog brings them back). Keys are
// returned for park then spill, in order.
func (d *DB) CommitStateSpill(checkpoints map[string][]byte, park, spill []stackprint.Event, unpark []uint64) ([]uint64, error) {
	nPark := len(park)
	park = append(park[:nPark:nPark], spill...)
	keys := make([]uint64, len(park))
	err := d.update(func(tx *bolt.Tx) error {
		bb, err := tx.CreateBucketIfNotExists([]byte(bucketBacklog))
		if err != nil {
			return err
		}
		cb, err := tx.CreateBucketIfNotExists([]byte(bucketCheckpoints))
		if err != nil {
			return err
		}
		pb, err := tx.CreateBucketIfNotExists([]byte(bucketPending))
		if err != nil {
			return err
		}
		// Keys only grow (NextSequence): full pages instead of bbolt's
		// half-full splits keep a million parked events in half the file.
		pb.FillPercent = 0.95
		for src, pos := range checkpoints {
			if err := cb.Put([]byte(src), pos); err != nil {
				return fmt.Errorf("checkpoint %q: %w", src, err)
			}
		}
		for _, k := range unpark {
			if err := pb.Delete(pendingKey(k)); err != nil {
				return fmt.Errorf("unpark %d: %w", k, err)
			}
		}
		for i, ev := range park {
			seq, err := pb.NextSequence()
			if err != nil {
				return err
			}
			b, err := json.Marshal(ev)
			if err != nil {
				return fmt.Errorf("encode pending event: %w", err)
			}
			if err := pb.Put(pendingKey(seq), b); err != nil {
				return err
			}
			keys[i] = seq
			if i >= nPark {
				if err := bb.Put(backlogKey(stackprint.ClientBucket(ev.Orig.Addr()), seq), nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("commit state to %q: %w", d.path, err)
	}
	return keys, nil
}

// Checkpoint returns the committed position of an input.
func (d *DB) Checkpoint(source string) ([]byte, bool, error) {
	var out []byte
	err := d.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucketCheckpoints)); b != nil {
			if v := b.Get([]byte(source)); v != nil {
				out = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("read checkpoint %q: %w", source, err)
	}
	return out, out != nil, nil
}

// Pending returns every parked event in the order it was parked.
func (d *DB) Pending() ([]PendingEvent, error) {
	var out []PendingEvent
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPending))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var ev stackprint.Event
			if len(k) != 8 {
				return fmt.Errorf("pending key %x: not 8 bytes", k)
			}
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("pending event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, PendingEvent{Key: binary.BigEndian.Uint64(k), Event: ev})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read pending events from %q: %w", d.path, err)
	}
	return out, nil
}

func pendingKey(k uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], k)
	return b[:]
}

// Ping checks that the file is open and readable (readiness probe).
func (d *DB) Ping() error {
	return d.view(func(*bolt.Tx) error { return nil })
}

// Checkpoints returns every committed position whose key starts with
// prefix (one input's files).
func (d *DB) Checkpoints(prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketCheckpoints))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
			out[string(k)] = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read checkpoints %q: %w", prefix, err)
	}
	return out, nil
}

func backlogKey(bucket uint16, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint16(nil, bucket), seq)
}

// RebuildBacklog lists every parked event in the backlog (at start, no
// event is in memory) and returns how many each client bucket
// (stackprint.ClientBucket) has.
func (d *DB) RebuildBacklog() (map[uint16]int, error) {
	out := map[uint16]int{}
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bucketBacklog)) != nil {
			if err := tx.DeleteBucket([]byte(bucketBacklog)); err != nil {
				return err
			}
		}
		bb, err := tx.CreateBucket([]byte(bucketBacklog))
		if err != nil {
			return err
		}
		pb := tx.Bucket([]byte(bucketPending))
		if pb == nil {
			return nil
		}
		return pb.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("pending key %x: not 8 bytes", k)
			}
			var ev stackprint.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("pending event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			c := stackprint.ClientBucket(ev.Orig.Addr())
			out[c]++
			return bb.Put(backlogKey(c, binary.BigEndian.Uint64(k)), nil)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("rebuild the backlog in %q: %w", d.path, err)
	}
	return out, nil
}

// LoadBacklog takes up to n of a client bucket's oldest events off the
// backlog (they stay parked until unparked) for the daemon to hold in
// memory.
func (d *DB) LoadBacklog(bucket uint16, n int) ([]PendingEvent, error) {
	var out []PendingEvent
	prefix := binary.BigEndian.AppendUint16(nil, bucket)
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		bb, pb := tx.Bucket([]byte(bucketBacklog)), tx.Bucket([]byte(bucketPending))
		if bb == nil || pb == nil {
			return nil
		}
		var done [][]byte
		c := bb.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < n; k, _ = c.Next() {
			done = append(done, append([]byte(nil), k...))
			seq := binary.BigEndian.Uint64(k[2:])
			v := pb.Get(pendingKey(seq))
			if v == nil {
				continue // settled meanwhile
			}
			var ev stackprint.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("pending event %d: %w", seq, err)
			}
			out = append(out, PendingEvent{Key: seq, Event: ev})
		}
		for _, k := range done {
			if err := bb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load backlog group %d from %q: %w", bucket, d.path, err)
	}
	return out, nil
}
