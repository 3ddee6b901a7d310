package kafka

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stackprint/stackprint/db"
)

// FingerprintStore is the local fingerprint DB (db.DB): it stays the read
// path of matching; the sync only writes to it.
type FingerprintStore interface {
	List(kind string) ([]db.Record, error)
	Get(kind, value string) (db.Record, bool, error)
	AddRecord(r db.Record) (db.Record, error)
	Remove(kind, value string) (bool, error)
	Generation() uint64
}

// DBSync keeps the fingerprint DBs of a cluster's instances identical
// through a compacted topic keyed by "kind value": a record's latest
// version, or a tombstone (no value) for a removed one.
//
// Every change to the local DB, whatever made it (db add, rm, import, a
// learn promotion, through the CLI or the admin API), is published: the
// sync watches the DB's generation and publishes the records whose content
// differs from what it last published or applied (and tombstones for the
// ones gone). Records from the topic are applied with AddRecord or Remove;
// what the local DB then holds counts as known, so applying never echoes
// (the generation change it causes finds nothing new to publish).
// A new instance reads the whole topic before it publishes its own
// differences. The local bbolt file stays the read path: matching never
// waits on the network.
type DBSync struct {
	topic string
	store FingerprintStore
	cl    *kgo.Client
	log   *slog.Logger
	// OnApplied, when set, is called for each record applied from the
	// topic (the daemon runs its retro-hunt over the local observations).
	OnApplied func(db.Record)

	mu      sync.Mutex
	known   map[string][32]byte // key → content hash as published or applied
	gen     uint64
	loaded  chan struct{}
	applied atomic.Uint64
	publish atomic.Uint64
}

// NewDBSync connects to the cluster's fingerprints topic.
func NewDBSync(cfg ClusterConfig, store FingerprintStore, log *slog.Logger, extra ...kgo.Opt) (*DBSync, error) {
	cfg.Defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := connOpts(cfg.Brokers, cfg.ClientID, cfg.TLS, cfg.SASL)
	if err != nil {
		return nil, err
	}
	opts := append(append([]kgo.Opt(nil), conn...),
		kgo.ConsumeTopics(cfg.FingerprintsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka fingerprint sync: %w", err)
	}
	return &DBSync{topic: cfg.FingerprintsTopic, store: store, cl: cl, log: log, known: map[string][32]byte{}, loaded: make(chan struct{})}, nil
}

func recordKey(r db.Record) string { return r.Kind + " " + r.Value }

// content hashes what a record says, not when this DB stored it nor when
// this instance last saw it (first_seen and last_seen follow each
// instance's own probes; they are merged, widened, whenever the record
// travels for another change).
func content(r db.Record) [32]byte {
	r.Updated, r.FirstSeen, r.LastSeen = time.Time{}, time.Time{}, time.Time{}
	b, _ := json.Marshal(r)
	return sha256.Sum256(b)
}

// Loaded is closed once the topic was read to its end and applied.
func (s *DBSync) Loaded() <-chan struct{} { return s.loaded }

// Counts returns the records applied from the topic and published to it.
func (s *DBSync) Counts() (applied, published uint64) { return s.applied.Load(), s.publish.Load() }

// Run applies the topic and publishes local changes until ctx ends.
func (s *DBSync) Run(ctx context.Context) error {
	ends, err := s.endOffsets(ctx)
	if err != nil {
		return err
	}
	next := map[int32]int64{}
	loaded := func() bool {
		for p, end := range ends {
			if end > 0 && next[p] < end {
				return false
			}
		}
		return true
	}
	// The topic holds each key's history until compaction: only the last
	// version of each key is applied, and only where the local DB differs
	// (a restart writes nothing and repeats no retro-hunt).
	last := map[string]*kgo.Record{}
	for !loaded() {
		if err := s.poll(ctx, next, time.Second, func(r *kgo.Record) error { last[string(r.Key)] = r; return nil }); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(last))
	for k := range last {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := s.apply(last[k]); err != nil {
			return err
		}
	}
	// Local records the topic does not have (or has otherwise) are this
	// instance's changes made while it was away: publish them.
	if err := s.publishChanges(ctx); err != nil {
		return err
	}
	close(s.loaded)
	for {
		if err := s.poll(ctx, next, 250*time.Millisecond, s.apply); err != nil {
			return err
		}
		if s.store.Generation() != s.gen {
			if err := s.publishChanges(ctx); err != nil {
				return err
			}
		}
	}
}

func (s *DBSync) endOffsets(ctx context.Context) (map[int32]int64, error) {
	for {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		lo, err := kadm.NewClient(s.cl).ListEndOffsets(lctx, s.topic)
		cancel()
		if err == nil {
			err = lo.Error()
		}
		if err == nil {
			ends := map[int32]int64{}
			lo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
			return ends, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.log.Warn("kafka fingerprint sync: end offsets", "topic", s.topic, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// poll hands what arrives within d to fn.
func (s *DBSync) poll(ctx context.Context, next map[int32]int64, d time.Duration, fn func(*kgo.Record) error) error {
	pctx, cancel := context.WithTimeout(ctx, d)
	fs := s.cl.PollFetches(pctx)
	cancel()
	if ctx.Err() != nil || fs.IsClientClosed() {
		return errors.Join(ctx.Err(), errors.New("client closed"))
	}
	for _, fe := range fs.Errors() {
		if errors.Is(fe.Err, context.DeadlineExceeded) {
			continue
		}
		s.log.Warn("kafka fingerprint sync: fetch", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
	}
	var aerr error
	fs.EachRecord(func(r *kgo.Record) {
		next[r.Partition] = r.Offset + 1
		if aerr == nil {
			aerr = fn(r)
		}
	})
	return aerr
}

// apply writes one topic record to the local DB; a malformed one is
// logged and skipped.
func (s *DBSync) apply(r *kgo.Record) error {
	at := fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)
	key := string(r.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(r.Value) == 0 { // a tombstone (kafka null; some tools send empty)
		kind, value, ok := cutKey(key)
		if !ok {
			s.log.Warn("kafka fingerprint sync: bad key skipped", "at", at, "key", key)
			return nil
		}
		if _, err := s.store.Remove(kind, value); err != nil {
			s.log.Warn("kafka fingerprint sync: remove skipped", "at", at, "key", key, "err", err)
			return nil
		}
		delete(s.known, key)
		s.applied.Add(1)
		return nil
	}
	var rec db.Record
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		s.log.Warn("kafka fingerprint sync: malformed record skipped", "at", at, "err", err)
		return nil
	}
	h := content(rec)
	if old, ok := s.known[key]; ok && old == h {
		return nil // ours, or already applied
	}
	if cur, ok, err := s.store.Get(rec.Kind, rec.Value); err == nil && ok && content(cur) == h {
		// The local DB says the same already (a restart re-reading the
		// topic): nothing to write, no retro-hunt to repeat.
		s.known[key] = h
		return nil
	}
	stored, err := s.store.AddRecord(rec)
	if err != nil {
		s.log.Warn("kafka fingerprint sync: record refused", "at", at, "key", key, "err", err)
		return nil
	}
	// What the DB holds now (merged with what it had) is known: a
	// difference left by the merge is not published back.
	s.known[recordKey(stored)] = content(stored)
	s.applied.Add(1)
	if s.OnApplied != nil {
		s.OnApplied(stored)
	}
	return nil
}

func cutKey(k string) (kind, value string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == ' ' {
			return k[:i], k[i+1:], i > 0 && i+1 < len(k)
		}
	}
	return "", "", false
}

// publishChanges publishes the records that differ from what is known and
// tombstones for the known ones gone.
func (s *DBSync) publishChanges(ctx context.Context) error {
	s.mu.Lock()
	gen := s.store.Generation()
	recs, err := s.store.List("")
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("kafka fingerprint sync: %w", err)
	}
	var out []*kgo.Record
	seen := make(map[string]bool, len(recs))
	next := map[string][32]byte{}
	for _, r := range recs {
		k := recordKey(r)
		seen[k] = true
		h := content(r)
		if old, ok := s.known[k]; ok && old == h {
			continue
		}
		b, err := json.Marshal(r)
		if err != nil {
			continue
		}
		out = append(out, &kgo.Record{Topic: s.topic, Key: []byte(k), Value: b})
		next[k] = h
	}
	var gone []string
	for k := range s.known {
		if !seen[k] {
			out = append(out, &kgo.Record{Topic: s.topic, Key: []byte(k)}) // tombstone
			gone = append(gone, k)
		}
	}
	s.mu.Unlock()
	if len(out) > 0 {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := s.cl.ProduceSync(pctx, out...).FirstErr()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("kafka fingerprint sync: publish failed; retried at the next change", "err", err)
			return nil
		}
		s.publish.Add(uint64(len(out)))
	}
	s.mu.Lock()
	for k, h := range next {
		s.known[k] = h
	}
	for _, k := range gone {
		delete(s.known, k)
	}
	s.gen = gen
	s.mu.Unlock()
	return nil
}

// Close disconnects.
func (s *DBSync) Close() { s.cl.Close() }
