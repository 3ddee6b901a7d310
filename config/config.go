package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/configs"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/kafka"
	"github.com/stackprint/stackprint/probe"
)

// Config mirrors configs/stackprint.yaml; every key is documented there.
type Config struct {
	DB        DBConfig        `yaml:"db"`
	Inputs    []InputConfig   `yaml:"inputs"`
	Tailer    TailerConfig    `yaml:"tailer"`
	Scope     ScopeConfig     `yaml:"scope"`
	Dedup     DedupConfig     `yaml:"dedup"`
	Scheduler SchedulerConfig `yaml:"scheduler"`
	Probe     ProbeConfig     `yaml:"probe"`
	Outputs   OutputsConfig   `yaml:"outputs"`
	Rules     RulesConfig     `yaml:"rules"`
	Watch     WatchConfig     `yaml:"watch"`
	Log       LogConfig       `yaml:"log"`
	Daemon    DaemonConfig    `yaml:"daemon"`
	Metrics   MetricsConfig   `yaml:"metrics"`
	Kafka     KafkaConfig     `yaml:"kafka"`
}

// KafkaConfig is the Kafka output and the cluster of instances that share
// probing and the fingerprint DB (package kafka); both off when absent.
type KafkaConfig struct {
	Output  *kafka.OutputConfig  `yaml:"output"`
	Cluster *kafka.ClusterConfig `yaml:"cluster"`
}

type DaemonConfig struct {
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

type MetricsConfig struct {
	Listen string `yaml:"listen"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the same listener
	// (heap profiles for the memory benchmark).
	Pprof bool `yaml:"pprof"`
}

type DBConfig struct {
	Path        string        `yaml:"path"`
	LockTimeout time.Duration `yaml:"lock_timeout"`
	AdminSocket string        `yaml:"admin_socket"` // "" = admin.sock next to Path (AdminSocketPath)
	RetroWindow time.Duration `yaml:"retro_window"` // 0 = no retro-hunts
	// ObservationsMax bounds the observations kept (the most recently
	// probed stay); 0 = no count bound, only the age bound.
	ObservationsMax int `yaml:"observations_max"`
}

type InputConfig struct {
	Name       string            `yaml:"name"`
	Path       string            `yaml:"path"`
	Format     string            `yaml:"format"`
	Archives   []string          `yaml:"archives"`
	FieldNames map[string]string `yaml:"field_names"`
	// Kafka makes the input a consumer of Kafka topics instead of a file
	// (path then stays empty; format is zeek-json or eve).
	Kafka *kafka.InputConfig `yaml:"kafka"`
}

type TailerConfig struct {
	PollInterval  time.Duration `yaml:"poll_interval"`
	MaxLineBytes  int           `yaml:"max_line_bytes"`
	FromEnd       bool          `yaml:"from_end"`
	RotateWait    time.Duration `yaml:"rotate_wait"`
	MaxCatchUpAge time.Duration `yaml:"max_catchup_age"`
}

type ScopeConfig struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
	Ports []int    `yaml:"ports"`
}

type DedupConfig struct {
	TTL         time.Duration `yaml:"ttl"`
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	Capacity    int           `yaml:"capacity"`
	// HotResults is how many full probe results stay in memory; the
	// others are read back from the result file beside the DB.
	HotResults int `yaml:"hot_results"`
}

type SchedulerConfig struct {
	QueueSize       int     `yaml:"queue_size"`
	MaxInFlight     int     `yaml:"max_in_flight"`
	ProbesPerSecond float64 `yaml:"probes_per_second"`
	Burst           int     `yaml:"burst"`
	// Added with the fair scheduler; 0 means the default.
	BacklogMax int           `yaml:"backlog_max"`
	MaxWait    time.Duration `yaml:"max_wait"`
}

type ProbeConfig struct {
	IOTimeout time.Duration `yaml:"io_timeout"`
	Deadline  time.Duration `yaml:"deadline"`
	JARMSNI   string        `yaml:"jarm_sni"`
	// Added with the probe engine; absent or 0 means the probe package's
	// default, so configs written before them stay valid.
	Kinds               []string `yaml:"kinds"`
	ConnsPerIPPerSecond float64  `yaml:"conns_per_ip_per_second"`
	ConnsPerIPBurst     int      `yaml:"conns_per_ip_burst"`
	MaxConnsPerTarget   int      `yaml:"max_conns_per_target"`
	ReadCap             int      `yaml:"read_cap"`
	ATSFPerName         bool     `yaml:"atsf_per_name"`
	// Wait for the HTTP answer's head after GET /; 0 = the probe default.
	HTTPWait time.Duration `yaml:"http_wait"`
	// Ports whose connections are upgraded with STARTTLS before every
	// handshake (port: protocol); absent = the standard ports, {} = none.
	StartTLSPorts map[uint16]string `yaml:"starttls_ports"`
}

// OutputsConfig: each output is off when its path is "" (validate in
// outputs.go). It has the fields of output.SinkConfig, so the daemon
// converts it with output.SinkConfig(cfg.Outputs).
type OutputsConfig struct {
	Alerts            string        `yaml:"alerts"`
	AlertsFormat      string        `yaml:"alerts_format"`
	Fingerprints      string        `yaml:"fingerprints"`
	AlertLog          string        `yaml:"alert_log"`
	ZeekFormat        string        `yaml:"zeek_format"`
	RotateInterval    time.Duration `yaml:"rotate_interval"`
	RotateSize        int64         `yaml:"rotate_size"`
	EVE               string        `yaml:"eve"`
	ZeekIntel         string        `yaml:"zeek_intel"`
	ZeekIntelDoNotice bool          `yaml:"zeek_intel_do_notice"`
	SuricataDataset   string        `yaml:"suricata_dataset"`
}

// RulesConfig selects and tunes the alert rules (validate and Options in
// rules.go).
type RulesConfig struct {
	Files            []string                  `yaml:"files"`
	DisableBuiltin   bool                      `yaml:"disable_builtin"`
	Disabled         []string                  `yaml:"disabled"`
	Params           map[string]map[string]any `yaml:"params"`
	Suppress         map[string]time.Duration  `yaml:"suppress"`
	Simulation       bool                      `yaml:"simulation"`
	Baselines        []BaselineConfig          `yaml:"baselines"`
	SuppressCapacity int                       `yaml:"suppress_capacity"`
}

// BaselineConfig is the recorded fingerprint of one monitored own server.
type BaselineConfig struct {
	Server     string `yaml:"server"`
	SNI        string `yaml:"sni"`
	JARM       string `yaml:"jarm"`
	ATSF       string `yaml:"atsf"`
	CertSHA256 string `yaml:"cert_sha256"`
}

type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// FieldError names the config key at fault, the value and the reason, and
// where the key was set (file:line) when known.
type FieldError struct {
	Field  string
	Value  any
	Reason string
	Pos    string
}

func (e *FieldError) Error() string {
	msg := fmt.Sprintf("%s: %s (got %v)", e.Field, e.Reason, e.Value)
	if e.Pos != "" {
		msg = e.Pos + ": " + msg
	}
	return msg
}

// Load reads the embedded default, then path and the drop-ins in
// path's conf.d directory over it (Sources). An empty path means the
// embedded default alone. `run`, a reload and `config check` all load
// through here, so what check accepts is what run accepts.
func Load(path string) (*Config, error) {
	srcs, err := Sources(path)
	if err != nil {
		return nil, err
	}
	return ParseSources(srcs)
}

// Parse decodes data over the embedded default, strictly (unknown
// keys are errors), and validates.
func Parse(data []byte) (*Config, error) {
	return ParseSources([]Source{{"embedded default config", configs.DefaultYAML}, {"config", data}})
}

// yamlWants says what a value of a Go type looks like, for type errors.
var yamlWants = map[string]string{
	"time.Duration": "a duration with a unit, like 250ms, 5s or 24h",
	"int":           "a whole number", "int64": "a whole number", "float64": "a number", "bool": "true or false",
	"[]string": "a list, like [a, b]", "[]int": "a list of numbers, like [443, 8443]",
}

var reBadValue = regexp.MustCompile("cannot unmarshal !!\\w+ `([^`]*)` into (\\S+)")

// friendlyYAMLMessage rewrites a decoder message in the config's terms.
func friendlyYAMLMessage(m string) string {
	return reBadValue.ReplaceAllStringFunc(m, func(s string) string {
		sub := reBadValue.FindStringSubmatch(s)
		want := yamlWants[sub[2]]
		if want == "" {
			want = "a " + strings.TrimPrefix(sub[2], "config.")
		}
		return fmt.Sprintf("%q is not %s", sub[1], want)
	})
}

// Validate checks every field and reports all problems at once.
func (c *Config) Validate() error { return errors.Join(c.validate()...) }

// Upper bounds: values past them cost memory or time no sensor needs and
// would fail at run time, so check refuses them.
const (
	maxQueueSize        = 1_000_000
	maxDedupCapacity    = 10_000_000
	maxLineBytesLimit   = 64 << 20
	maxProbesPerSecond  = 10_000
	maxReadCap          = 16 << 20
	maxConnsPerTarget   = 1000
	maxSuppressCapacity = 10_000_000
)

func (c *Config) validate() []error {
	var errs []error
	bad := func(field string, v any, reason string) {
		errs = append(errs, &FieldError{Field: field, Value: v, Reason: reason})
	}
	if c.DB.Path == "" {
		bad("db.path", `""`, "required")
	}
	if c.DB.LockTimeout <= 0 {
		bad("db.lock_timeout", c.DB.LockTimeout, "must be > 0 (0 would wait forever for the lock)")
	}
	if c.DB.ObservationsMax < 0 {
		bad("db.observations_max", c.DB.ObservationsMax, "must be >= 0 (0 = bounded by age only)")
	}
	if c.DB.RetroWindow < 0 {
		bad("db.retro_window", c.DB.RetroWindow, "must be >= 0 (0 turns retro-hunts off)")
	}
	if n := len(c.DB.AdminSocketPath()); n > MaxUnixPath {
		bad("db.admin_socket", c.DB.AdminSocketPath(), fmt.Sprintf("%d bytes; unix socket paths are limited to %d", n, MaxUnixPath))
	}
	if len(c.Inputs) == 0 {
		bad("inputs", "[]", "at least one input is required")
	}
	names := map[string]bool{}
	for i, in := range c.Inputs {
		f := fmt.Sprintf("inputs[%d]", i)
		if in.Name == "" {
			bad(f+".name", `""`, "required")
		} else if names[in.Name] {
			bad(f+".name", in.Name, "duplicate input name")
		}
		names[in.Name] = true
		if in.Kafka != nil {
			if in.Path != "" {
				bad(f+".path", in.Path, "a Kafka input reads topics, not a file: remove path or kafka")
			}
			for _, e := range in.Kafka.Validate(f+".kafka", in.Format) {
				bad(e.Field, e.Value, e.Reason)
			}
			continue
		}
		if in.Path == "" {
			bad(f+".path", `""`, "required")
		}
		if in.Format != "zeek" && in.Format != "eve" {
			bad(f+".format", in.Format, `must be "zeek" or "eve" (zeek-json is for a Kafka input)`)
		}
	}
	if c.Kafka.Output != nil {
		for _, e := range c.Kafka.Output.Validate("kafka.output") {
			bad(e.Field, e.Value, e.Reason)
		}
	}
	if c.Kafka.Cluster != nil {
		cl := *c.Kafka.Cluster
		cl.Defaults()
		for _, e := range cl.Validate("kafka.cluster") {
			bad(e.Field, e.Value, e.Reason)
		}
	}
	if c.Tailer.PollInterval <= 0 {
		bad("tailer.poll_interval", c.Tailer.PollInterval, "must be > 0")
	}
	if c.Tailer.RotateWait < 0 {
		bad("tailer.rotate_wait", c.Tailer.RotateWait, "must be >= 0 (0 = the default, 2s)")
	}
	if c.Tailer.MaxCatchUpAge < 0 {
		bad("tailer.max_catchup_age", c.Tailer.MaxCatchUpAge, "must be >= 0 (0 = the default, 7 days)")
	}
	if c.Tailer.MaxLineBytes < 1024 || c.Tailer.MaxLineBytes > maxLineBytesLimit {
		bad("tailer.max_line_bytes", c.Tailer.MaxLineBytes, fmt.Sprintf("must be 1024..%d", maxLineBytesLimit))
	}
	for i, s := range c.Scope.Allow {
		if _, err := parsePrefix(s); err != nil {
			bad(fmt.Sprintf("scope.allow[%d]", i), s, err.Error())
		}
	}
	for i, s := range c.Scope.Deny {
		if _, err := parsePrefix(s); err != nil {
			bad(fmt.Sprintf("scope.deny[%d]", i), s, err.Error())
		}
	}
	for i, p := range c.Scope.Ports {
		if p < 1 || p > 65535 {
			bad(fmt.Sprintf("scope.ports[%d]", i), p, "must be 1..65535")
		}
	}
	if c.Dedup.TTL <= 0 {
		bad("dedup.ttl", c.Dedup.TTL, "must be > 0")
	}
	if c.Dedup.NegativeTTL <= 0 {
		bad("dedup.negative_ttl", c.Dedup.NegativeTTL, "must be > 0")
	}
	if c.Dedup.Capacity < 1 || c.Dedup.Capacity > maxDedupCapacity {
		bad("dedup.capacity", c.Dedup.Capacity, fmt.Sprintf("must be 1..%d", maxDedupCapacity))
	}
	if c.Dedup.HotResults < 1 || c.Dedup.HotResults > maxDedupCapacity {
		bad("dedup.hot_results", c.Dedup.HotResults, fmt.Sprintf("must be 1..%d", maxDedupCapacity))
	}
	if c.Scheduler.QueueSize < 1 || c.Scheduler.QueueSize > maxQueueSize {
		bad("scheduler.queue_size", c.Scheduler.QueueSize, fmt.Sprintf("must be 1..%d (events held in memory; the rest wait in the DB file)", maxQueueSize))
	}
	if c.Scheduler.BacklogMax < 0 {
		bad("scheduler.backlog_max", c.Scheduler.BacklogMax, "must not be negative (0 = default)")
	}
	if c.Scheduler.MaxWait < 0 {
		bad("scheduler.max_wait", c.Scheduler.MaxWait, "must not be negative (0 = default)")
	}
	if c.Scheduler.MaxInFlight < 1 || c.Scheduler.MaxInFlight > 1024 {
		bad("scheduler.max_in_flight", c.Scheduler.MaxInFlight, "must be 1..1024")
	}
	if c.Scheduler.ProbesPerSecond <= 0 || c.Scheduler.ProbesPerSecond > maxProbesPerSecond {
		bad("scheduler.probes_per_second", c.Scheduler.ProbesPerSecond, fmt.Sprintf("must be > 0 and <= %d", maxProbesPerSecond))
	}
	if c.Scheduler.Burst < 1 {
		bad("scheduler.burst", c.Scheduler.Burst, "must be >= 1")
	}
	for port, p := range c.Probe.StartTLSPorts {
		if !stackprint.IsStartTLSProtocol(p) {
			bad(fmt.Sprintf("probe.starttls_ports.%d", port), p, "want one of "+strings.Join(stackprint.StartTLSProtocols(), ", "))
		}
	}
	if c.Probe.HTTPWait < 0 {
		bad("probe.http_wait", c.Probe.HTTPWait, "must not be negative (0 = default)")
	}
	if c.Probe.IOTimeout <= 0 {
		bad("probe.io_timeout", c.Probe.IOTimeout, "must be > 0")
	}
	if c.Probe.Deadline <= 0 {
		bad("probe.deadline", c.Probe.Deadline, "must be > 0")
	}
	if c.Probe.JARMSNI != "ip" && c.Probe.JARMSNI != "observed" {
		bad("probe.jarm_sni", c.Probe.JARMSNI, `must be "ip" or "observed"`)
	}
	if c.Probe.Kinds != nil {
		if _, err := probe.ParseKinds(c.Probe.Kinds); err != nil {
			bad("probe.kinds", c.Probe.Kinds, err.Error())
		}
	}
	if c.Probe.ConnsPerIPPerSecond < 0 || c.Probe.ConnsPerIPBurst < 0 || c.Probe.MaxConnsPerTarget < 0 || c.Probe.ReadCap < 0 {
		bad("probe", fmt.Sprintf("conns_per_ip_per_second=%v conns_per_ip_burst=%d max_conns_per_target=%d read_cap=%d",
			c.Probe.ConnsPerIPPerSecond, c.Probe.ConnsPerIPBurst, c.Probe.MaxConnsPerTarget, c.Probe.ReadCap), "limits must not be negative (0 = default)")
	}
	if c.Probe.ReadCap > 0 && (c.Probe.ReadCap < 16<<10 || c.Probe.ReadCap > maxReadCap) {
		bad("probe.read_cap", c.Probe.ReadCap, fmt.Sprintf("must be 16384 (one TLS record)..%d", maxReadCap))
	}
	if c.Probe.MaxConnsPerTarget > maxConnsPerTarget {
		bad("probe.max_conns_per_target", c.Probe.MaxConnsPerTarget, fmt.Sprintf("must be <= %d", maxConnsPerTarget))
	}
	kindsOK := c.Probe.Kinds == nil
	if !kindsOK {
		_, err := probe.ParseKinds(c.Probe.Kinds)
		kindsOK = err == nil
	}
	if kindsOK && c.Probe.ConnsPerIPBurst >= 0 && c.Probe.MaxConnsPerTarget >= 0 {
		// The engine's own start-up checks (burst vs connections per target).
		if _, err := probe.NewEngine(c.ProbeEngineConfig()); err != nil {
			field := "probe"
			if strings.Contains(err.Error(), "burst") {
				field = "probe.conns_per_ip_burst"
			}
			bad(field, c.Probe.ConnsPerIPBurst, strings.TrimPrefix(err.Error(), "probe: "))
		}
	}
	errs = append(errs, c.Outputs.validate()...)
	errs = append(errs, c.Rules.validate()...)
	errs = append(errs, c.Watch.validate()...)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", c.Log.Level, "must be debug, info, warn or error")
	}
	if c.Daemon.ShutdownTimeout <= 0 {
		bad("daemon.shutdown_timeout", c.Daemon.ShutdownTimeout, "must be > 0")
	}
	if c.Metrics.Listen != "" {
		if host, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen", c.Metrics.Listen, "must be host:port or empty")
		} else if _, err := netip.ParseAddr(host); err != nil {
			bad("metrics.listen", c.Metrics.Listen, "host must be an IP address (default 127.0.0.1)")
		}
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", c.Log.Format, `must be "text" or "json"`)
	}
	for _, p := range c.paths() {
		if strings.ContainsRune(p.value, 0) {
			bad(p.field, strconv.Quote(p.value), "a path cannot contain a NUL byte")
		}
	}
	return errs
}

// paths lists every file path of the config with its field.
func (c *Config) paths() []struct{ field, value string } {
	type fp = struct{ field, value string }
	out := []fp{{"db.path", c.DB.Path}, {"db.admin_socket", c.DB.AdminSocket},
		{"outputs.alerts", c.Outputs.Alerts}, {"outputs.fingerprints", c.Outputs.Fingerprints},
		{"outputs.alert_log", c.Outputs.AlertLog}, {"outputs.eve", c.Outputs.EVE},
		{"outputs.zeek_intel", c.Outputs.ZeekIntel}, {"outputs.suricata_dataset", c.Outputs.SuricataDataset}}
	for i, in := range c.Inputs {
		out = append(out, fp{fmt.Sprintf("inputs[%d].path", i), in.Path})
		for j, a := range in.Archives {
			out = append(out, fp{fmt.Sprintf("inputs[%d].archives[%d]", i, j), a})
		}
	}
	for i, f := range c.Rules.Files {
		out = append(out, fp{fmt.Sprintf("rules.files[%d]", i), f})
	}
	return out
}

// ProbeEngineConfig is the probe engine's part of the config; validate
// builds the engine from it too, so every check the engine makes at start
// is made by `config check`.
func (c *Config) ProbeEngineConfig() probe.EngineConfig {
	return probe.EngineConfig{
		Kinds:     c.Probe.Kinds,
		IOTimeout: c.Probe.IOTimeout,
		Deadline:  c.Probe.Deadline,
		ConnRate:  c.Probe.ConnsPerIPPerSecond,
		ConnBurst: c.Probe.ConnsPerIPBurst,
		MaxConns:  c.Probe.MaxConnsPerTarget,
		ReadCap:   c.Probe.ReadCap,
		HTTPWait:  c.Probe.HTTPWait,
		// nil (absent) means the standard ports.
		StartTLSPorts: c.Probe.StartTLSPorts,
	}
}

// parsePrefix accepts a CIDR prefix or a bare address (a /32 or /128), in
// the form the scope checks: IPv4-mapped ones become IPv4 (enrich.NormalizePrefix).
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR prefix")
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an address or CIDR prefix")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("an address with a zone cannot be matched; drop %%%s", a.Zone())
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return enrich.NormalizePrefix(p)
}

// ParsePrefixes parses validated prefixes (invalid ones are left out:
// Validate reports them).
func ParsePrefixes(ss []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		if p, err := parsePrefix(s); err == nil { // validated already
			out = append(out, p)
		}
	}
	return out
}

// NewScope is the probe scope the config selects; the daemon and `db
// learn` both build it here.
func (s ScopeConfig) NewScope() *enrich.Scope {
	ports := make([]uint16, len(s.Ports))
	for i, p := range s.Ports {
		ports[i] = uint16(p)
	}
	return enrich.NewScope(ParsePrefixes(s.Allow), ParsePrefixes(s.Deny), ports)
}

const (
	// adminSocketName is the admin socket's name next to the DB by default.
	adminSocketName = "admin.sock"
	// MaxUnixPath is the longest socket path Linux accepts (sun_path less NUL).
	MaxUnixPath = 107
)

// AdminSocketPath is db.admin_socket, or admin.sock in db.path's directory.
func (c DBConfig) AdminSocketPath() string {
	if c.AdminSocket != "" {
		return c.AdminSocket
	}
	return filepath.Join(filepath.Dir(c.Path), adminSocketName)
}
