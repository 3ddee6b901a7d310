package kafka

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stackprint/stackprint"
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
	c    *groupConsumer
	opts InputOptions

	pmu     sync.Mutex
	parsers map[tp]parser
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
	conn, err := connOpts(cfg.Brokers, cfg.ClientID, cfg.TLS, cfg.SASL)
	if err != nil {
		return nil, err
	}
	in := &Input{opts: opts, parsers: map[tp]parser{}}
	in.c, err = newGroupConsumer(conn, groupSettings{
		name: fmt.Sprintf("kafka input %q", opts.Name), group: cfg.Group, topics: cfg.Topics, latest: cfg.Start == "latest",
		maxPending: cmp.Or(cfg.MaxPending, 10000), revokeWait: cmp.Or(cfg.RevokeWait, 10*time.Second),
		sessionTimeout: cfg.SessionTimeout, interval: cmp.Or(opts.CommitInterval, 500*time.Millisecond),
		durable: opts.Durable, log: opts.Logger.With("input", opts.Name),
		decode: in.decode, deliver: in.deliver,
		forget: func(k tp) {
			in.pmu.Lock()
			delete(in.parsers, k)
			in.pmu.Unlock()
		},
	}, opts.ClientOpts...)
	if err != nil {
		return nil, err
	}
	return in, nil
}

// Run reads records until ctx ends or the handler fails; offsets are
// committed beside it. Close makes the final commit once the pipeline has
// stopped.
func (in *Input) Run(ctx context.Context) error { return in.c.run(ctx) }

// Close commits what settled and leaves the group.
func (in *Input) Close(ctx context.Context) error { return in.c.close(ctx) }

// Commit commits the settled offsets now.
func (in *Input) Commit(ctx context.Context) error { return in.c.commit(ctx) }

// Ready reports why the input is not consuming as a group member, or nil.
func (in *Input) Ready() error { return in.c.ready() }

// Stats returns the assigned partitions' progress, sorted.
func (in *Input) Stats() []PartitionStats {
	st := in.c.stats()
	for i := range st {
		st[i].Consumer = in.opts.Name
	}
	return st
}

// Name is the input's name.
func (in *Input) Name() string { return in.opts.Name }

// Counts returns the records read and the malformed ones.
func (in *Input) Counts() (records, rejected uint64) {
	return in.c.records.Load(), in.c.rejected.Load()
}

func (in *Input) decode(key tp, r *kgo.Record) (any, bool, error) {
	in.pmu.Lock()
	ps := in.parsers[key]
	if ps == nil {
		ps = in.newParser()
		in.parsers[key] = ps
	}
	in.pmu.Unlock()
	ev, ok, err := parseRecord(ps, in.opts.Format, r.Value)
	return ev, ok, err
}

func (in *Input) deliver(ctx context.Context, key tp, epoch uint64, r *kgo.Record, item any) error {
	ev := item.(stackprint.Event)
	ev.Source = in.opts.Name
	ev.File = key.String()
	ev.Offset = r.Offset + 1
	ev.Ident = identPrefix + strconv.FormatUint(epoch, 10)
	return in.opts.Handler(ctx, ev)
}

// Settled is the pipeline's OnSettled for this input's events (Owns); an
// event of a partition no longer assigned (or assigned again since) is
// ignored: its new owner replays it.
func (in *Input) Settled(ev stackprint.Event) {
	topic, part, ok := splitTP(ev.File)
	epoch, err := strconv.ParseUint(strings.TrimPrefix(ev.Ident, identPrefix), 10, 64)
	if !ok || err != nil {
		return
	}
	in.c.settle(tp{topic, part}, epoch, ev.Offset-1)
}

// Owns reports whether ev was read by this input.
func (in *Input) Owns(ev stackprint.Event) bool { return ev.Source == in.opts.Name && IsKafkaEvent(ev) }

// IsKafkaEvent reports whether ev came from a Kafka input (its Ident).
func IsKafkaEvent(ev stackprint.Event) bool { return strings.HasPrefix(ev.Ident, identPrefix) }

const identPrefix = "kafka:"

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
