package config

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/stackprint/stackprint/configs"
	"github.com/stackprint/stackprint/enrich"
)

func TestEmbeddedDefaultIsTheShippedFileAndValid(t *testing.T) {
	onDisk, err := os.ReadFile("../configs/stackprint.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != string(configs.DefaultYAML) {
		t.Fatal("embedded default differs from configs/stackprint.yaml")
	}
	cfg, err := Load("")
	if err != nil {
		t.Fatalf("embedded default: %v", err)
	}
	if len(cfg.Inputs) != 3 || cfg.Probe.JARMSNI != "ip" || len(cfg.Scope.Allow) != 0 {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestEveryKeyIsDocumented(t *testing.T) {
	// Each YAML key in the default file must have a comment somewhere above
	// it within its block; cheap check: the file has more comment lines than keys.
	lines := strings.Split(string(configs.DefaultYAML), "\n")
	var comments, keys int
	for _, l := range lines {
		s := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(s, "#"):
			comments++
		case strings.Contains(s, ":") && !strings.HasPrefix(s, "-"):
			keys++
		}
	}
	if comments < keys {
		t.Fatalf("%d comment lines for %d keys: document every key", comments, keys)
	}
}

func TestConfigErrors(t *testing.T) {
	base := string(configs.DefaultYAML)
	tests := []struct {
		name  string
		edit  func(string) string
		wants []string
	}{
		{"unknown key", func(s string) string { return strings.Replace(s, "  ttl: 24h", "  ttl: 24h\n  tll: 1h", 1) }, []string{`unknown key "dedup.tll"`, "config:"}},
		{"bad duration", func(s string) string { return strings.Replace(s, "io_timeout: 5s", "io_timeout: fast", 1) }, []string{`"fast" is not a duration with a unit`, ": probe.io_timeout: "}},
		{"bad number", func(s string) string { return strings.Replace(s, "queue_size: 10000", "queue_size: ten", 1) }, []string{`"ten" is not a whole number`}},
		{"bad format", func(s string) string { return strings.Replace(s, "format: eve", "format: syslog", 1) }, []string{"inputs[2].format", "syslog"}},
		{"bad prefix", func(s string) string { return strings.Replace(s, "allow: []", "allow: [10.0.0.0/33]", 1) }, []string{"scope.allow[0]", "10.0.0.0/33"}},
		{"several at once", func(s string) string {
			s = strings.Replace(s, "max_in_flight: 256", "max_in_flight: 0", 1)
			return strings.Replace(s, "jarm_sni: ip", "jarm_sni: sometimes", 1)
		}, []string{"scheduler.max_in_flight", "probe.jarm_sni", "sometimes"}},
		{"zero lock timeout", func(s string) string { return strings.Replace(s, "lock_timeout: 2s", "lock_timeout: 0s", 1) }, []string{"db.lock_timeout", "wait forever"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.edit(base)))
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestShortConfigTakesTheRestFromTheDefault(t *testing.T) {
	cfg, err := Parse([]byte("inputs:\n  - name: ssl\n    path: /tmp/x/ssl.log\n    format: zeek\nscope:\n  allow: [127.0.0.0/8]\n"))
	if err != nil {
		t.Fatalf("short config refused: %v", err)
	}
	if len(cfg.Inputs) != 1 || cfg.Inputs[0].Name != "ssl" {
		t.Fatalf("inputs %+v: the file's list must replace the default one", cfg.Inputs)
	}
	if cfg.Probe.JARMSNI != "ip" || cfg.Dedup.TTL == 0 || cfg.Tailer.MaxLineBytes == 0 || len(cfg.Scope.Allow) != 1 {
		t.Fatalf("defaults not filled in: %+v", cfg)
	}
	if _, err := Parse([]byte("")); err != nil {
		t.Fatalf("empty file = the default: %v", err)
	}
}

// The adversarial pass's reproduction: a deny written as an IPv4-mapped
// prefix passed `config check` and then matched nothing.
func TestScopeDenyInMappedFormMatches(t *testing.T) {
	cfg, err := Parse([]byte("scope:\n  allow: [10.0.0.0/8]\n  deny: [\"::ffff:10.1.0.0/112\", \"::ffff:10.9.9.9\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := enrich.NewScope(ParsePrefixes(cfg.Scope.Allow), ParsePrefixes(cfg.Scope.Deny), nil)
	for addr, want := range map[string]bool{"10.1.2.3": false, "::ffff:10.1.2.4": false, "10.9.9.9": false, "::ffff:10.9.9.9": false, "10.2.0.1": true} {
		if got, why := s.Check(netip.AddrPortFrom(netip.MustParseAddr(addr), 443)); got != want {
			t.Errorf("Check(%s) = %v (%s), want %v", addr, got, why, want)
		}
	}
	for _, bad := range []string{"::/0", "::/64", "fe80::1%eth0"} {
		_, err := Parse([]byte("scope:\n  deny: [\"" + bad + "\"]\n"))
		if err == nil || !strings.Contains(err.Error(), "scope.deny[0]") {
			t.Errorf("deny %s: error %v, want one naming scope.deny[0]", bad, err)
		}
	}
}

func TestKafkaInputAndClusterConfig(t *testing.T) {
	good := "inputs:\n  - name: zk\n    format: zeek-json\n    kafka:\n      brokers: [127.0.0.1:9092]\n      topics: [zeek-ssl]\n      group: stackprint\n" +
		"kafka:\n  output:\n    brokers: [127.0.0.1:9092]\n    alerts_topic: stackprint.alerts\n  cluster:\n    brokers: [127.0.0.1:9092]\n"
	cfg, err := Parse([]byte(good))
	if err != nil {
		t.Fatalf("valid Kafka config refused: %v", err)
	}
	if cfg.Inputs[0].Kafka == nil || cfg.Inputs[0].Kafka.Group != "stackprint" || cfg.Kafka.Output.AlertsTopic != "stackprint.alerts" || cfg.Kafka.Cluster == nil {
		t.Fatalf("parsed %+v", cfg.Inputs[0])
	}
	bad := "inputs:\n  - name: zk\n    format: zeek\n    path: /x.log\n    kafka:\n      brokers: [nohost]\n      topics: [zeek-ssl]\n" +
		"kafka:\n  cluster:\n    brokers: [127.0.0.1:9092]\n    requests_topic: \"bad topic\"\n"
	_, err = Parse([]byte(bad))
	if err == nil {
		t.Fatal("bad Kafka config accepted")
	}
	for _, w := range []string{"config:4: inputs[0].path", "config:6: inputs[0].kafka.brokers[0]", "inputs[0].kafka.group", "config:3: inputs[0].format", "zeek-json", "config:11: kafka.cluster.requests_topic"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}
