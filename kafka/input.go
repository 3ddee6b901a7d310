package kafka

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/tailer"
)

// Handler takes one event, like the tailer's: it may block (backpressure)
// and an error stops the input.
type Handler func(ctx context.Context, ev stackprint.Event) error

// InputOptions are what the daemon supplies beside the config.
type InputOptions struct {
	Name    string // the input's name: Event.Source
	Format  string // FormatZeekJSON or FormatEVE
	Handler Handler
	// Durable makes every output written so far durable (fsync, produce
	// acknowledged) before an offset is committed past it; it may return
	// enrich.ErrCommitLater to skip a commit. Required.
	Durable func() error
	// CommitInterval is how often settled offsets are committed. 0 = 500ms.
	CommitInterval time.Duration
	Logger         *slog.Logger
	// Extra client options (tests: a short metadata age).
	ClientOpts []kgo.Opt
}

// Input consumes sensor events from Kafka topics in a consumer group.
//
// The delivery rule is the file inputs' (enrich.Ledger): a partition's
// offset is committed only past records that are settled (judged and
// their outputs durable) or that were no event. Unlike a file input,
// nothing is parked in the local DB: Kafka is the backlog, so an
// unsettled record holds its partition's offset back and MaxPending
// bounds what is read ahead. A crash replays at most the unsettled tail
// (the same events, hence the same alert_id); a revoked partition waits up
// to RevokeWait for its events to settle, commits, and is handed over.
type Input struct {
	cfg  InputConfig
	opts InputOptions
	log  *slog.Logger
	cl   *kgo.Client

	commitMu sync.Mutex // one commit at a time: periodic, revoke, final

	mu       sync.Mutex
	settled  *sync.Cond // signalled when an entry settles
	parts    map[tp]*partition
	pending  int    // unsettled entries over all partitions
	epoch    uint64 // assignment counter, in Event.Ident
	closing  bool
	joined   bool
	lostErr  error
	parsers  map[tp]parser
	rejected atomic.Uint64 // malformed records (logged with topic/partition@offset)
	records  atomic.Uint64
}

type tp struct {
	topic string
	part  int32
}

func (t tp) String() string { return t.topic + "/" + strconv.Itoa(int(t.part)) }

// partition is one assigned partition's ledger: the records read and not
// yet committed, in offset order.
type partition struct {
	epoch     uint64
	pend      []entry
	next      int64 // offset after the last record read; -1 before any
	committed int64 // last committed offset; -1 = none this assignment
	hwm       int64 // high watermark of the last fetch
}

type entry struct {
	off     int64
	settled bool
}

// position is the offset to commit: the first unsettled record's, or
// past the last read when all are settled; -1 when nothing was read. It
// pops the settled prefix.
func (p *partition) position() int64 {
	i := 0
	for i < len(p.pend) && p.pend[i].settled {
		i++
	}
	p.pend = p.pend[i:]
	if len(p.pend) > 0 {
		return p.pend[0].off
	}
	return p.next
}

// parser is tailer's ZeekParser or EveParser.
type parser interface {
	ParseLine([]byte) (stackprint.Event, bool, error)
}

// NewInput connects the consumer (it joins the group in Run).
func NewInput(cfg InputConfig, opts InputOptions) (*Input, error) {
	if opts.Durable == nil || opts.Handler == nil {
		return nil, errors.New("kafka input: Durable and Handler are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.CommitInterval = cmp.Or(opts.CommitInterval, 500*time.Millisecond)
	cfg.MaxPending = cmp.Or(cfg.MaxPending, 10000)
	cfg.RevokeWait = cmp.Or(cfg.RevokeWait, 10*time.Second)
	in := &Input{cfg: cfg, opts: opts, log: opts.Logger.With("input", opts.Name),
		parts: map[tp]*partition{}, parsers: map[tp]parser{}}
	in.settled = sync.NewCond(&in.mu)
	co, err := connOpts(cfg.Brokers, cfg.ClientID, cfg.TLS, cfg.SASL)
	if err != nil {
		return nil, err
	}
	reset := kgo.NewOffset().AtStart()
	if cfg.Start == "latest" {
		reset = kgo.NewOffset().AtEnd()
	}
	co = append(co,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(in.assigned),
		kgo.OnPartitionsRevoked(in.revoked),
		kgo.OnPartitionsLost(in.lost),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	if cfg.SessionTimeout > 0 {
		co = append(co, kgo.SessionTimeout(cfg.SessionTimeout), kgo.HeartbeatInterval(max(cfg.SessionTimeout/10, 100*time.Millisecond)))
	}
	co = append(co, opts.ClientOpts...)
	if in.cl, err = kgo.NewClient(co...); err != nil {
		return nil, fmt.Errorf("kafka input %q: %w", opts.Name, err)
	}
	return in, nil
}

// IsKafkaEvent reports whether ev came from a Kafka input (its Ident).
func IsKafkaEvent(ev stackprint.Event) bool { return strings.HasPrefix(ev.Ident, identPrefix) }

const identPrefix = "kafka:"

// Run reads records until ctx ends or the handler fails. The committer
// runs beside it; Close makes the final commit once the pipeline has
// stopped.
func (in *Input) Run(ctx context.Context) error {
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	commitErr := make(chan error, 1)
	wg.Go(func() {
		t := time.NewTicker(in.opts.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
			}
			if err := in.Commit(cctx); err != nil && cctx.Err() == nil {
				commitErr <- err
				stop()
				return
			}
		}
	})
	err := in.consume(cctx)
	stop()
	wg.Wait()
	select {
	case cerr := <-commitErr:
		return cerr
	default:
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (in *Input) consume(ctx context.Context) error {
	for {
		if err := in.waitRoom(ctx); err != nil {
			return err
		}
		fs := in.cl.PollRecords(ctx, 1000)
		if fs.IsClientClosed() || ctx.Err() != nil {
			in.cl.AllowRebalance()
			return ctx.Err()
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.Canceled) {
				continue
			}
			in.log.Warn("kafka fetch", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
		}
		var herr error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if herr != nil {
				return
			}
			in.mu.Lock()
			if pt := in.parts[tp{p.Topic, p.Partition}]; pt != nil {
				pt.hwm = p.HighWatermark
			}
			in.mu.Unlock()
			for _, r := range p.Records {
				if herr = in.record(ctx, r); herr != nil {
					return
				}
			}
		})
		in.cl.AllowRebalance()
		if herr != nil {
			return herr
		}
	}
}

// waitRoom blocks while MaxPending records are unsettled.
func (in *Input) waitRoom(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pending < in.cfg.MaxPending {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		in.mu.Lock()
		in.settled.Broadcast()
		in.mu.Unlock()
	})
	defer stop()
	for in.pending >= in.cfg.MaxPending && ctx.Err() == nil {
		in.settled.Wait()
	}
	return ctx.Err()
}

// record parses r and hands its event on; a record that is no event (or
// malformed: logged with its topic/partition@offset) is settled at once.
func (in *Input) record(ctx context.Context, r *kgo.Record) error {
	in.records.Add(1)
	key := tp{r.Topic, r.Partition}
	in.mu.Lock()
	pt := in.parts[key]
	if pt == nil {
		in.mu.Unlock()
		return nil // revoked meanwhile: its new owner reads it
	}
	ps := in.parsers[key]
	if ps == nil {
		ps = in.newParser()
		in.parsers[key] = ps
	}
	ev, ok, err := parseRecord(ps, in.opts.Format, r.Value)
	pt.next = r.Offset + 1
	pt.pend = append(pt.pend, entry{off: r.Offset, settled: !ok || err != nil})
	if ok && err == nil {
		in.pending++
	}
	epoch := pt.epoch
	in.mu.Unlock()
	if err != nil {
		in.rejected.Add(1)
		in.log.Warn("malformed record skipped", "at", fmt.Sprintf("%s@%d", key, r.Offset), "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	ev.Source = in.opts.Name
	ev.File = key.String()
	ev.Offset = r.Offset + 1
	ev.Ident = identPrefix + strconv.FormatUint(epoch, 10)
	return in.opts.Handler(ctx, ev)
}

func (in *Input) newParser() parser {
	if in.opts.Format == FormatEVE {
		return tailer.NewEveParser(in.opts.Name)
	}
	return tailer.NewZeekParser(in.opts.Name)
}

// parseRecord decodes one message. Zeek's Kafka writer with tag_json sends
// {"ssl": {...}}: the record is unwrapped and its log named by the tag.
func parseRecord(ps parser, format string, v []byte) (stackprint.Event, bool, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return stackprint.Event{}, false, nil
	}
	if v[0] != '{' {
		return stackprint.Event{}, false, errors.New("not a JSON object")
	}
	if format == FormatZeekJSON {
		if inner, path, ok := untag(v); ok {
			v = inner
			if path != "" {
				v = withPath(inner, path)
			}
		}
	}
	return ps.ParseLine(v)
}

// untag returns the record inside {"<log>": {...}} and the log's name.
func untag(v []byte) ([]byte, string, bool) {
	i := skipWS(v, 1)
	if i >= len(v) || v[i] != '"' {
		return nil, "", false
	}
	j := bytes.IndexByte(v[i+1:], '"')
	if j < 0 {
		return nil, "", false
	}
	name := v[i+1 : i+1+j]
	if bytes.IndexByte(name, '\\') >= 0 {
		return nil, "", false
	}
	k := skipWS(v, i+j+2)
	if k >= len(v) || v[k] != ':' {
		return nil, "", false
	}
	k = skipWS(v, k+1)
	if k >= len(v) || v[k] != '{' {
		return nil, "", false // a flat Zeek record: no field value is an object
	}
	end := len(v) - 1 // the outer '}'
	if v[end] != '}' {
		return nil, "", false
	}
	inner := bytes.TrimSpace(v[k:end])
	if len(inner) < 2 || inner[len(inner)-1] != '}' {
		return nil, "", false
	}
	return inner, string(name), true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// withPath adds "_path" to a Zeek JSON record, so the parser knows its log.
func withPath(rec []byte, path string) []byte {
	out := make([]byte, 0, len(rec)+len(path)+12)
	out = append(out, `{"_path":`...)
	out = strconv.AppendQuote(out, path)
	rest := bytes.TrimSpace(rec[1:])
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// Settled is the pipeline's OnSettled for Kafka events (IsKafkaEvent);
// an event of a partition no longer assigned (or assigned again since) is
// ignored: its new owner replays it.
func (in *Input) Settled(ev stackprint.Event) {
	topic, part, ok := splitTP(ev.File)
	if !ok {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	pt := in.parts[tp{topic, part}]
	if pt == nil || identPrefix+strconv.FormatUint(pt.epoch, 10) != ev.Ident {
		return
	}
	off := ev.Offset - 1
	i := sort.Search(len(pt.pend), func(i int) bool { return pt.pend[i].off >= off })
	if i < len(pt.pend) && pt.pend[i].off == off && !pt.pend[i].settled {
		pt.pend[i].settled = true
		in.pending--
		in.settled.Broadcast()
	}
}

// Owns reports whether ev's source is this input.
func (in *Input) Owns(ev stackprint.Event) bool { return ev.Source == in.opts.Name && IsKafkaEvent(ev) }

func splitTP(s string) (string, int32, bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(s[i+1:], 10, 32)
	if err != nil {
		return "", 0, false
	}
	return s[:i], int32(n), true
}

// Commit commits every assigned partition's offset past its settled
// prefix, after the outputs are durable.
func (in *Input) Commit(ctx context.Context) error {
	in.commitMu.Lock()
	defer in.commitMu.Unlock()
	return in.commitLocked(ctx, nil)
}

// commitLocked commits the partitions in only (all when nil); the caller
// holds commitMu.
func (in *Input) commitLocked(ctx context.Context, only map[tp]bool) error {
	offs := map[string]map[int32]kgo.EpochOffset{}
	epochs := map[tp]uint64{}
	in.mu.Lock()
	for k, pt := range in.parts {
		if only != nil && !only[k] {
			continue
		}
		pos := pt.position()
		if pos < 0 || pos <= pt.committed {
			continue
		}
		if offs[k.topic] == nil {
			offs[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offs[k.topic][k.part] = kgo.EpochOffset{Epoch: -1, Offset: pos}
		epochs[k] = pt.epoch
	}
	in.mu.Unlock()
	if len(offs) == 0 {
		return nil
	}
	// Everything settled before the positions were taken is written;
	// make it durable before Kafka forgets the records.
	if err := in.opts.Durable(); errors.Is(err, enrich.ErrCommitLater) {
		return nil
	} else if err != nil {
		return fmt.Errorf("kafka input %q: make outputs durable before committing offsets: %w", in.opts.Name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var cerr error
	in.cl.CommitOffsetsSync(cctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					cerr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
					return
				}
			}
		}
	})
	if cerr != nil {
		// A commit refused in a rebalance is retried at the next interval
		// (or by the new owner's replay): not fatal.
		in.log.Warn("kafka offset commit failed; retried at the next interval", "err", cerr)
		return nil
	}
	in.mu.Lock()
	for k, e := range epochs {
		if pt := in.parts[k]; pt != nil && pt.epoch == e {
			pt.committed = max(pt.committed, offs[k.topic][k.part].Offset)
		}
	}
	in.mu.Unlock()
	return nil
}

func (in *Input) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.joined, in.lostErr = true, nil
	var names []string
	for topic, ps := range m {
		for _, p := range ps {
			in.epoch++
			k := tp{topic, p}
			in.parts[k] = &partition{epoch: in.epoch, next: -1, committed: -1, hwm: -1}
			delete(in.parsers, k)
			names = append(names, k.String())
		}
	}
	sort.Strings(names)
	if len(names) > 0 {
		in.log.Info("kafka partitions assigned", "partitions", strings.Join(names, ","))
	}
}

// revoked hands partitions over: their events get RevokeWait to settle,
// the offsets are committed, and the partitions are forgotten.
func (in *Input) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	only := map[tp]bool{}
	for topic, ps := range m {
		for _, p := range ps {
			only[tp{topic, p}] = true
		}
	}
	if len(only) == 0 {
		return
	}
	in.waitSettled(ctx, only, in.cfg.RevokeWait)
	in.commitMu.Lock()
	if err := in.commitLocked(ctx, only); err != nil {
		in.log.Warn("commit of revoked partitions", "err", err)
	}
	in.mu.Lock()
	left := 0
	for k := range only {
		if pt := in.parts[k]; pt != nil {
			for _, e := range pt.pend {
				if !e.settled {
					left++
					in.pending--
				}
			}
		}
		delete(in.parts, k)
		delete(in.parsers, k)
	}
	in.settled.Broadcast()
	in.mu.Unlock()
	in.commitMu.Unlock()
	in.log.Info("kafka partitions revoked and handed over", "partitions", len(only), "unsettled_replayed_by_new_owner", left)
}

// lost drops partitions without committing (the group fenced us: a
// commit would be refused; the new owner replays from the last commit).
func (in *Input) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.joined = false
	in.lostErr = errors.New("partitions lost (session expired or fenced); rejoining")
	for topic, ps := range m {
		for _, p := range ps {
			k := tp{topic, p}
			if pt := in.parts[k]; pt != nil {
				for _, e := range pt.pend {
					if !e.settled {
						in.pending--
					}
				}
			}
			delete(in.parts, k)
			delete(in.parsers, k)
		}
	}
	in.settled.Broadcast()
	in.log.Warn("kafka partitions lost", "partitions", m)
}

// waitSettled waits until the partitions in only have no unsettled
// record, for at most d (not at all while closing: the pipeline stopped).
func (in *Input) waitSettled(ctx context.Context, only map[tp]bool, d time.Duration) {
	deadline := time.Now().Add(d)
	t := time.AfterFunc(d, func() {
		in.mu.Lock()
		in.settled.Broadcast()
		in.mu.Unlock()
	})
	defer t.Stop()
	stop := context.AfterFunc(ctx, func() {
		in.mu.Lock()
		in.settled.Broadcast()
		in.mu.Unlock()
	})
	defer stop()
	in.mu.Lock()
	defer in.mu.Unlock()
	for !in.closing && ctx.Err() == nil && time.Now().Before(deadline) {
		open := false
		for k := range only {
			if pt := in.parts[k]; pt != nil {
				for _, e := range pt.pend {
					if !e.settled {
						open = true
						break
					}
				}
			}
		}
		if !open {
			return
		}
		in.settled.Wait()
	}
}

// Close makes the final commit (after the pipeline has stopped: what
// settled during its drain counts) and leaves the group.
func (in *Input) Close(ctx context.Context) error {
	in.mu.Lock()
	in.closing = true
	in.settled.Broadcast()
	in.mu.Unlock()
	err := in.Commit(ctx)
	in.cl.Close()
	return err
}

// Ready reports why the input is not consuming as a group member, or nil.
func (in *Input) Ready() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.lostErr != nil {
		return fmt.Errorf("kafka input %q: %w", in.opts.Name, in.lostErr)
	}
	if _, gen := in.cl.GroupMetadata(); gen < 0 || !in.joined {
		return fmt.Errorf("kafka input %q: not a member of consumer group %q yet", in.opts.Name, in.cfg.Group)
	}
	return nil
}

// PartitionStats is one assigned partition's progress.
type PartitionStats struct {
	Input     string
	Topic     string
	Partition int32
	Committed int64 // the group's committed offset; -1: none
	Read      int64 // offset after the last record read; -1: none
	HighWater int64 // -1: not fetched yet
	Lag       int64 // HighWater minus the committed (or read) offset; -1 when unknown
	Pending   int   // records read and not settled
}

// Stats returns the assigned partitions, sorted.
func (in *Input) Stats() []PartitionStats {
	group := in.cl.CommittedOffsets() // what the group had committed when assigned
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]PartitionStats, 0, len(in.parts))
	for k, pt := range in.parts {
		s := PartitionStats{Input: in.opts.Name, Topic: k.topic, Partition: k.part, Committed: pt.committed, Read: pt.next, HighWater: pt.hwm, Lag: -1}
		for _, e := range pt.pend {
			if !e.settled {
				s.Pending++
			}
		}
		if s.Committed < 0 {
			if eo, ok := group[k.topic][k.part]; ok {
				s.Committed = eo.Offset
			}
		}
		if pt.hwm >= 0 && s.Committed >= 0 {
			s.Lag = max(pt.hwm-s.Committed, 0)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// Counts returns the records read and the malformed ones.
func (in *Input) Counts() (records, rejected uint64) { return in.records.Load(), in.rejected.Load() }
