package kafka

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stackprint/stackprint"
)

// ClusterConfig is the top-level cluster section: the instances of one
// consumer group share their probing and their fingerprint DB through
// these topics.
type ClusterConfig struct {
	Brokers  []string    `yaml:"brokers"`
	ClientID string      `yaml:"client_id"`
	TLS      *TLSConfig  `yaml:"tls"`
	SASL     *SASLConfig `yaml:"sasl"`
	// Group is the consumer group of the probe workers (every instance).
	Group string `yaml:"group"`
	// RequestsTopic carries probe requests keyed by server IP: the
	// partition's owner probes. Default stackprint.probe-requests.
	RequestsTopic string `yaml:"requests_topic"`
	// ObservationsTopic (compacted) carries probe results keyed by
	// target; every instance reads all of it into its cache. Default
	// stackprint.observations.
	ObservationsTopic string `yaml:"observations_topic"`
	// FingerprintsTopic (compacted) carries DB changes. Default
	// stackprint.fingerprints.
	FingerprintsTopic string `yaml:"fingerprints_topic"`
	// Wait bounds how long an event's probe waits for the owning
	// instance's result. 0 = 2m.
	Wait           time.Duration `yaml:"wait"`
	SessionTimeout time.Duration `yaml:"session_timeout"`
}

// Defaults fills the topic names and the group.
func (c *ClusterConfig) Defaults() {
	c.Group = cmp.Or(c.Group, "stackprint-probes")
	c.RequestsTopic = cmp.Or(c.RequestsTopic, "stackprint.probe-requests")
	c.ObservationsTopic = cmp.Or(c.ObservationsTopic, "stackprint.observations")
	c.FingerprintsTopic = cmp.Or(c.FingerprintsTopic, "stackprint.fingerprints")
	c.Wait = cmp.Or(c.Wait, 2*time.Minute)
}

// Validate checks the section (after Defaults).
func (c *ClusterConfig) Validate(prefix string) []FieldError {
	errs := validateConn(prefix, c.Brokers, c.TLS, c.SASL)
	for f, t := range map[string]string{"requests_topic": c.RequestsTopic, "observations_topic": c.ObservationsTopic, "fingerprints_topic": c.FingerprintsTopic} {
		if why := validTopic(t); why != "" {
			errs = append(errs, FieldError{prefix + "." + f, t, why})
		}
	}
	if c.Wait < 0 {
		errs = append(errs, FieldError{prefix + ".wait", c.Wait, "must not be negative"})
	}
	if c.SessionTimeout != 0 && (c.SessionTimeout < time.Second || c.SessionTimeout > 30*time.Minute) {
		errs = append(errs, FieldError{prefix + ".session_timeout", c.SessionTimeout, "must be 1s..30m (0 = 45s)"})
	}
	return errs
}

// Prober probes one target; probe.Engine is one.
type Prober interface {
	ProbeWith(ctx context.Context, t stackprint.Target, jarmSNI string, o stackprint.ProbeOptions) stackprint.Result
}

// SharedOptions are what the daemon supplies beside the config.
type SharedOptions struct {
	// Local probes the requests this instance owns (with its own per-IP
	// connection limit: every probe of an IP is made here).
	Local Prober
	// Deadline bounds one owned probe.
	Deadline time.Duration
	// Allowed is this instance's own scope: a request for a server
	// outside it (another instance may be configured more widely) is
	// answered out_of_scope, never dialled. nil allows all.
	Allowed func(netip.AddrPort) (bool, string)
	// TTL and NegativeTTL: how long an observation answers events (a
	// failed probe: NegativeTTL), as dedup.ttl and dedup.negative_ttl.
	TTL, NegativeTTL time.Duration
	MaxInFlight      int // owned probes at once; 0 = 16
	Capacity         int // observations cached; 0 = 100000
	Instance         string
	Logger           *slog.Logger
	ClientOpts       []kgo.Opt
}

// Shared is a Prober for the pipeline that shares probing across the
// instances of a cluster: each server IP is probed by exactly one
// instance at a time, whichever sensor saw it.
//
//   - A probe first looks in the observations every instance has
//     published (the compacted observations topic, read whole into a
//     cache): a fresh one answers without a connection.
//   - Otherwise it publishes a request keyed by the server's IP and waits
//     for the observation. The requests topic is consumed by a consumer
//     group of all instances; the owner of the IP's partition probes it
//     (one request at a time per target; requests for a target probed
//     meanwhile are answered by that observation) and publishes the
//     result, keyed by target.
//   - A request's offset is committed once its observation is
//     acknowledged, so an owner that dies mid-probe leaves the request to
//     the partition's next owner: probed again only then.
type Shared struct {
	cfg  ClusterConfig
	opts SharedOptions
	log  *slog.Logger
	cl   *kgo.Client // produces requests and observations, reads observations
	wk   *groupConsumer

	mu       sync.Mutex
	cache    *lru.Cache[string, stackprint.Result]
	waiters  map[string][]*waiter
	inflight map[string]bool
	sem      chan struct{}
	loaded   chan struct{} // closed when the observations were read up to the end once

	requests, hits, owned, ownedSkipped, observations atomic.Uint64
}

type waiter struct {
	after time.Time // a stale observation the requester had: only a newer one answers
	ch    chan stackprint.Result
}

// probeRequest is a request record's value.
type probeRequest struct {
	IP       string   `json:"ip"`
	Port     uint16   `json:"port"`
	SNI      string   `json:"sni,omitempty"`
	StartTLS string   `json:"starttls,omitempty"`
	JARMSNI  string   `json:"jarm_sni"`
	Kinds    []string `json:"kinds"`
	After    int64    `json:"after_ns,omitempty"` // unix ns of a stale observation to supersede
	From     string   `json:"from,omitempty"`
}

type observation struct {
	Result stackprint.Result `json:"result"`
	By     string            `json:"by,omitempty"`
}

// obsKey names a probe: the target and how it was probed.
func obsKey(t stackprint.Target, jarmSNI string, kinds []string) string {
	return t.IP.String() + "|" + strconv.Itoa(int(t.Port)) + "|" + t.SNI + "|" + t.StartTLS + "|" + jarmSNI + "|" + strings.Join(kinds, ",")
}

// NewShared connects; Run starts reading and working.
func NewShared(cfg ClusterConfig, opts SharedOptions) (*Shared, error) {
	cfg.Defaults()
	if opts.Local == nil {
		return nil, errors.New("kafka shared probing: Local prober required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.MaxInFlight = cmp.Or(opts.MaxInFlight, 16)
	opts.Capacity = cmp.Or(opts.Capacity, 100000)
	opts.Deadline = cmp.Or(opts.Deadline, 30*time.Second)
	opts.TTL = cmp.Or(opts.TTL, 24*time.Hour)
	opts.NegativeTTL = cmp.Or(opts.NegativeTTL, time.Hour)
	cache, err := lru.New[string, stackprint.Result](opts.Capacity)
	if err != nil {
		return nil, err
	}
	s := &Shared{cfg: cfg, opts: opts, log: opts.Logger, cache: cache, waiters: map[string][]*waiter{}, inflight: map[string]bool{},
		sem: make(chan struct{}, opts.MaxInFlight), loaded: make(chan struct{})}
	conn, err := connOpts(cfg.Brokers, cfg.ClientID, cfg.TLS, cfg.SASL)
	if err != nil {
		return nil, err
	}
	popts := append(append([]kgo.Opt(nil), conn...),
		kgo.ConsumeTopics(cfg.ObservationsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)
	popts = append(popts, opts.ClientOpts...)
	if s.cl, err = kgo.NewClient(popts...); err != nil {
		return nil, fmt.Errorf("kafka shared probing: %w", err)
	}
	s.wk, err = newGroupConsumer(conn, groupSettings{
		name: "kafka probe worker", group: cfg.Group, topics: []string{cfg.RequestsTopic},
		maxPending: 4 * opts.MaxInFlight, revokeWait: opts.Deadline + 5*time.Second, sessionTimeout: cfg.SessionTimeout,
		interval: 500 * time.Millisecond, durable: func() error { return nil }, log: opts.Logger,
		decode: func(_ tp, r *kgo.Record) (any, bool, error) {
			var q probeRequest
			if err := json.Unmarshal(r.Value, &q); err != nil {
				return nil, false, fmt.Errorf("probe request: %w", err)
			}
			return q, true, nil
		},
		deliver: s.work,
	}, opts.ClientOpts...)
	if err != nil {
		s.cl.Close()
		return nil, err
	}
	return s, nil
}

// Run reads the observations and works on the owned requests until ctx
// ends; Close leaves the group.
func (s *Shared) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() { errc <- s.readObservations(ctx) })
	wg.Go(func() { errc <- s.wk.run(ctx) })
	err := <-errc
	if ctx.Err() == nil && err != nil {
		s.log.Error("shared probing stopped", "err", err)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Close commits the finished requests and leaves the group.
func (s *Shared) Close(ctx context.Context) error {
	err := s.wk.close(ctx)
	s.cl.Close()
	return err
}

// Loaded is closed once the observations topic was read to its end.
func (s *Shared) Loaded() <-chan struct{} { return s.loaded }

func (s *Shared) readObservations(ctx context.Context) error {
	// The ends at start: once read up to them, the cache holds what the
	// cluster knew.
	var ends map[int32]int64
	for ends == nil {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		lo, err := kadm.NewClient(s.cl).ListEndOffsets(lctx, s.cfg.ObservationsTopic)
		cancel()
		if err == nil {
			err = lo.Error()
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("kafka observations: end offsets", "err", err)
			time.Sleep(time.Second)
			continue
		}
		ends = map[int32]int64{}
		lo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	}
	next := map[int32]int64{}
	s.checkLoaded(ends, next)
	for {
		fs := s.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return ctx.Err()
		}
		for _, fe := range fs.Errors() {
			s.log.Warn("kafka observations fetch", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var o observation
			if err := json.Unmarshal(r.Value, &o); err != nil {
				s.log.Warn("malformed observation skipped", "at", fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset), "err", err)
				return
			}
			s.observations.Add(1)
			s.store(string(r.Key), o.Result)
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				next[p.Partition] = p.Records[n-1].Offset + 1
			}
		})
		s.checkLoaded(ends, next)
	}
}

// checkLoaded closes loaded once every partition was read to its end.
func (s *Shared) checkLoaded(ends, next map[int32]int64) {
	select {
	case <-s.loaded:
		return
	default:
	}
	for p, end := range ends {
		if end > 0 && next[p] < end {
			return
		}
	}
	close(s.loaded)
}

// store caches an observation (if newer) and answers the waiters it
// supersedes.
func (s *Shared) store(key string, r stackprint.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.cache.Peek(key); !ok || !old.Started.After(r.Started) {
		s.cache.Add(key, r)
	}
	ws := s.waiters[key]
	kept := ws[:0]
	for _, w := range ws {
		if r.Started.After(w.after) {
			w.ch <- r
			continue
		}
		kept = append(kept, w)
	}
	if len(kept) == 0 {
		delete(s.waiters, key)
	} else {
		s.waiters[key] = kept
	}
}

func (s *Shared) fresh(r stackprint.Result, now time.Time) bool {
	ttl := s.opts.NegativeTTL
	if r.Status == stackprint.StatusOK || r.Status == stackprint.StatusPartial {
		ttl = s.opts.TTL
	}
	return now.Sub(r.Started) < ttl
}

// ProbeWith answers from a fresh observation, or asks the owner of the
// server's IP and waits for its observation.
func (s *Shared) ProbeWith(ctx context.Context, t stackprint.Target, jarmSNI string, o stackprint.ProbeOptions) stackprint.Result {
	key := obsKey(t, jarmSNI, o.Kinds)
	now := time.Now()
	w := &waiter{ch: make(chan stackprint.Result, 1)}
	s.mu.Lock()
	if r, ok := s.cache.Get(key); ok {
		if s.fresh(r, now) {
			s.mu.Unlock()
			s.hits.Add(1)
			r.Target = t
			return r
		}
		w.after = r.Started
	}
	s.waiters[key] = append(s.waiters[key], w)
	s.mu.Unlock()
	s.requests.Add(1)
	q := probeRequest{IP: t.IP.String(), Port: t.Port, SNI: t.SNI, StartTLS: t.StartTLS, JARMSNI: jarmSNI, Kinds: o.Kinds, From: s.opts.Instance}
	if !w.after.IsZero() {
		q.After = w.after.UnixNano()
	}
	b, _ := json.Marshal(q)
	// Wait on our own clock: the pipeline's deadline is for a local
	// probe; the owner may have a queue. Shutdown still ends the wait.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Wait)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	defer stop()
	if err := s.cl.ProduceSync(wctx, &kgo.Record{Topic: s.cfg.RequestsTopic, Key: []byte(q.IP), Value: b}).FirstErr(); err != nil {
		s.unwait(key, w)
		return stackprint.Result{Target: t, Started: now, Status: stackprint.StatusTimeout, Error: "shared probing: request not published: " + err.Error()}
	}
	select {
	case r := <-w.ch:
		r.Target = t
		return r
	case <-wctx.Done():
		s.unwait(key, w)
		return stackprint.Result{Target: t, Started: now, Duration: time.Since(now), Status: stackprint.StatusTimeout,
			Error: fmt.Sprintf("shared probing: no observation from the owning instance within %s", s.cfg.Wait)}
	}
}

func (s *Shared) unwait(key string, w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[key]
	for i, x := range ws {
		if x == w {
			s.waiters[key] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(s.waiters[key]) == 0 {
		delete(s.waiters, key)
	}
}

// work handles one owned request: skipped when a fresh observation newer
// than the requester's is known or the target is being probed here;
// otherwise probed, published, then settled (its offset committable).
func (s *Shared) work(ctx context.Context, key tp, epoch uint64, r *kgo.Record, item any) error {
	q := item.(probeRequest)
	ip, err := netip.ParseAddr(q.IP)
	if err != nil {
		s.wk.settle(key, epoch, r.Offset)
		s.log.Warn("probe request with a bad ip skipped", "at", fmt.Sprintf("%s@%d", key, r.Offset), "ip", q.IP)
		return nil
	}
	t := stackprint.Target{IP: ip, Port: q.Port, SNI: q.SNI, StartTLS: q.StartTLS}
	k := obsKey(t, q.JARMSNI, q.Kinds)
	now := time.Now()
	s.mu.Lock()
	if o, ok := s.cache.Peek(k); (ok && s.fresh(o, now) && o.Started.UnixNano() > q.After) || s.inflight[k] {
		s.mu.Unlock()
		s.ownedSkipped.Add(1)
		s.wk.settle(key, epoch, r.Offset)
		return nil
	}
	s.inflight[k] = true
	s.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	go func() {
		defer func() { <-s.sem }()
		var res stackprint.Result
		if ok, why := s.allowed(t); !ok {
			res = stackprint.Result{Target: t, Started: time.Now(), Status: stackprint.StatusOutOfScope, Error: "out of the probing instance's scope: " + why}
		} else {
			pctx, cancel := context.WithTimeout(ctx, s.opts.Deadline)
			res = s.opts.Local.ProbeWith(pctx, t, q.JARMSNI, stackprint.ProbeOptions{Kinds: q.Kinds})
			cancel()
		}
		defer func() {
			s.mu.Lock()
			delete(s.inflight, k)
			s.mu.Unlock()
		}()
		if ctx.Err() != nil {
			return // shutdown: the request stays unsettled, the next owner probes
		}
		s.owned.Add(1)
		b, _ := json.Marshal(observation{Result: res, By: s.opts.Instance})
		if err := s.cl.ProduceSync(ctx, &kgo.Record{Topic: s.cfg.ObservationsTopic, Key: []byte(k), Value: b}).FirstErr(); err != nil {
			s.log.Warn("observation not published; the request is replayed by the partition's next owner", "target", t.String(), "err", err)
			return
		}
		s.store(k, res) // before the next request of this target is looked at
		s.wk.settle(key, epoch, r.Offset)
	}()
	return nil
}

func (s *Shared) allowed(t stackprint.Target) (bool, string) {
	if s.opts.Allowed == nil {
		return true, ""
	}
	return s.opts.Allowed(t.Addr())
}

// SharedStats counts the shared prober's work.
type SharedStats struct {
	Requests     uint64 // probes asked of the owner
	Hits         uint64 // probes answered by a fresh observation
	Owned        uint64 // probes made here for the cluster
	OwnedSkipped uint64 // requests answered by an observation or a probe in flight
	Observations uint64 // observation records read
	Partitions   []PartitionStats
}

// Stats returns the counters and the owned request partitions.
func (s *Shared) Stats() SharedStats {
	return SharedStats{Requests: s.requests.Load(), Hits: s.hits.Load(), Owned: s.owned.Load(), OwnedSkipped: s.ownedSkipped.Load(),
		Observations: s.observations.Load(), Partitions: s.wk.stats()}
}

// Ready reports whether the probe worker is a group member and the
// observations were loaded.
func (s *Shared) Ready() error {
	if err := s.wk.ready(); err != nil {
		return err
	}
	select {
	case <-s.loaded:
		return nil
	default:
		return errors.New("kafka shared probing: observations not loaded yet")
	}
}
