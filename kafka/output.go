package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/output"
)

// Output produces alerts and fingerprint records to Kafka topics, keyed by
// the server (ip:port) so one server's records stay in order on one
// partition. The values are the JSON lines of the file outputs.
//
// The producer is idempotent (franz-go's default, acks=all): a retried
// produce is written once. A replay after a crash produces the replayed
// alerts again with the same alert_id, as the file outputs do. Sync waits
// until everything produced is acknowledged; the ledgers call it before
// committing a position, so a committed input position never covers a
// record the brokers do not hold.
type Output struct {
	cfg    OutputConfig
	cl     *kgo.Client
	alerts func(stackprint.Alert) ([]byte, error)

	failed   atomic.Pointer[error] // first produce error: Sync returns it
	produced atomic.Uint64
	mu       sync.Mutex // Sync calls one at a time

	bmu sync.Mutex
	cur *batch // records produced since the last Sync began
}

// batch counts the records produced between two Syncs: a Sync waits for
// the acknowledgements of what was produced before it, not for records
// the pipeline keeps producing meanwhile (kgo's Flush would).
type batch struct{ wg sync.WaitGroup }

// NewOutput connects the producer.
func NewOutput(cfg OutputConfig, extra ...kgo.Opt) (*Output, error) {
	m, err := output.AlertMarshaler(output.AlertFormat(cfg.AlertsFormat))
	if err != nil {
		return nil, fmt.Errorf("kafka output: %w", err)
	}
	co, err := connOpts(cfg.Brokers, cfg.ClientID, cfg.TLS, cfg.SASL)
	if err != nil {
		return nil, err
	}
	co = append(co, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))
	co = append(co, extra...)
	cl, err := kgo.NewClient(co...)
	if err != nil {
		return nil, fmt.Errorf("kafka output: %w", err)
	}
	return &Output{cfg: cfg, cl: cl, alerts: m, cur: &batch{}}, nil
}

// Alert produces a to the alerts topic (a no-op when none is set).
func (o *Output) Alert(a stackprint.Alert) error {
	if o.cfg.AlertsTopic == "" {
		return nil
	}
	b, err := o.alerts(a)
	if err != nil {
		return err
	}
	return o.produce(o.cfg.AlertsTopic, a.Event.Target().Addr().String(), b)
}

// Record produces a fingerprint record to the fingerprints topic.
func (o *Output) Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error {
	if o.cfg.FingerprintsTopic == "" {
		return nil
	}
	b, err := output.MarshalFingerprint(ev, r, m)
	if err != nil {
		return fmt.Errorf("kafka output: record of %s: %w", r.Target, err)
	}
	return o.produce(o.cfg.FingerprintsTopic, r.Target.Addr().String(), bytes.TrimSuffix(b, []byte("\n")))
}

func (o *Output) produce(topic, key string, v []byte) error {
	if p := o.failed.Load(); p != nil {
		return *p
	}
	o.bmu.Lock()
	b := o.cur
	b.wg.Add(1)
	o.bmu.Unlock()
	o.cl.Produce(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: v}, func(_ *kgo.Record, err error) {
		defer b.wg.Done()
		if err != nil {
			err = fmt.Errorf("kafka output: produce to %s: %w", topic, err)
			o.failed.CompareAndSwap(nil, &err)
			return
		}
		o.produced.Add(1)
	})
	return nil
}

// Sync waits until every record produced before it is acknowledged.
func (o *Output) Sync() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bmu.Lock()
	b := o.cur
	o.cur = &batch{}
	o.bmu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return errors.New("kafka output: records not acknowledged within 2m")
	}
	if p := o.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Produced counts the acknowledged records.
func (o *Output) Produced() uint64 { return o.produced.Load() }

// Close flushes and disconnects.
func (o *Output) Close() error {
	err := o.Sync()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = errors.Join(err, o.cl.Flush(ctx))
	o.cl.Close()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
