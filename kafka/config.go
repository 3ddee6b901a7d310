package kafka

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Input formats: the JSON that Zeek's Kafka writer sends (one log record per
// message, optionally tagged {"ssl": {...}}) and Suricata EVE lines as
// Filebeat, Vector or Logstash forward them.
const (
	FormatZeekJSON = "zeek-json"
	FormatEVE      = "eve"
)

// TLSConfig is how the client authenticates the brokers and itself.
type TLSConfig struct {
	CA                 string `yaml:"ca"`   // PEM bundle; "" = the system roots
	Cert               string `yaml:"cert"` // client certificate (PEM), with key
	Key                string `yaml:"key"`
	ServerName         string `yaml:"server_name"` // "" = the broker's host name
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig is the SASL login: PLAIN (only over TLS in production),
// SCRAM-SHA-256 or SCRAM-SHA-512.
type SASLConfig struct {
	Mechanism    string `yaml:"mechanism"`
	User         string `yaml:"user"`
	Password     string `yaml:"password"`      // ${VAR} is expanded by the config loader
	PasswordFile string `yaml:"password_file"` // read at start; trailing newline dropped
}

// InputConfig is inputs[].kafka: where to consume sensor events from.
type InputConfig struct {
	Brokers  []string    `yaml:"brokers"`
	ClientID string      `yaml:"client_id"`
	TLS      *TLSConfig  `yaml:"tls"`
	SASL     *SASLConfig `yaml:"sasl"`
	Topics   []string    `yaml:"topics"`
	Group    string      `yaml:"group"`
	// Start is where a group with no committed offset begins: "earliest"
	// (default: nothing produced before the first start is skipped) or
	// "latest".
	Start string `yaml:"start"`
	// MaxPending bounds the records read but not settled; past it the
	// input stops fetching (Kafka keeps the rest). 0 = 10000.
	MaxPending int `yaml:"max_pending"`
	// RevokeWait is how long a revoked partition waits for its events to
	// settle before its offset is committed and it is handed over; what
	// is still unsettled then is replayed by the new owner. 0 = 10s.
	RevokeWait time.Duration `yaml:"revoke_wait"`
	// SessionTimeout is how long the group waits for a silent member
	// (a crashed instance) before its partitions move. 0 = 45s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
}

// OutputConfig is outputs.kafka: alerts and fingerprint records produced
// to topics, keyed by the server (ip:port).
type OutputConfig struct {
	Brokers           []string    `yaml:"brokers"`
	ClientID          string      `yaml:"client_id"`
	TLS               *TLSConfig  `yaml:"tls"`
	SASL              *SASLConfig `yaml:"sasl"`
	AlertsTopic       string      `yaml:"alerts_topic"`
	FingerprintsTopic string      `yaml:"fingerprints_topic"`
	// AlertsFormat is the JSON of an alert: ndjson (default), ecs or eve,
	// as outputs.alerts_format.
	AlertsFormat string `yaml:"alerts_format"`
}

// FieldError is one invalid setting, named by its path under the prefix
// given to Validate; the config loader adds the file:line.
type FieldError struct {
	Field  string
	Value  any
	Reason string
}

func (e FieldError) Error() string { return fmt.Sprintf("%s: %s (got %v)", e.Field, e.Reason, e.Value) }

// Validate checks an input's settings; format is the input's format.
func (c *InputConfig) Validate(prefix, format string) []FieldError {
	errs := validateConn(prefix, c.Brokers, c.TLS, c.SASL)
	bad := func(f string, v any, why string) { errs = append(errs, FieldError{prefix + "." + f, v, why}) }
	if len(c.Topics) == 0 {
		bad("topics", "[]", "at least one topic is required")
	}
	for i, t := range c.Topics {
		if err := validTopic(t); err != "" {
			bad(fmt.Sprintf("topics[%d]", i), t, err)
		}
	}
	if c.Group == "" {
		bad("group", `""`, "required: the instances sharing the work join one consumer group")
	}
	switch c.Start {
	case "", "earliest", "latest":
	default:
		bad("start", c.Start, `must be "earliest" or "latest"`)
	}
	if c.MaxPending < 0 || c.MaxPending > 1_000_000 {
		bad("max_pending", c.MaxPending, "must be 0..1000000 (0 = 10000)")
	}
	if c.RevokeWait < 0 {
		bad("revoke_wait", c.RevokeWait, "must not be negative (0 = 10s)")
	}
	if c.SessionTimeout != 0 && (c.SessionTimeout < time.Second || c.SessionTimeout > 30*time.Minute) {
		bad("session_timeout", c.SessionTimeout, "must be 1s..30m (0 = 45s; the broker may narrow it further)")
	}
	switch format {
	case FormatZeekJSON, FormatEVE:
	default:
		errs = append(errs, FieldError{strings.TrimSuffix(prefix, ".kafka") + ".format", format,
			`a Kafka input must be "zeek-json" (Zeek's Kafka writer) or "eve"`})
	}
	return errs
}

// Validate checks the output's settings.
func (c *OutputConfig) Validate(prefix string) []FieldError {
	errs := validateConn(prefix, c.Brokers, c.TLS, c.SASL)
	bad := func(f string, v any, why string) { errs = append(errs, FieldError{prefix + "." + f, v, why}) }
	if c.AlertsTopic == "" && c.FingerprintsTopic == "" {
		bad("alerts_topic", `""`, "set alerts_topic, fingerprints_topic or both")
	}
	for f, t := range map[string]string{"alerts_topic": c.AlertsTopic, "fingerprints_topic": c.FingerprintsTopic} {
		if t == "" {
			continue
		}
		if err := validTopic(t); err != "" {
			bad(f, t, err)
		}
	}
	switch c.AlertsFormat {
	case "", "ndjson", "ecs", "eve":
	default:
		bad("alerts_format", c.AlertsFormat, "must be ndjson, ecs or eve")
	}
	return errs
}

func validateConn(prefix string, brokers []string, t *TLSConfig, s *SASLConfig) []FieldError {
	var errs []FieldError
	bad := func(f string, v any, why string) { errs = append(errs, FieldError{prefix + "." + f, v, why}) }
	if len(brokers) == 0 {
		bad("brokers", "[]", "at least one broker host:port is required")
	}
	for i, b := range brokers {
		if h, p, err := net.SplitHostPort(b); err != nil || h == "" || p == "" {
			bad(fmt.Sprintf("brokers[%d]", i), b, "must be host:port")
		}
	}
	if t != nil {
		if (t.Cert == "") != (t.Key == "") {
			bad("tls", fmt.Sprintf("cert=%q key=%q", t.Cert, t.Key), "cert and key go together")
		}
		for f, p := range map[string]string{"tls.ca": t.CA, "tls.cert": t.Cert, "tls.key": t.Key} {
			if p == "" {
				continue
			}
			if _, err := os.Stat(p); err != nil {
				bad(f, p, "cannot read: "+err.Error())
			}
		}
	}
	if s != nil {
		switch strings.ToUpper(s.Mechanism) {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			bad("sasl.mechanism", s.Mechanism, "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		if s.User == "" {
			bad("sasl.user", `""`, "required")
		}
		if (s.Password == "") == (s.PasswordFile == "") {
			bad("sasl.password", "", "set exactly one of password and password_file")
		}
		if s.PasswordFile != "" {
			if _, err := os.Stat(s.PasswordFile); err != nil {
				bad("sasl.password_file", s.PasswordFile, "cannot read: "+err.Error())
			}
		}
	}
	return errs
}

// validTopic returns why t is not a Kafka topic name, or "".
func validTopic(t string) string {
	if t == "" || t == "." || t == ".." {
		return "not a topic name"
	}
	if len(t) > 249 {
		return "longer than 249 characters"
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "a topic name has only ASCII letters, digits, '.', '_' and '-'"
		}
	}
	return ""
}

// connOpts are the client options of the brokers, TLS and SASL settings.
func connOpts(brokers []string, clientID string, t *TLSConfig, s *SASLConfig) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(cmp.Or(clientID, "stackprint"))}
	if t != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // an explicit, documented operator choice
		if t.CA != "" {
			pem, err := os.ReadFile(t.CA)
			if err != nil {
				return nil, fmt.Errorf("kafka tls.ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka tls.ca %s: no PEM certificate in it", t.CA)
			}
		}
		if t.Cert != "" {
			c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
			if err != nil {
				return nil, fmt.Errorf("kafka tls.cert/key: %w", err)
			}
			tc.Certificates = []tls.Certificate{c}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s != nil {
		pass := s.Password
		if s.PasswordFile != "" {
			b, err := os.ReadFile(s.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("kafka sasl.password_file: %w", err)
			}
			pass = strings.TrimRight(string(b), "\r\n")
		}
		switch strings.ToUpper(s.Mechanism) {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.User, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.User, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.User, Pass: pass}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("kafka sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
		}
	}
	return opts, nil
}
