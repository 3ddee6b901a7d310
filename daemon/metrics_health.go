package daemon

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
)

// buildInfoCollector is stackprint_build_info in the Prometheus convention
// (version, revision, branch, goversion, goos, goarch, tags), from
// prometheus/common/version: the revision comes from the VCS stamp Go puts
// in the binary. The version is the module's when no -ldflags set it.
func buildInfoCollector() prometheus.Collector {
	var opts []versioncollector.Option
	if version.Version == "" {
		v, _, _ := BuildInfo()
		opts = append(opts, versioncollector.WithExtraConstLabels(prometheus.Labels{"version": v}))
	}
	return versioncollector.NewCollector("stackprint", opts...)
}

// reloadState backs the config reload gauges, named like Prometheus's own.
type reloadState struct {
	mu      sync.Mutex
	ok      bool
	success time.Time
}

// reloaded records a SIGHUP reload's outcome.
func (m *metrics) reloaded(ok bool) {
	result := "error"
	if ok {
		result = "ok"
	}
	m.reloads.WithLabelValues(result).Inc()
	m.reload.mu.Lock()
	defer m.reload.mu.Unlock()
	m.reload.ok = ok
	if ok {
		m.reload.success = time.Now()
	}
}

// healthCollector exports what an operator alerts on: inputs gone quiet,
// reloads that failed, writes the pipeline gave up on. (Events no longer
// drop waiters since the scheduler rewrite: they wait or expire, counted in
// stackprint_events_total.)
type healthCollector struct{ d *Daemon }

var (
	descLastEvent  = prometheus.NewDesc("stackprint_input_last_event_timestamp_seconds", "When the input last handed an event to the pipeline (Unix time); absent before the first.", []string{"input"}, nil)
	descReloadOK   = prometheus.NewDesc("stackprint_config_last_reload_successful", "1 when the last config load (start or SIGHUP) succeeded, else 0.", nil, nil)
	descReloadTS   = prometheus.NewDesc("stackprint_config_last_reload_success_timestamp_seconds", "When the config was last loaded successfully (Unix time).", nil, nil)
	descSinkErrors = prometheus.NewDesc("stackprint_pipeline_sink_errors_total", "Records and alerts the pipeline could not write (the event is replayed at the next start).", nil, nil)
)

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLastEvent, descReloadOK, descReloadTS, descSinkErrors} {
		ch <- d
	}
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	for i, t := range d.tailers {
		if last := t.LastEvent(); !last.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastEvent, prometheus.GaugeValue, float64(last.UnixNano())/1e9, d.tnames[i])
		}
	}
	r := &d.metrics.reload
	r.mu.Lock()
	ok, ts := 0.0, float64(r.success.UnixNano())/1e9
	if r.ok {
		ok = 1
	}
	r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descReloadOK, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(descReloadTS, prometheus.GaugeValue, ts)
	ps := d.pipe.Stats()
	ch <- prometheus.MustNewConstMetric(descSinkErrors, prometheus.CounterValue, float64(ps.SinkErrors))
}
