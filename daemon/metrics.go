package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/internal/buildinfo"
	"github.com/stackprint/stackprint/observe"
)

// metrics holds the instruments updated as things happen; everything that
// is a snapshot of a component's counters is read at scrape time by
// daemonCollector instead, so the components carry no Prometheus code.
type metrics struct {
	reg           *prometheus.Registry
	probes        *prometheus.CounterVec
	probeDuration prometheus.Histogram
	probeConns    prometheus.Histogram
	matches       *prometheus.CounterVec
	alerts        *prometheus.CounterVec
	reloads       *prometheus.CounterVec
	outputErrors  *prometheus.CounterVec
	reload        reloadState // the config loaded at start counts as a successful load
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stackprint_probes_total", Help: "Targets probed, by result status.",
		}, []string{"status"}),
		probeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stackprint_probe_duration_seconds", Help: "Wall time to fingerprint one target.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 15, 30},
		}),
		probeConns: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stackprint_probe_connections", Help: "TCP connections opened per target.",
			Buckets: []float64{0, 1, 2, 5, 10, 11, 12, 15, 21, 22, 25},
		}),
		// Not by label: every imported label would be a series.
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stackprint_matches_total", Help: "Fingerprint DB matches, by fingerprint kind and entry confidence.",
		}, []string{"kind", "confidence"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stackprint_alerts_total", Help: "Alerts written, by rule and severity.",
		}, []string{"rule", "severity"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stackprint_config_reloads_total", Help: "SIGHUP reloads, by result (ok or error).",
		}, []string{"result"}),
	}
	m.outputErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stackprint_output_write_errors_total", Help: "Failed output writes (each rolled back and retried), by output.",
	}, []string{"output"})
	for _, o := range []string{"alerts", "alert_log", "eve", "fingerprints", "feed"} {
		m.outputErrors.WithLabelValues(o)
	}
	m.reg.MustRegister(m.outputErrors)
	m.reg.MustRegister(m.probes, m.probeDuration, m.probeConns, m.matches, m.alerts, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&daemonCollector{d: d}, buildInfoCollector(), &healthCollector{d: d}, &kafkaCollector{d: d})
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	m.reload.ok, m.reload.success = true, time.Now()
	return m
}

// measuredProber observes every probe result.
type measuredProber struct {
	inner enrich.Prober
	m     *metrics
}

func (p measuredProber) ProbeWith(ctx context.Context, t stackprint.Target, sni string, o stackprint.ProbeOptions) stackprint.Result {
	r := p.inner.ProbeWith(ctx, t, sni, o)
	p.m.probes.WithLabelValues(string(r.Status)).Inc()
	p.m.probeDuration.Observe(r.Duration.Seconds())
	p.m.probeConns.Observe(float64(r.Conns))
	return r
}

// measuredSink counts matches and alerts as they are written, by the
// pipeline or a retro-hunt.
type measuredSink struct {
	inner observe.Sink
	m     *metrics
}

func (s measuredSink) Sync() error { return s.inner.Sync() }

func (s measuredSink) Record(ev stackprint.Event, r stackprint.Result, ms []stackprint.Match) error {
	if err := s.inner.Record(ev, r, ms); err != nil {
		return err
	}
	for _, x := range stackprint.ExactMatches(ms) {
		s.m.matches.WithLabelValues(x.Kind, x.Confidence).Inc()
	}
	return nil
}

func (s measuredSink) Alert(a stackprint.Alert) error {
	if err := s.inner.Alert(a); err != nil {
		return err
	}
	s.m.alerts.WithLabelValues(a.Rule, a.Severity).Inc()
	return nil
}

// daemonCollector turns the components' counters into metrics at scrape
// time.
type daemonCollector struct{ d *Daemon }

var (
	descLines       = prometheus.NewDesc("stackprint_lines_read_total", "Log lines read, by input.", []string{"input"}, nil)
	descParseErrors = prometheus.NewDesc("stackprint_parse_errors_total", "Malformed log lines skipped, by input.", []string{"input"}, nil)
	descLongLines   = prometheus.NewDesc("stackprint_long_lines_total", "Lines over tailer.max_line_bytes skipped, by input.", []string{"input"}, nil)
	descInvalidSNI  = prometheus.NewDesc("stackprint_invalid_sni_total", "Events whose server name was not a host name (RFC 6066), kept without it, by input.", []string{"input"}, nil)
	descRotations   = prometheus.NewDesc("stackprint_rotations_total", "Rotations followed, by input.", []string{"input"}, nil)
	descEvents      = prometheus.NewDesc("stackprint_events_total", "TLS events by final outcome: deduped (judged from the cache), probed (judged with the probe it waited for), out_of_scope, invalid, expired (waited past scheduler.max_wait).", []string{"outcome"}, nil)
	descWaiting     = prometheus.NewDesc("stackprint_events_waiting", "Events waiting for a probe, in memory or in the backlog on disk.", []string{"where"}, nil)
	descSpilled     = prometheus.NewDesc("stackprint_events_spilled_total", "Events moved to the backlog on disk because memory was full.", nil, nil)
	descBacklogFull = prometheus.NewDesc("stackprint_backlog_full", "1 while the backlog is at scheduler.backlog_max and the inputs are paused.", nil, nil)
	descUnits       = prometheus.NewDesc("stackprint_probes_started_total", "Probes started, by level: server (JARM, ATSF and the first name) or name (certificate and HTTP of one more SNI).", []string{"level"}, nil)
	descQueue       = prometheus.NewDesc("stackprint_queue_depth", "Probes waiting for their turn.", nil, nil)
	descInFlight    = prometheus.NewDesc("stackprint_probes_in_flight", "Targets being probed now.", nil, nil)
	descCacheSize   = prometheus.NewDesc("stackprint_dedup_cache_size", "Targets in the dedup LRU.", nil, nil)
	descCacheHits   = prometheus.NewDesc("stackprint_dedup_cache_hits_total", "Events judged from the dedup cache.", nil, nil)
	descCacheEvict  = prometheus.NewDesc("stackprint_dedup_cache_evictions_total", "Targets evicted from the dedup LRU (capacity or TTL).", nil, nil)
	descAbandoned   = prometheus.NewDesc("stackprint_probes_abandoned_total", "Probes cut short by shutdown (their events resume after restart).", nil, nil)
	descUnsettled   = prometheus.NewDesc("stackprint_events_unsettled", "Events read but neither judged nor parked.", nil, nil)
	descCkptLag     = prometheus.NewDesc("stackprint_checkpoint_lag_bytes", "Bytes of an input's current file past its committed checkpoint.", []string{"input"}, nil)
	descDegraded    = prometheus.NewDesc("stackprint_output_degraded", "1 while a failed output write is being retried (checkpoints wait), else 0.", nil, nil)
	descDBSize      = prometheus.NewDesc("stackprint_db_size_bytes", "Size of the bbolt file.", nil, nil)
	descWatched     = prometheus.NewDesc("stackprint_watch_servers", "Servers on the watch list.", nil, nil)
	descWatchProbes = prometheus.NewDesc("stackprint_watch_probes_total", "Probes of watched servers filed, by result: ok (answered) or failed.", []string{"result"}, nil)
)

func (c *daemonCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLines, descParseErrors, descLongLines, descInvalidSNI, descRotations, descEvents, descWaiting,
		descSpilled, descBacklogFull, descUnits, descQueue,
		descInFlight, descCacheSize, descCacheHits, descCacheEvict, descAbandoned, descUnsettled,
		descCkptLag, descDBSize, descDegraded, descWatched, descWatchProbes} {
		ch <- d
	}
}

func (c *daemonCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	for i, t := range d.tailers {
		name := d.tnames[i]
		st := t.Stats()
		counter(descLines, st.Lines, name)
		counter(descParseErrors, st.ParseErrors, name)
		counter(descLongLines, st.LongLines, name)
		counter(descInvalidSNI, st.InvalidSNI, name)
		counter(descRotations, st.Rotations, name)
	}
	ps := d.pipe.Stats()
	for outcome, v := range map[string]uint64{
		"deduped": ps.Deduped, "probed": ps.Probed, "out_of_scope": ps.OutOfScope,
		"invalid": ps.Invalid, "expired": ps.Expired,
	} {
		counter(descEvents, v, outcome)
	}
	gauge(descWaiting, float64(ps.Waiting), "memory")
	gauge(descWaiting, float64(ps.Spilled), "disk")
	counter(descSpilled, ps.SpilledTotal)
	full := 0.0
	if ps.BacklogFull {
		full = 1
	}
	gauge(descBacklogFull, full)
	counter(descUnits, ps.ServerProbes, "server")
	counter(descUnits, ps.NameProbes, "name")
	gauge(descQueue, float64(ps.QueueDepth))
	gauge(descInFlight, float64(ps.InFlight))
	gauge(descCacheSize, float64(ps.CacheLen))
	counter(descCacheHits, ps.Deduped)
	counter(descCacheEvict, ps.Evictions)
	counter(descAbandoned, ps.Abandoned)
	gauge(descUnsettled, float64(d.ledger.Unsettled()))
	ws := d.watch.Stats()
	gauge(descWatched, float64(ws.Watched))
	counter(descWatchProbes, ws.Probes-ws.Fail, "ok")
	counter(descWatchProbes, ws.Fail, "failed")
	lag := map[string]int64{}
	for _, pos := range d.ledger.Committed() {
		if fi, err := os.Stat(pos.File); err == nil {
			lag[pos.Input] += max(0, fi.Size()-pos.Offset)
		}
	}
	for in, v := range lag {
		gauge(descCkptLag, float64(v), in)
	}
	degraded := 0.0
	if d.sink.Degraded() != nil {
		degraded = 1
	}
	gauge(descDegraded, degraded)
	if fi, err := os.Stat(d.cfg.DB.Path); err == nil {
		gauge(descDBSize, float64(fi.Size()))
	}
}

// BuildInfo is the running binary's version, commit and Go version
// (internal/buildinfo: the linker's values, else what Go recorded).
func BuildInfo() (version, commit, goVersion string) {
	in := buildinfo.Get()
	return in.Version, in.Commit, in.GoVersion
}

// serveHTTP serves /metrics, /healthz and /readyz on addr until ctx ends.
func (d *Daemon) serveHTTP(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second}))
	if d.cfg.Metrics.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := d.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		// Degraded is not unready for the watchdog (a restart would not free
		// the disk), but a probe should see it.
		if err := d.sink.Degraded(); err != nil {
			http.Error(w, "degraded: an output write is failing and being retried, checkpoints wait: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("metrics and health listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}

// Metrics is the daemon's registry, as /metrics serves it.
func (d *Daemon) Metrics() prometheus.Gatherer { return d.metrics.reg }
