package db

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// maxHistory bounds the fingerprint changes kept per observed target.
const maxHistory = 16

// Fingerprints are the fingerprints of one probe result, normalised as DB
// values; an empty field means the result did not carry it.
type Fingerprints struct {
	JARM       string `json:"jarm,omitempty"`
	ATSF       string `json:"atsf,omitempty"` // sha256 of the combined ATSF string
	CertSHA256 string `json:"cert_sha256,omitempty"`
	CertSHA1   string `json:"cert_sha1,omitempty"`
}

// FingerprintsOf extracts the fingerprints of a probe result: the JARM
// unless it is empty or all zeros (a status, never a fingerprint), the
// ATSF id when all ten ClientHellos answered, and the leaf certificate's
// hashes. Malformed values are left out rather than stored.
func FingerprintsOf(r stackprint.Result) Fingerprints {
	var f Fingerprints
	// Through STARTTLS, JARM and ATSF are keyed "PROTOCOL:hex" (see
	// normaliseKey), so they never match direct-TLS entries.
	up := ""
	if r.StartTLS != "" {
		up = r.StartTLS + ":"
	}
	if r.HasJARM() {
		f.JARM = normalisedOrEmpty(KindJARM, up+r.JARM)
	}
	if r.ATSF != nil && r.ATSF.ID != "" {
		f.ATSF = normalisedOrEmpty(KindATSF, up+r.ATSF.ID)
	}
	if r.Cert != nil {
		f.CertSHA256 = normalisedOrEmpty(KindCertSHA256, r.Cert.SHA256)
		f.CertSHA1 = normalisedOrEmpty(KindCertSHA1, r.Cert.SHA1)
	}
	return f
}

func normalisedOrEmpty(kind, v string) string {
	if v == "" {
		return ""
	}
	_, n, err := normaliseKey(kind, v)
	if err != nil {
		return ""
	}
	return n
}

func (f Fingerprints) empty() bool { return f == Fingerprints{} }

// keys returns the fingerprints as DB keys, in kind order.
func (f Fingerprints) keys() []Key {
	var out []Key
	for _, k := range []Key{{KindATSF, f.ATSF}, {KindCertSHA1, f.CertSHA1}, {KindCertSHA256, f.CertSHA256}, {KindJARM, f.JARM}} {
		if k.Value != "" {
			out = append(out, k)
		}
	}
	return out
}

// Has reports whether f carries the fingerprint k.
func (f Fingerprints) Has(k Key) bool {
	for _, x := range f.keys() {
		if x == k {
			return true
		}
	}
	return false
}

// Change is a set of fingerprints a target showed before it changed.
type Change struct {
	Fingerprints
	From  time.Time `json:"from"`  // first probe that returned them
	Until time.Time `json:"until"` // last probe that returned them
}

// Observation is the daemon's memory of one probed target (schema v2
// bucket observations).
type Observation struct {
	IP   netip.Addr `json:"ip"`
	Port uint16     `json:"port"`
	SNI  string     `json:"sni,omitempty"`
	// The last probe, whatever its outcome.
	LastProbe time.Time         `json:"last_probe"`
	Status    stackprint.Status `json:"status"`
	Error     string            `json:"error,omitempty"`
	Probes    uint64            `json:"probes"`
	// The fingerprints of the last probe that returned any, the first
	// probe that returned this set and the last one.
	Fingerprints
	Since   time.Time `json:"since,omitzero"`
	Seen    time.Time `json:"seen,omitzero"`
	History []Change  `json:"history,omitempty"` // newest first, at most 16
	// Client is the connection whose sighting triggered the last probe,
	// so a retro-hunt alert can name the internal host to look at.
	Client *Client `json:"client,omitempty"`
	// Clients are the connections that triggered probes, newest first, at
	// most 16 (Client is the first).
	Clients []Client `json:"clients,omitempty"`
	// Hellos are the ATSF answers of the last probe that had any (status
	// request removed, "" for an unanswered ClientHello): what near
	// matching and explain compare with DB entries.
	Hellos []string `json:"hellos,omitempty"`
	// HellosProto is the STARTTLS prefix ("smtp:") of the probe that gave
	// Hellos, "" for direct TLS: what their near index keys hash with.
	HellosProto string `json:"hellos_proto,omitempty"`
}

// maxClients bounds Observation.Clients; maxProbeLog the probe log
// entries kept per target.
const (
	maxClients  = 16
	maxProbeLog = 64
)

// ProbeEntry is one probe of a target in the probe log (bucket
// probe_log): when, how it went, what it returned, who triggered it.
type ProbeEntry struct {
	Time   time.Time         `json:"time"`
	Status stackprint.Status `json:"status"`
	Error  string            `json:"error,omitempty"`
	Fingerprints
	Client *Client `json:"client,omitempty"`
	// Backfill marks a probe made by `stackprint scan` over old logs.
	Backfill bool `json:"backfill,omitempty"`
}

// Client is one observed connection to a target.
type Client struct {
	TS     time.Time      `json:"ts"`
	Orig   netip.AddrPort `json:"orig"`
	UID    string         `json:"uid,omitempty"`
	FlowID uint64         `json:"flow_id,omitempty"`
	Source string         `json:"source,omitempty"`
}

// Target returns the observed target.
func (o Observation) Target() stackprint.Target {
	return stackprint.Target{IP: o.IP, Port: o.Port, SNI: o.SNI}
}

// TargetKey is the observations key of a target: ip:port, NUL, sni.
func TargetKey(t stackprint.Target) string {
	return netip.AddrPortFrom(stackprint.CanonicalAddr(t.IP), t.Port).String() + "\x00" + t.SNI
}

// notProbed are statuses for which no packet reached the target; they
// leave no observation.
func notProbed(s stackprint.Status) bool {
	switch s {
	case stackprint.StatusOutOfScope, stackprint.StatusRateLimited, stackprint.StatusBudgetExceeded, "":
		return true
	}
	return false
}

// RecordObservation stores the outcome of one probe of a target (the
// daemon calls it for every result it records). A result with
// fingerprints updates the target's current set, pushing the previous one
// into its history when it changed, indexes each fingerprint for
// ObservationsWith, and widens FirstSeen/LastSeen of DB records it
// matches. A failed probe only updates the last-probe fields; results of
// targets never probed (out_of_scope, rate_limited, budget_exceeded) are
// ignored.
func (d *DB) RecordObservation(r stackprint.Result) error {
	return d.RecordObservationOf(stackprint.Event{}, r)
}

// RecordObservationOf is RecordObservation that also remembers ev, the
// connection that triggered the probe (when it names a client).
func (d *DB) RecordObservationOf(ev stackprint.Event, r stackprint.Result) error {
	if notProbed(r.Status) || !r.Target.IP.IsValid() {
		return nil
	}
	at := r.Started.UTC()
	if r.Started.IsZero() {
		at = d.now().UTC()
	}
	fps := FingerprintsOf(r)
	t := r.Target
	t.IP = stackprint.CanonicalAddr(t.IP)
	tk := TargetKey(t)
	added := false
	err := d.update(func(tx *bolt.Tx) error {
		added = false // bbolt may run the function again
		ob, err := bucket(tx, bucketObservations)
		if err != nil {
			return err
		}
		ix, err := bucket(tx, bucketObsIndex)
		if err != nil {
			return err
		}
		var o Observation
		if raw := ob.Get([]byte(tk)); raw != nil {
			if err := json.Unmarshal(raw, &o); err != nil {
				return fmt.Errorf("decode observation %s: %w", t, err)
			}
		} else {
			o = Observation{IP: t.IP, Port: t.Port, SNI: t.SNI}
			added = true
		}
		o.Probes++
		var client *Client
		if ev.Orig.IsValid() {
			client = &Client{TS: ev.TS, Orig: ev.Orig, UID: ev.UID, FlowID: ev.FlowID, Source: ev.Source}
			o.Client = client
			o.Clients = append([]Client{*client}, o.Clients...)
			if len(o.Clients) > maxClients {
				o.Clients = o.Clients[:maxClients]
			}
		}
		if hellos, ok := HellosOf(r.ATSF); ok {
			proto := ""
			if r.StartTLS != "" {
				proto = r.StartTLS + ":"
			}
			if err := reindexObsNear(tx, tk, hellosProto(o), o.Hellos, proto, hellos); err != nil {
				return err
			}
			o.Hellos, o.HellosProto = hellos, proto
		}
		if err := logProbe(tx, tk, ProbeEntry{Time: at, Status: r.Status, Error: r.Error, Fingerprints: fps, Client: client, Backfill: ev.Backfill}); err != nil {
			return fmt.Errorf("probe log of %s: %w", t, err)
		}
		if at.After(o.LastProbe) || o.LastProbe.IsZero() {
			o.LastProbe, o.Status, o.Error = at, r.Status, r.Error
		}
		if !fps.empty() {
			if o.Fingerprints != fps {
				if !o.Fingerprints.empty() {
					o.History = append([]Change{{Fingerprints: o.Fingerprints, From: o.Since, Until: o.Seen}}, o.History...)
					if len(o.History) > maxHistory {
						o.History = o.History[:maxHistory]
					}
				}
				o.Fingerprints, o.Since = fps, at
			}
			o.Seen = latest(o.Seen, at)
			for _, k := range fps.keys() {
				if err := ix.Put(indexKey(k, tk), unixNano(o.Seen)); err != nil {
					return fmt.Errorf("index %s for %s: %w", k, t, err)
				}
				if err := touchRecord(tx, k, at); err != nil {
					return err
				}
			}
		}
		raw, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("encode observation %s: %w", t, err)
		}
		return ob.Put([]byte(tk), raw)
	})
	if err != nil {
		return fmt.Errorf("record observation of %s in %q: %w", r.Target, d.path, err)
	}
	if added {
		d.obsCount.Add(1)
	}
	return nil
}

// touchRecord widens the seen range of a DB record that a probe matched.
func touchRecord(tx *bolt.Tx, k Key, at time.Time) error {
	rec, ok, err := getRecord(tx, k.Kind, k.Value)
	if err != nil || !ok {
		return err
	}
	first, last := earliest(rec.FirstSeen, at), latest(rec.LastSeen, at)
	if first.Equal(rec.FirstSeen) && last.Equal(rec.LastSeen) {
		return nil
	}
	rec.FirstSeen, rec.LastSeen = first, last
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket([]byte(bucketFingerprints)).Put(key(k.Kind, k.Value), raw)
}

// indexKey is kind NUL value NUL targetkey.
func indexKey(k Key, tk string) []byte {
	b := key(k.Kind, k.Value)
	b = append(b, 0)
	return append(b, tk...)
}

func unixNano(t time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	return b[:]
}

func fromUnixNano(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, fmt.Errorf("index value %x: not 8 bytes", b)
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC(), nil
}

// Sighting is an observed target that carried a fingerprint, and the last
// time a probe saw it with that fingerprint.
type Sighting struct {
	Observation
	Carried time.Time `json:"carried"`
}

// ObservationsWith returns the targets that carried the fingerprint kind
// and value in a probe at or after since (the zero time means ever), most
// recent first. A target whose fingerprint has changed since is still
// returned with the time it last carried this one: that is what a
// retro-hunt needs.
func (d *DB) ObservationsWith(kind, value string, since time.Time) ([]Sighting, error) {
	k, err := NormaliseKey(kind, value)
	if err != nil {
		return nil, fmt.Errorf("observations with fingerprint: %w", err)
	}
	prefix := append(key(k.Kind, k.Value), 0)
	var out []Sighting
	err = d.view(func(tx *bolt.Tx) error {
		ix, err := bucket(tx, bucketObsIndex)
		if err != nil {
			return err
		}
		ob, err := bucket(tx, bucketObservations)
		if err != nil {
			return err
		}
		c := ix.Cursor()
		for ik, iv := c.Seek(prefix); ik != nil && bytes.HasPrefix(ik, prefix); ik, iv = c.Next() {
			carried, err := fromUnixNano(iv)
			if err != nil {
				return fmt.Errorf("obs_index %q: %w", ik, err)
			}
			if carried.Before(since) {
				continue
			}
			tk := ik[len(prefix):]
			raw := ob.Get(tk)
			if raw == nil {
				continue // pruned; the index entry goes with the next prune
			}
			var o Observation
			if err := json.Unmarshal(raw, &o); err != nil {
				return fmt.Errorf("decode observation %q: %w", tk, err)
			}
			out = append(out, Sighting{Observation: o, Carried: carried})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("observations with %s in %q: %w", k, d.path, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Carried.After(out[j].Carried) })
	return out, nil
}

// Observation returns the stored observation of a target.
func (d *DB) Observation(t stackprint.Target) (Observation, bool, error) {
	t.IP = stackprint.CanonicalAddr(t.IP)
	var (
		o  Observation
		ok bool
	)
	err := d.view(func(tx *bolt.Tx) error {
		ob, err := bucket(tx, bucketObservations)
		if err != nil {
			return err
		}
		raw := ob.Get([]byte(TargetKey(t)))
		if raw == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(raw, &o)
	})
	if err != nil {
		return Observation{}, false, fmt.Errorf("read observation of %s from %q: %w", t, d.path, err)
	}
	return o, ok, nil
}

// PruneObservations deletes the observations whose last probe was before
// cutoff, and every index entry last carried before it. It returns the
// number of observations deleted.
func (d *DB) PruneObservations(cutoff time.Time) (int, error) {
	return d.PruneObservationsTo(cutoff, 0)
}

// PruneObservationsTo is PruneObservations that also keeps at most max
// observations (0: no bound), deleting those probed longest ago first
// (PruneObservationsOver). bbolt reuses the pages it frees, so the file
// stays at the size of its high-water mark instead of growing.
func (d *DB) PruneObservationsTo(cutoff time.Time, max int) (int, error) {
	c := cutoff.UnixNano()
	var dead, stale [][]byte
	err := d.view(func(tx *bolt.Tx) error {
		ob, err := bucket(tx, bucketObservations)
		if err != nil {
			return err
		}
		ix, err := bucket(tx, bucketObsIndex)
		if err != nil {
			return err
		}
		err = ob.ForEach(func(k, v []byte) error {
			last, err := lastProbe(k, v)
			if err == nil && last < c {
				dead = append(dead, append([]byte(nil), k...))
			}
			return err
		})
		if err != nil {
			return err
		}
		return ix.ForEach(func(k, v []byte) error {
			t, err := fromUnixNano(v)
			if err != nil {
				return fmt.Errorf("obs_index %q: %w", k, err)
			}
			if t.Before(cutoff) {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("prune observations in %q: %w", d.path, err)
	}
	n, err := d.deleteObservations(dead, c-1)
	if err != nil {
		return n, err
	}
	for len(stale) > 0 {
		batch := stale[:min(len(stale), 8*pruneBatch)]
		stale = stale[len(batch):]
		err := d.update(func(tx *bolt.Tx) error {
			ix, err := bucket(tx, bucketObsIndex)
			if err != nil {
				return err
			}
			for _, k := range batch {
				if v := ix.Get(k); v != nil && len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < c { // not carried again since
					if err := ix.Delete(k); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("prune observations in %q: %w", d.path, err)
		}
	}
	if err := d.pruneAlertsAndLog(cutoff); err != nil {
		return n, fmt.Errorf("prune observations in %q: %w", d.path, err)
	}
	over, err := d.PruneObservationsOver(max)
	return n + over, err
}

// Observations is the number of observations kept (counted at Open, kept
// up to date by this DB's writes); 0 for a read-only DB.
func (d *DB) Observations() int { return int(d.obsCount.Load()) }

// pruneBatch is how many observations one prune transaction deletes:
// bbolt holds every page a transaction dirties in memory until it
// commits, and deletions scattered over the key space dirty most pages,
// so one transaction for a hundred thousand of them would hold most of
// the file in the heap at once.
const pruneBatch = 512

// PruneObservationsOver deletes the observations probed longest ago
// until at most max are left (max > 0), with their index entries and
// probe logs, and returns how many it deleted. Unlike PruneObservationsTo
// it reads no other bucket, so it is cheap enough to run whenever the
// count passes the bound, not just hourly. It holds one 8-byte time per
// observation and the keys of those it deletes, never the observations.
func (d *DB) PruneObservationsOver(max int) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	var victims [][]byte
	var edge int64
	err := d.view(func(tx *bolt.Tx) error {
		ob, err := bucket(tx, bucketObservations)
		if err != nil {
			return err
		}
		var times []int64
		err = ob.ForEach(func(k, v []byte) error {
			t, err := lastProbe(k, v)
			times = append(times, t)
			return err
		})
		if err != nil || len(times) <= max {
			return err
		}
		over := len(times) - max
		slices.Sort(times)
		edge = times[over-1] // the newest to go; of those probed at edge, only as many as needed
		atEdge := over - sort.Search(over, func(i int) bool { return times[i] == edge })
		return ob.ForEach(func(k, v []byte) error {
			t, err := lastProbe(k, v)
			if err == nil && (t < edge || (t == edge && atEdge > 0)) {
				if t == edge {
					atEdge--
				}
				victims = append(victims, append([]byte(nil), k...))
			}
			return err
		})
	})
	if err != nil {
		return 0, fmt.Errorf("prune observations in %q: %w", d.path, err)
	}
	return d.deleteObservations(victims, edge)
}

// deleteObservations deletes the observations of keys not probed after
// notAfter (one probed since is kept), with their index entries (of every
// fingerprint set they still name; older ones go by age), near index
// entries and probe logs, pruneBatch per transaction.
func (d *DB) deleteObservations(keys [][]byte, notAfter int64) (int, error) {
	n := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), pruneBatch)]
		keys = keys[len(batch):]
		deleted := 0
		err := d.update(func(tx *bolt.Tx) error {
			deleted = 0
			ob, err := bucket(tx, bucketObservations)
			if err != nil {
				return err
			}
			ix, err := bucket(tx, bucketObsIndex)
			if err != nil {
				return err
			}
			pl, err := bucket(tx, bucketProbeLog)
			if err != nil {
				return err
			}
			for _, k := range batch {
				raw := ob.Get(k)
				if raw == nil {
					continue
				}
				var o Observation
				if err := json.Unmarshal(raw, &o); err != nil {
					return fmt.Errorf("decode observation %q: %w", k, err)
				}
				if !o.LastProbe.IsZero() && o.LastProbe.UnixNano() > notAfter {
					continue
				}
				sets := []Fingerprints{o.Fingerprints}
				for _, h := range o.History {
					sets = append(sets, h.Fingerprints)
				}
				for _, fps := range sets {
					for _, fk := range fps.keys() {
						if err := ix.Delete(indexKey(fk, string(k))); err != nil {
							return err
						}
					}
				}
				prefix := append(slices.Clip(k), 0)
				var logged [][]byte
				c := pl.Cursor()
				for lk, _ := c.Seek(prefix); lk != nil && bytes.HasPrefix(lk, prefix); lk, _ = c.Next() {
					if len(lk) == len(prefix)+8 {
						logged = append(logged, append([]byte(nil), lk...))
					}
				}
				for _, lk := range logged {
					if err := pl.Delete(lk); err != nil {
						return err
					}
				}
				if err := unindexObsNear(tx, k, raw); err != nil {
					return err
				}
				if err := ob.Delete(k); err != nil {
					return err
				}
				deleted++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("prune observations in %q: %w", d.path, err)
		}
		n += deleted
		d.obsCount.Add(-int64(deleted))
	}
	return n, nil
}

// lastProbe is the time of an observation's last probe, in Unix
// nanoseconds.
func lastProbe(k, v []byte) (int64, error) {
	var o struct {
		LastProbe time.Time `json:"last_probe"`
	}
	if err := json.Unmarshal(v, &o); err != nil {
		return 0, fmt.Errorf("decode observation %q: %w", k, err)
	}
	if o.LastProbe.IsZero() {
		return math.MinInt64, nil
	}
	return o.LastProbe.UnixNano(), nil
}

// indexTarget is the target key of an obs_index key (kind NUL value NUL
// targetkey).
func indexTarget(k []byte) string {
	for range 2 {
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			return ""
		}
		k = k[i+1:]
	}
	return string(k)
}

// ServerMatch is an observed target whose current fingerprints match DB
// records: a server with a malicious verdict.
type ServerMatch struct {
	Observation
	Records []Record
}

// MatchedServers returns the observed targets whose current fingerprints
// match DB records of at least minConfidence ("" = any), seen at or after
// since, sorted by address.
func (d *DB) MatchedServers(minConfidence string, since time.Time) ([]ServerMatch, error) {
	minRank := 0
	if minConfidence != "" {
		if minRank = confidenceRank(strings.ToLower(minConfidence)); minRank == 0 {
			return nil, fmt.Errorf("min confidence %q: want low, medium or high", minConfidence)
		}
	}
	var out []ServerMatch
	err := d.view(func(tx *bolt.Tx) error {
		ob, err := bucket(tx, bucketObservations)
		if err != nil {
			return err
		}
		return ob.ForEach(func(k, v []byte) error {
			var o Observation
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("decode observation %q: %w", k, err)
			}
			if o.Fingerprints.empty() || o.Seen.Before(since) {
				return nil
			}
			var recs []Record
			for _, fk := range o.Fingerprints.keys() {
				rec, ok, err := getRecord(tx, fk.Kind, fk.Value)
				if err != nil {
					return err
				}
				if ok && confidenceRank(rec.Confidence) >= minRank {
					recs = append(recs, rec)
				}
			}
			if len(recs) > 0 {
				out = append(out, ServerMatch{Observation: o, Records: recs})
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("matched servers in %q: %w", d.path, err)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := a.IP.Compare(b.IP); c != 0 {
			return c < 0
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.SNI < b.SNI
	})
	return out, nil
}

// probeLogKey is targetkey NUL 8-byte big-endian Unix nanoseconds.
func probeLogKey(tk string, at time.Time) []byte {
	k := append([]byte(tk), 0)
	return append(k, unixNano(at)...)
}

// logProbe appends e to the target's probe log and drops its oldest
// entries past maxProbeLog.
func logProbe(tx *bolt.Tx, tk string, e ProbeEntry) error {
	b, err := bucket(tx, bucketProbeLog)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := b.Put(probeLogKey(tk, e.Time), raw); err != nil {
		return err
	}
	prefix := append([]byte(tk), 0)
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys[:max(len(keys)-maxProbeLog, 0)] {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ProbeLog returns the logged probes of a target, oldest first.
func (d *DB) ProbeLog(t stackprint.Target) ([]ProbeEntry, error) {
	t.IP = stackprint.CanonicalAddr(t.IP)
	prefix := append([]byte(TargetKey(t)), 0)
	var out []ProbeEntry
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketProbeLog))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue // another SNI that starts with this one
			}
			var e ProbeEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode probe log %q: %w", k, err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("probe log of %s in %q: %w", t, d.path, err)
	}
	return out, nil
}

// ObservationsOf returns the observed targets of an address: ip (every
// port and name), ip:port (every name) or one target, sorted by key.
func (d *DB) ObservationsOf(ip netip.Addr, port uint16, sni string, exact bool) ([]Observation, error) {
	ip = stackprint.CanonicalAddr(ip)
	var prefix string
	switch {
	case exact:
		prefix = TargetKey(stackprint.Target{IP: ip, Port: port, SNI: sni})
	case port != 0:
		prefix = netip.AddrPortFrom(ip, port).String() + "\x00"
	default:
		prefix = strings.TrimSuffix(netip.AddrPortFrom(ip, 1).String(), "1")
	}
	var out []Observation
	err := d.view(func(tx *bolt.Tx) error {
		ob, err := bucket(tx, bucketObservations)
		if err != nil {
			return err
		}
		c := ob.Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
			if exact && string(k) != prefix {
				continue
			}
			if !exact && port == 0 {
				// "1.2.3.4:" also prefixes nothing else; an IPv6 "[::1]:" likewise.
				if _, _, ok := strings.Cut(string(k), "\x00"); !ok {
					continue
				}
			}
			var o Observation
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("decode observation %q: %w", k, err)
			}
			out = append(out, o)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("observations of %s in %q: %w", ip, d.path, err)
	}
	return out, nil
}

// Result rebuilds the matchable part of the probe result an observation
// keeps: its current fingerprints and ATSF answers, as of its last probe.
// Matching it again (exact and near) is how explain, retro-hunts and
// backfill judge a stored target without probing it.
func (o Observation) Result() stackprint.Result {
	r := stackprint.Result{Target: o.Target(), Started: o.Seen, Status: stackprint.StatusOK}
	proto, jarm := splitProto(o.JARM)
	if jarm != "" {
		r.JARM = jarm
		r.StartTLS = strings.TrimSuffix(proto, ":")
	}
	if o.ATSF != "" || len(o.Hellos) == ATSFHellos {
		p, id := splitProto(o.ATSF)
		if p != "" {
			r.StartTLS = strings.TrimSuffix(p, ":")
		}
		a := &stackprint.ATSF{ID: id}
		if len(o.Hellos) == ATSFHellos {
			for i, h := range o.Hellos {
				a.Hellos = append(a.Hellos, stackprint.ATSFHello{Name: atsfHelloNames[i], Raw: h})
			}
		}
		r.ATSF = a
	}
	if o.CertSHA256 != "" || o.CertSHA1 != "" {
		r.Cert = &stackprint.CertFacts{SHA256: o.CertSHA256, SHA1: o.CertSHA1}
	}
	if r.JARM == "" && r.ATSF == nil && r.Cert == nil {
		r.Status = o.Status
	}
	return r
}
