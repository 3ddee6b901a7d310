package db

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// AlertRecord is an alert as the DB keeps it for explain (bucket alerts):
// what fired, on which connection and target, about which DB entry, and
// the values the rule's expression read.
type AlertRecord struct {
	ID          string            `json:"id"`
	TS          time.Time         `json:"ts"`
	Rule        string            `json:"rule"`
	RuleName    string            `json:"rule_name,omitempty"`
	Severity    string            `json:"severity"`
	SignatureID int               `json:"signature_id,omitempty"`
	IP          netip.Addr        `json:"ip"`
	Port        uint16            `json:"port"`
	SNI         string            `json:"sni,omitempty"`
	Client      *Client           `json:"client,omitempty"` // the connection; nil for a retro-hunt
	Match       *stackprint.Match `json:"match,omitempty"`
	Values      map[string]string `json:"values,omitempty"`
	Status      stackprint.Status `json:"status,omitempty"`
	Fingerprints
	Retro     bool `json:"retro,omitempty"`
	Simulated bool `json:"simulated,omitempty"`
	Backfill  bool `json:"backfill,omitempty"`
}

// Target returns the alert's target.
func (a AlertRecord) Target() stackprint.Target {
	return stackprint.Target{IP: a.IP, Port: a.Port, SNI: a.SNI}
}

// alertIndexKey is targetkey NUL 8-byte time NUL id.
func alertIndexKey(tk string, at time.Time, id string) []byte {
	k := append([]byte(tk), 0)
	k = append(k, unixNano(at)...)
	k = append(k, 0)
	return append(k, id...)
}

// RecordAlert keeps a written alert for explain. Writing the same id again
// (a replay after a crash) replaces it.
func (d *DB) RecordAlert(a stackprint.Alert) error { return d.RecordAlerts([]stackprint.Alert{a}) }

// RecordAlerts keeps written alerts for explain in one transaction: the
// daemon hands them over per group commit, since a transaction (and its
// fsync) per alert would cap the alert rate at the disk's sync rate.
func (d *DB) RecordAlerts(as []stackprint.Alert) error {
	if len(as) == 0 {
		return nil
	}
	type row struct {
		id, tk string
		ts     time.Time
		raw    []byte
	}
	rows := make([]row, 0, len(as))
	for _, a := range as {
		t := a.Event.Target()
		if a.Result.Target.IP.IsValid() {
			t = a.Result.Target
		}
		t.IP = stackprint.CanonicalAddr(t.IP)
		rec := AlertRecord{
			ID: a.ID, TS: a.TS.UTC(), Rule: a.Rule, RuleName: a.RuleName, Severity: a.Severity, SignatureID: a.SignatureID,
			IP: t.IP, Port: t.Port, SNI: t.SNI, Values: a.Values, Status: a.Result.Status,
			Fingerprints: FingerprintsOf(a.Result), Retro: a.Retro, Simulated: a.Simulated, Backfill: a.Event.Backfill,
		}
		if ev := a.Event; ev.Orig.IsValid() {
			rec.Client = &Client{TS: ev.TS, Orig: ev.Orig, UID: ev.UID, FlowID: ev.FlowID, Source: ev.Source}
		}
		if a.Match != (stackprint.Match{}) || a.Match.Near != nil {
			m := a.Match
			rec.Match = &m
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode alert %s: %w", a.ID, err)
		}
		rows = append(rows, row{id: a.ID, tk: TargetKey(t), ts: rec.TS, raw: raw})
	}
	err := d.update(func(tx *bolt.Tx) error {
		ab, err := bucket(tx, bucketAlerts)
		if err != nil {
			return err
		}
		ix, err := bucket(tx, bucketAlertIndex)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if old := ab.Get([]byte(r.id)); old != nil {
				var o AlertRecord
				if json.Unmarshal(old, &o) == nil {
					if err := ix.Delete(alertIndexKey(TargetKey(o.Target()), o.TS, o.ID)); err != nil {
						return err
					}
				}
			}
			if err := ab.Put([]byte(r.id), r.raw); err != nil {
				return err
			}
			if err := ix.Put(alertIndexKey(r.tk, r.ts, r.id), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if len(rows) == 1 {
			return fmt.Errorf("record alert %s in %q: %w", rows[0].id, d.path, err)
		}
		return fmt.Errorf("record %d alerts in %q: %w", len(rows), d.path, err)
	}
	return nil
}

// Alert returns a recorded alert by id.
func (d *DB) Alert(id string) (AlertRecord, bool, error) {
	var (
		rec AlertRecord
		ok  bool
	)
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketAlerts))
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(id))
		if raw == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(raw, &rec)
	})
	if err != nil {
		return AlertRecord{}, false, fmt.Errorf("read alert %s from %q: %w", id, d.path, err)
	}
	return rec, ok, nil
}

// AlertsOf returns the recorded alerts of a target, oldest first.
func (d *DB) AlertsOf(t stackprint.Target) ([]AlertRecord, error) {
	t.IP = stackprint.CanonicalAddr(t.IP)
	prefix := append([]byte(TargetKey(t)), 0)
	var out []AlertRecord
	err := d.view(func(tx *bolt.Tx) error {
		ix, ab := tx.Bucket([]byte(bucketAlertIndex)), tx.Bucket([]byte(bucketAlerts))
		if ix == nil || ab == nil {
			return nil
		}
		c := ix.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rest := k[len(prefix):]
			if len(rest) < 10 || rest[8] != 0 {
				continue // another SNI that starts with this one
			}
			raw := ab.Get(rest[9:])
			if raw == nil {
				continue
			}
			var a AlertRecord
			if err := json.Unmarshal(raw, &a); err != nil {
				return fmt.Errorf("decode alert %q: %w", rest[9:], err)
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("alerts of %s in %q: %w", t, d.path, err)
	}
	return out, nil
}

// pruneAlertsAndLog deletes the alerts (with their index entries), the
// probe log entries and the backfill progress marks from before cutoff.
// The keys are found in a read transaction and deleted pruneBatch to a
// write transaction, for the reason given at pruneBatch: an hour of a busy
// sensor's alerts in one transaction would hold most of their pages in
// the heap at once.
func (d *DB) pruneAlertsAndLog(cutoff time.Time) error {
	type deadKey struct {
		bucket string
		key    []byte
	}
	var dead []deadKey
	err := d.view(func(tx *bolt.Tx) error {
		if ab := tx.Bucket([]byte(bucketAlerts)); ab != nil {
			err := ab.ForEach(func(k, v []byte) error {
				var a AlertRecord
				if err := json.Unmarshal(v, &a); err != nil {
					return fmt.Errorf("decode alert %q: %w", k, err)
				}
				if a.TS.Before(cutoff) {
					dead = append(dead, deadKey{bucketAlerts, append([]byte(nil), k...)},
						deadKey{bucketAlertIndex, alertIndexKey(TargetKey(a.Target()), a.TS, a.ID)})
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if pl := tx.Bucket([]byte(bucketProbeLog)); pl != nil {
			err := pl.ForEach(func(k, _ []byte) error {
				if len(k) < 9 {
					return nil
				}
				if t, err := fromUnixNano(k[len(k)-8:]); err == nil && t.Before(cutoff) {
					dead = append(dead, deadKey{bucketProbeLog, append([]byte(nil), k...)})
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		// A backfill's progress marks live as long as the observations
		// they stand on: a run resumed later judges its servers again.
		if bb := tx.Bucket([]byte(bucketBackfill)); bb != nil {
			return bb.ForEach(func(k, v []byte) error {
				if t, err := fromUnixNano(v); err == nil && t.Before(cutoff) {
					dead = append(dead, deadKey{bucketBackfill, append([]byte(nil), k...)})
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for len(dead) > 0 {
		batch := dead[:min(len(dead), pruneBatch)]
		dead = dead[len(batch):]
		err := d.update(func(tx *bolt.Tx) error {
			for _, dk := range batch {
				b := tx.Bucket([]byte(dk.bucket))
				if b == nil {
					continue
				}
				if dk.bucket == bucketBackfill {
					// Marked again since the read: a fresh mark stays.
					if t, err := fromUnixNano(b.Get(dk.key)); err != nil || !t.Before(cutoff) {
						continue
					}
				}
				if err := b.Delete(dk.key); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// backfillKey is run NUL targetkey.
func backfillKey(run, target string) []byte { return []byte(run + "\x00" + target) }

// BackfillDone reports whether a backfill run finished a server (its
// record and alerts written and synced).
func (d *DB) BackfillDone(run, target string) (bool, error) {
	done := false
	err := d.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucketBackfill)); b != nil {
			done = b.Get(backfillKey(run, target)) != nil
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("backfill state in %q: %w", d.path, err)
	}
	return done, nil
}

// MarkBackfillDone records that a backfill run finished a server.
func (d *DB) MarkBackfillDone(run, target string) error {
	err := d.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketBackfill)
		if err != nil {
			return err
		}
		return b.Put(backfillKey(run, target), unixNano(d.now().UTC()))
	})
	if err != nil {
		return fmt.Errorf("backfill state in %q: %w", d.path, err)
	}
	return nil
}
