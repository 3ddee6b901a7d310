package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/kafka"
	"github.com/stackprint/stackprint/observe"
	"github.com/stackprint/stackprint/probe"
)

// kafkaParts are the daemon's Kafka components (README "Many sensors"):
// consumer-group inputs, the output, shared probing and the DB sync. All
// nil when the config has none.
type kafkaParts struct {
	inputs []*kafka.Input
	out    *kafka.Output
	shared *kafka.Shared
	dbsync *kafka.DBSync
	closed bool
}

// newKafkaOutput and newShared build the parts New needs before the
// pipeline; the inputs are added by addKafkaInput.
func (d *Daemon) newKafkaParts(cfg *config.Config, pcfg probe.EngineConfig) error {
	k := &kafkaParts{}
	d.kafka = k
	var err error
	if cfg.Kafka.Output != nil {
		if k.out, err = kafka.NewOutput(*cfg.Kafka.Output); err != nil {
			return err
		}
	}
	if cl := cfg.Kafka.Cluster; cl != nil {
		// The probes this instance makes for the cluster keep the per-IP
		// politeness in the engine: every probe of an IP is made here.
		pcfg.ConnRate = cmp.Or(cfg.Probe.ConnsPerIPPerSecond, probe.DefaultConnRate)
		local, err := probe.NewEngine(pcfg)
		if err != nil {
			return fmt.Errorf("probe engine for shared probing: %w", err)
		}
		host, _ := os.Hostname()
		if k.shared, err = kafka.NewShared(*cl, kafka.SharedOptions{
			Local: local, Deadline: cfg.Probe.Deadline, Allowed: cfg.Scope.NewScope().Check, TTL: cfg.Dedup.TTL, NegativeTTL: cfg.Dedup.NegativeTTL,
			MaxInFlight: min(cfg.Scheduler.MaxInFlight, 64), Capacity: cfg.Dedup.Capacity,
			Instance: host + "/" + strconv.Itoa(os.Getpid()), Logger: d.log,
		}); err != nil {
			return err
		}
		if k.dbsync, err = kafka.NewDBSync(*cl, d.db, d.log); err != nil {
			return err
		}
	}
	return nil
}

// outputs is the sink the pipeline writes to: the files, and Kafka when
// configured.
func (d *Daemon) outputs() observe.Sink {
	if d.kafka.out == nil {
		return d.sink
	}
	return teeSink{d.sink, d.kafka.out}
}

// prober is the shared prober when the cluster is configured.
func (d *Daemon) prober(local enrich.Prober) enrich.Prober {
	if d.kafka.shared == nil {
		return local
	}
	return d.kafka.shared
}

// addKafkaInput builds a consumer-group input.
func (d *Daemon) addKafkaInput(in config.InputConfig) error {
	ki, err := kafka.NewInput(*in.Kafka, kafka.InputOptions{
		Name: in.Name, Format: in.Format, Durable: d.syncOutputs, Logger: d.log,
		Handler: func(ctx context.Context, ev stackprint.Event) error {
			if err := d.pipe.WaitRoom(ctx); err != nil {
				return err
			}
			return d.pipe.Handle(ctx, ev)
		},
	})
	if err != nil {
		return fmt.Errorf("input %q: %w", in.Name, err)
	}
	d.kafka.inputs = append(d.kafka.inputs, ki)
	return nil
}

// settled routes the pipeline's OnSettled: Kafka events to their input's
// partition ledger, the others to the file ledger.
func (d *Daemon) settled(ev stackprint.Event) {
	if kafka.IsKafkaEvent(ev) {
		for _, in := range d.kafka.inputs {
			if in.Owns(ev) {
				in.Settled(ev)
				return
			}
		}
		return
	}
	d.ledger.Settled(ev)
}

// spill refuses Kafka events: Kafka keeps them (max_pending bounds what
// is read ahead), so nothing of a partition lives only in this DB.
func (d *Daemon) spill(ev stackprint.Event) bool {
	if kafka.IsKafkaEvent(ev) {
		return false
	}
	return d.ledger.Spill(ev)
}

// closeKafka makes the inputs' final commits (after the pipeline has
// stopped), leaves the groups and flushes the output.
func (d *Daemon) closeKafka(ctx context.Context) error {
	k := d.kafka
	if k == nil || k.closed {
		return nil
	}
	k.closed = true
	var errs []error
	for _, in := range k.inputs {
		errs = append(errs, in.Close(ctx))
	}
	if k.shared != nil {
		errs = append(errs, k.shared.Close(ctx))
	}
	if k.dbsync != nil {
		k.dbsync.Close()
	}
	if k.out != nil {
		errs = append(errs, k.out.Close())
	}
	return errors.Join(errs...)
}

// kafkaReady is nil when every consumer is a group member (and the
// shared state was loaded).
func (d *Daemon) kafkaReady() error {
	if d.kafka == nil {
		return nil
	}
	for _, in := range d.kafka.inputs {
		if err := in.Ready(); err != nil {
			return err
		}
	}
	if d.kafka.shared != nil {
		if err := d.kafka.shared.Ready(); err != nil {
			return err
		}
	}
	if d.kafka.dbsync != nil {
		select {
		case <-d.kafka.dbsync.Loaded():
		default:
			return errors.New("kafka fingerprint sync: topic not loaded yet")
		}
	}
	return nil
}

// retroOnApplied runs a retro-hunt for a record another instance added:
// the observations this instance recorded are here.
func (d *Daemon) retroOnApplied(r db.Record) {
	if n, err := d.observe.RetroHunt([]db.Key{r.Key()}); err != nil {
		d.log.Warn("retro-hunt for a synced fingerprint", "kind", r.Kind, "value", r.Value, "err", err)
	} else if n > 0 {
		d.log.Info("retro-hunt alerts for a fingerprint added on another instance", "kind", r.Kind, "alerts", n)
	}
}

// teeSink writes to the files first, then to Kafka.
type teeSink struct {
	files observe.Sink
	kafka *kafka.Output
}

func (t teeSink) Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error {
	if err := t.files.Record(ev, r, m); err != nil {
		return err
	}
	return t.kafka.Record(ev, r, m)
}

func (t teeSink) Alert(a stackprint.Alert) error {
	if err := t.files.Alert(a); err != nil {
		return err
	}
	return t.kafka.Alert(a)
}

func (t teeSink) Sync() error {
	if err := t.files.Sync(); err != nil {
		return err
	}
	return t.kafka.Sync()
}

// kafkaCollector exports the partitions' progress at scrape time.
type kafkaCollector struct{ d *Daemon }

var (
	descKafkaCommitted = prometheus.NewDesc("stackprint_kafka_committed_offset", "Committed offset of an assigned partition, by consumer (input name or probe worker), topic and partition.", []string{"consumer", "topic", "partition"}, nil)
	descKafkaLag       = prometheus.NewDesc("stackprint_kafka_lag", "Records of an assigned partition past its committed offset.", []string{"consumer", "topic", "partition"}, nil)
	descKafkaPending   = prometheus.NewDesc("stackprint_kafka_pending", "Records of an assigned partition read and not settled yet.", []string{"consumer", "topic", "partition"}, nil)
	descKafkaMember    = prometheus.NewDesc("stackprint_kafka_group_member", "1 while the consumer is a member of its group.", []string{"consumer"}, nil)
	descKafkaShared    = prometheus.NewDesc("stackprint_kafka_shared_probes_total", "Shared probing: requests sent, answered from observations (hit), probed here for the cluster (owned), requests already answered (skipped).", []string{"what"}, nil)
	descKafkaDB        = prometheus.NewDesc("stackprint_kafka_fingerprints_synced_total", "Fingerprint DB changes applied from and published to the cluster's topic.", []string{"direction"}, nil)
)

func (c *kafkaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descKafkaCommitted, descKafkaLag, descKafkaPending, descKafkaMember, descKafkaShared, descKafkaDB} {
		ch <- d
	}
}

func (c *kafkaCollector) Collect(ch chan<- prometheus.Metric) {
	k := c.d.kafka
	if k == nil {
		return
	}
	parts := func(ps []kafka.PartitionStats) {
		for _, p := range ps {
			lv := []string{p.Consumer, p.Topic, strconv.Itoa(int(p.Partition))}
			if p.Committed >= 0 {
				ch <- prometheus.MustNewConstMetric(descKafkaCommitted, prometheus.GaugeValue, float64(p.Committed), lv...)
			}
			if p.Lag >= 0 {
				ch <- prometheus.MustNewConstMetric(descKafkaLag, prometheus.GaugeValue, float64(p.Lag), lv...)
			}
			ch <- prometheus.MustNewConstMetric(descKafkaPending, prometheus.GaugeValue, float64(p.Pending), lv...)
		}
	}
	member := func(name string, err error) {
		v := 0.0
		if err == nil {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descKafkaMember, prometheus.GaugeValue, v, name)
	}
	for _, in := range k.inputs {
		parts(in.Stats())
		member(in.Name(), in.Ready())
	}
	if k.shared != nil {
		st := k.shared.Stats()
		parts(st.Partitions)
		member("kafka probe worker", k.shared.Ready())
		for what, n := range map[string]uint64{"requested": st.Requests, "hit": st.Hits, "owned": st.Owned, "skipped": st.OwnedSkipped} {
			ch <- prometheus.MustNewConstMetric(descKafkaShared, prometheus.CounterValue, float64(n), what)
		}
	}
	if k.dbsync != nil {
		a, p := k.dbsync.Counts()
		ch <- prometheus.MustNewConstMetric(descKafkaDB, prometheus.CounterValue, float64(a), "applied")
		ch <- prometheus.MustNewConstMetric(descKafkaDB, prometheus.CounterValue, float64(p), "published")
	}
}
