package kafka

import (
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

	"github.com/stackprint/stackprint/enrich"
)

// groupConsumer is a consumer-group member with a delivery ledger per
// assigned partition: a partition's offset is committed only past records
// that are settled. The input (sensor events) and the shared prober's
// request worker are built on it.
type groupConsumer struct {
	name       string // for logs and errors
	group      string
	maxPending int
	revokeWait time.Duration
	interval   time.Duration
	durable    func() error
	log        *slog.Logger
	cl         *kgo.Client

	// decode turns a record into an item; track false means there is
	// nothing to wait for (settled at once); an error is a malformed
	// record (logged with topic/partition@offset, settled). It runs on
	// the poll goroutine.
	decode func(key tp, r *kgo.Record) (item any, track bool, err error)
	// deliver hands a tracked item on; the item settles later through
	// settle(key, epoch, offset). It may block (backpressure); an error
	// stops the consumer.
	deliver func(ctx context.Context, key tp, epoch uint64, r *kgo.Record, item any) error
	// forget drops per-partition state when a partition goes.
	forget func(key tp)

	commitMu sync.Mutex // one commit at a time: periodic, revoke, final

	mu       sync.Mutex
	settled  *sync.Cond // signalled when an entry settles or a partition goes
	parts    map[tp]*partition
	pending  int    // unsettled entries over all partitions
	epoch    uint64 // assignment counter
	closing  bool
	joined   bool
	lostErr  error
	rejected atomic.Uint64
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

func (p *partition) unsettled() int {
	n := 0
	for _, e := range p.pend {
		if !e.settled {
			n++
		}
	}
	return n
}

// groupSettings are a consumer's group options.
type groupSettings struct {
	name           string
	group          string
	topics         []string
	latest         bool
	maxPending     int
	revokeWait     time.Duration
	sessionTimeout time.Duration
	interval       time.Duration
	durable        func() error
	log            *slog.Logger
	// The consumer's hooks (see groupConsumer): set before the client
	// exists, since the group may assign partitions (and call forget) as
	// soon as it does. forget may be nil.
	decode  func(key tp, r *kgo.Record) (item any, track bool, err error)
	deliver func(ctx context.Context, key tp, epoch uint64, r *kgo.Record, item any) error
	forget  func(key tp)
}

// newGroupConsumer connects.
func newGroupConsumer(conn []kgo.Opt, s groupSettings, extra ...kgo.Opt) (*groupConsumer, error) {
	c := &groupConsumer{name: s.name, group: s.group, maxPending: s.maxPending, revokeWait: s.revokeWait,
		interval: s.interval, durable: s.durable, log: s.log, parts: map[tp]*partition{},
		decode: s.decode, deliver: s.deliver, forget: s.forget}
	if c.forget == nil {
		c.forget = func(tp) {}
	}
	c.settled = sync.NewCond(&c.mu)
	reset := kgo.NewOffset().AtStart()
	if s.latest {
		reset = kgo.NewOffset().AtEnd()
	}
	opts := append(append([]kgo.Opt(nil), conn...),
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(s.topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	if s.sessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(s.sessionTimeout), kgo.HeartbeatInterval(max(s.sessionTimeout/10, 100*time.Millisecond)))
	}
	opts = append(opts, extra...)
	var err error
	if c.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return c, nil
}

// run reads records until ctx ends or deliver fails; the committer runs
// beside it. close makes the final commit.
func (c *groupConsumer) run(ctx context.Context) error {
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	commitErr := make(chan error, 1)
	wg.Go(func() {
		t := time.NewTicker(c.interval)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
			}
			if err := c.commit(cctx); err != nil && cctx.Err() == nil {
				commitErr <- err
				stop()
				return
			}
		}
	})
	err := c.consume(cctx)
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

func (c *groupConsumer) consume(ctx context.Context) error {
	for {
		if err := c.waitRoom(ctx); err != nil {
			return err
		}
		fs := c.cl.PollRecords(ctx, 1000)
		if fs.IsClientClosed() || ctx.Err() != nil {
			c.cl.AllowRebalance()
			return ctx.Err()
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.Canceled) {
				continue
			}
			c.log.Warn("kafka fetch", "consumer", c.name, "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
		}
		var herr error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if herr != nil {
				return
			}
			c.mu.Lock()
			if pt := c.parts[tp{p.Topic, p.Partition}]; pt != nil {
				pt.hwm = p.HighWatermark
			}
			c.mu.Unlock()
			for _, r := range p.Records {
				if herr = c.record(ctx, r); herr != nil {
					return
				}
			}
		})
		c.cl.AllowRebalance()
		if herr != nil {
			return herr
		}
	}
}

// waitRoom blocks while maxPending records are unsettled.
func (c *groupConsumer) waitRoom(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending < c.maxPending {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.settled.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for c.pending >= c.maxPending && ctx.Err() == nil {
		c.settled.Wait()
	}
	return ctx.Err()
}

func (c *groupConsumer) record(ctx context.Context, r *kgo.Record) error {
	c.records.Add(1)
	key := tp{r.Topic, r.Partition}
	c.mu.Lock()
	pt := c.parts[key]
	c.mu.Unlock()
	if pt == nil {
		return nil // revoked meanwhile: its new owner reads it
	}
	item, track, err := c.decode(key, r)
	track = track && err == nil
	c.mu.Lock()
	pt.next = r.Offset + 1
	pt.pend = append(pt.pend, entry{off: r.Offset, settled: !track})
	if track {
		c.pending++
	}
	epoch := pt.epoch
	c.mu.Unlock()
	if err != nil {
		c.rejected.Add(1)
		c.log.Warn("malformed record skipped", "consumer", c.name, "at", fmt.Sprintf("%s@%d", key, r.Offset), "err", err)
		return nil
	}
	if !track {
		return nil
	}
	return c.deliver(ctx, key, epoch, r, item)
}

// settle marks the record at off settled, unless its partition was
// revoked (or assigned again) since epoch: its new owner replays it.
func (c *groupConsumer) settle(key tp, epoch uint64, off int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := c.parts[key]
	if pt == nil || pt.epoch != epoch {
		return
	}
	i := sort.Search(len(pt.pend), func(i int) bool { return pt.pend[i].off >= off })
	if i < len(pt.pend) && pt.pend[i].off == off && !pt.pend[i].settled {
		pt.pend[i].settled = true
		c.pending--
		c.settled.Broadcast()
	}
}

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

// commit commits every assigned partition's offset past its settled
// prefix, after the outputs are durable.
func (c *groupConsumer) commit(ctx context.Context) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	return c.commitLocked(ctx, nil)
}

// commitLocked commits the partitions in only (all when nil); the caller
// holds commitMu.
func (c *groupConsumer) commitLocked(ctx context.Context, only map[tp]bool) error {
	offs := map[string]map[int32]kgo.EpochOffset{}
	epochs := map[tp]uint64{}
	c.mu.Lock()
	for k, pt := range c.parts {
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
	c.mu.Unlock()
	if len(offs) == 0 {
		return nil
	}
	// Everything settled before the positions were taken is written;
	// make it durable before Kafka forgets the records.
	t0 := time.Now()
	if err := c.durable(); errors.Is(err, enrich.ErrCommitLater) {
		return nil
	} else if err != nil {
		return fmt.Errorf("%s: make outputs durable before committing offsets: %w", c.name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var cerr error
	c.cl.CommitOffsetsSync(cctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
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
		// (or the new owner replays): not fatal.
		c.log.Warn("kafka offset commit failed; retried at the next interval", "consumer", c.name, "err", cerr)
		return nil
	}
	c.log.Debug("kafka offsets committed", "consumer", c.name, "offsets", fmt.Sprint(offs), "took", time.Since(t0).Round(time.Microsecond))
	c.mu.Lock()
	for k, e := range epochs {
		if pt := c.parts[k]; pt != nil && pt.epoch == e {
			pt.committed = max(pt.committed, offs[k.topic][k.part].Offset)
		}
	}
	c.mu.Unlock()
	return nil
}

func (c *groupConsumer) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	c.mu.Lock()
	var names []string
	var fresh []tp
	c.joined, c.lostErr = true, nil
	for topic, ps := range m {
		for _, p := range ps {
			c.epoch++
			k := tp{topic, p}
			c.parts[k] = &partition{epoch: c.epoch, next: -1, committed: -1, hwm: -1}
			fresh = append(fresh, k)
			names = append(names, k.String())
		}
	}
	c.mu.Unlock()
	for _, k := range fresh {
		c.forget(k)
	}
	sort.Strings(names)
	if len(names) > 0 {
		c.log.Info("kafka partitions assigned", "consumer", c.name, "partitions", strings.Join(names, ","))
	}
}

// revoked hands partitions over: their records get revokeWait to settle,
// the offsets are committed, and the partitions are forgotten.
func (c *groupConsumer) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	only := map[tp]bool{}
	for topic, ps := range m {
		for _, p := range ps {
			only[tp{topic, p}] = true
		}
	}
	if len(only) == 0 {
		return
	}
	c.waitSettled(ctx, only, c.revokeWait)
	c.commitMu.Lock()
	if err := c.commitLocked(ctx, only); err != nil {
		c.log.Warn("commit of revoked partitions", "consumer", c.name, "err", err)
	}
	left := c.drop(only)
	c.commitMu.Unlock()
	c.log.Info("kafka partitions revoked and handed over", "consumer", c.name, "partitions", len(only), "unsettled_replayed_by_new_owner", left)
}

// drop forgets partitions, returning how many of their records were
// still unsettled.
func (c *groupConsumer) drop(only map[tp]bool) int {
	c.mu.Lock()
	left := 0
	for k := range only {
		if pt := c.parts[k]; pt != nil {
			n := pt.unsettled()
			left += n
			c.pending -= n
		}
		delete(c.parts, k)
	}
	c.settled.Broadcast()
	c.mu.Unlock()
	for k := range only {
		c.forget(k)
	}
	return left
}

// lost drops partitions without committing (the group fenced us: a
// commit would be refused; the new owner replays from the last commit).
func (c *groupConsumer) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	only := map[tp]bool{}
	for topic, ps := range m {
		for _, p := range ps {
			only[tp{topic, p}] = true
		}
	}
	c.mu.Lock()
	c.joined = false
	c.lostErr = errors.New("partitions lost (session expired or fenced); rejoining")
	c.mu.Unlock()
	left := c.drop(only)
	c.log.Warn("kafka partitions lost", "consumer", c.name, "partitions", len(only), "unsettled_replayed_by_new_owner", left)
}

// waitSettled waits until the partitions in only have no unsettled
// record, for at most d (not at all while closing: the pipeline stopped).
func (c *groupConsumer) waitSettled(ctx context.Context, only map[tp]bool, d time.Duration) {
	deadline := time.Now().Add(d)
	wake := func() {
		c.mu.Lock()
		c.settled.Broadcast()
		c.mu.Unlock()
	}
	t := time.AfterFunc(d, wake)
	defer t.Stop()
	stop := context.AfterFunc(ctx, wake)
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closing && ctx.Err() == nil && time.Now().Before(deadline) {
		open := false
		for k := range only {
			if pt := c.parts[k]; pt != nil && pt.unsettled() > 0 {
				open = true
				break
			}
		}
		if !open {
			return
		}
		c.settled.Wait()
	}
}

// close makes the final commit (after the pipeline has stopped: what
// settled during its drain counts) and leaves the group.
func (c *groupConsumer) close(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	c.settled.Broadcast()
	c.mu.Unlock()
	err := c.commit(ctx)
	c.cl.Close()
	return err
}

// ready reports why the consumer is not a group member, or nil.
func (c *groupConsumer) ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lostErr != nil {
		return fmt.Errorf("%s: %w", c.name, c.lostErr)
	}
	if _, gen := c.cl.GroupMetadata(); gen < 0 || !c.joined {
		return fmt.Errorf("%s: not a member of consumer group %q yet", c.name, c.group)
	}
	return nil
}

// PartitionStats is one assigned partition's progress.
type PartitionStats struct {
	Consumer  string // the input's name, or "shared-probe"
	Topic     string
	Partition int32
	Committed int64 // the group's committed offset; -1: none
	Read      int64 // offset after the last record read; -1: none
	HighWater int64 // -1: not fetched yet
	Lag       int64 // HighWater minus Committed; -1 when unknown
	Pending   int   // records read and not settled
}

func (c *groupConsumer) stats() []PartitionStats {
	group := c.cl.CommittedOffsets() // what the group had committed when assigned
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]PartitionStats, 0, len(c.parts))
	for k, pt := range c.parts {
		s := PartitionStats{Consumer: c.name, Topic: k.topic, Partition: k.part, Committed: pt.committed, Read: pt.next, HighWater: pt.hwm, Lag: -1, Pending: pt.unsettled()}
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
