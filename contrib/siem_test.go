package contrib

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint/output"
)

// writeAlerts writes the fixture alerts through the output package in
// format and returns the lines, each decoded.
func writeAlerts(t *testing.T, format output.AlertFormat) (lines []string, docs []map[string]any) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alerts."+string(format))
	w, err := output.OpenAlertWriter(path, format)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range fixtureAlerts() {
		if err := w.Write(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		var doc map[string]any
		if err := d.Decode(&doc); err != nil {
			t.Fatalf("%s: line %q: %v", path, line, err)
		}
		lines, docs = append(lines, line), append(docs, doc)
	}
	if len(docs) != len(fixtureAlerts()) {
		t.Fatalf("%d alert lines, want %d", len(docs), len(fixtureAlerts()))
	}
	return lines, docs
}

// leaves flattens a decoded JSON document into dotted paths and their
// values; array elements share their array's path.
func leaves(prefix string, v any, out map[string][]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			leaves(p, c, out)
		}
	case []any:
		for _, c := range x {
			leaves(prefix, c, out)
		}
		if len(x) == 0 {
			out[prefix] = append(out[prefix], x)
		}
	default:
		out[prefix] = append(out[prefix], v)
	}
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// mappingFields flattens Elasticsearch mapping properties into dotted
// field -> type, and records which objects are nested.
func mappingFields(prefix string, props map[string]any, out map[string]string) {
	for name, raw := range props {
		spec := raw.(map[string]any)
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		if sub, ok := spec["properties"].(map[string]any); ok {
			if typ, ok := spec["type"].(string); ok {
				out[path] = typ // "nested" or "object"
			}
			mappingFields(path, sub, out)
			continue
		}
		out[path], _ = spec["type"].(string)
	}
}

// ecsFields are the ECS 8.17 fields (name -> type, from the ECS field
// reference) that the ECS output and the ingest pipeline may use. A field
// outside stackprint.* that is not here is not ECS.
var ecsFields = map[string]string{
	"@timestamp": "date", "ecs.version": "keyword", "message": "match_only_text", "tags": "keyword",
	"error.message": "match_only_text",
	"event.id":      "keyword", "event.kind": "keyword", "event.category": "keyword", "event.type": "keyword",
	"event.severity": "long", "event.created": "date", "event.start": "date", "event.ingested": "date",
	"event.module": "keyword", "event.dataset": "keyword", "event.provider": "keyword", "event.original": "keyword",
	"rule.id": "keyword", "rule.name": "keyword", "rule.description": "keyword", "rule.category": "keyword",
	"rule.ruleset": "keyword",
	"source.ip":    "ip", "source.port": "long", "destination.ip": "ip", "destination.port": "long",
	"destination.domain": "keyword", "network.transport": "keyword", "network.protocol": "keyword",
	"related.ip": "ip", "related.hash": "keyword", "related.hosts": "keyword",
	"tls.client.server_name": "keyword", "tls.server.hash.sha256": "keyword", "tls.server.hash.sha1": "keyword",
	"tls.server.subject": "keyword", "tls.server.issuer": "keyword", "tls.server.not_before": "date",
	"tls.server.not_after": "date", "tls.server.x509.subject.distinguished_name": "keyword",
	"tls.server.x509.issuer.distinguished_name": "keyword", "tls.server.x509.serial_number": "keyword",
	"tls.server.x509.not_before": "date", "tls.server.x509.not_after": "date",
	"tls.server.x509.alternative_names": "keyword", "tls.server.x509.public_key_algorithm": "keyword",
	"tls.server.x509.public_key_size": "long", "tls.server.x509.signature_algorithm": "keyword",
	"threat.indicator.type": "keyword", "threat.indicator.name": "keyword", "threat.indicator.description": "keyword",
	"threat.indicator.provider": "keyword", "threat.indicator.confidence": "keyword", "threat.feed.name": "keyword",
	"threat.enrichments":                "nested",
	"threat.enrichments.indicator.type": "keyword", "threat.enrichments.indicator.name": "keyword",
	"threat.enrichments.indicator.description": "keyword", "threat.enrichments.indicator.provider": "keyword",
	"threat.enrichments.indicator.confidence": "keyword", "threat.enrichments.matched.atomic": "keyword",
	"threat.enrichments.matched.field": "keyword", "threat.enrichments.matched.id": "keyword",
	"threat.enrichments.matched.type": "keyword", "threat.enrichments.matched.occurred": "date",
}

// pipelineFields are the fields the ingest pipeline adds; every other
// mapped field is one the ECS output writes.
var pipelineFields = []string{"event.ingested", "error.message"}

// TestElasticsearchTemplate: the index template maps exactly the fields
// the ECS output writes (plus the two the pipeline adds), each with a type
// its values fit, and every field outside stackprint.* is an ECS field of
// the ECS type.
func TestElasticsearchTemplate(t *testing.T) {
	var tmpl struct {
		IndexPatterns []string `json:"index_patterns"`
		Template      struct {
			Settings map[string]any `json:"settings"`
			Mappings struct {
				Dynamic    any            `json:"dynamic"`
				Properties map[string]any `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	readJSONFile(t, "siem/elasticsearch/index-template.json", &tmpl)
	if len(tmpl.IndexPatterns) == 0 {
		t.Fatal("index template: no index_patterns")
	}
	if p := tmpl.Template.Settings["index"].(map[string]any)["default_pipeline"]; p != "stackprint-alerts" {
		t.Errorf("default_pipeline = %v, want stackprint-alerts", p)
	}
	mapped := map[string]string{}
	mappingFields("", tmpl.Template.Mappings.Properties, mapped)

	_, docs := writeAlerts(t, output.AlertECS)
	written := map[string][]any{}
	for _, d := range docs {
		leaves("", d, written)
	}

	for f, vals := range written {
		typ, ok := mapped[f]
		if !ok {
			t.Errorf("ECS output writes %s (e.g. %v); the index template does not map it", f, vals[0])
			continue
		}
		for _, v := range vals {
			if err := fitsType(typ, v); err != "" {
				t.Errorf("%s: value %v does not fit mapping type %s: %s", f, v, typ, err)
			}
		}
	}
	for f, typ := range mapped {
		if typ == "nested" || typ == "object" {
			continue
		}
		if _, ok := written[f]; !ok && !slices.Contains(pipelineFields, f) {
			t.Errorf("index template maps %s, which the ECS output never writes", f)
		}
	}
	for f, typ := range mapped {
		if strings.HasPrefix(f, "stackprint.") || f == "stackprint" {
			continue
		}
		want, ok := ecsFields[f]
		if !ok {
			if typ == "object" || typ == "" {
				continue
			}
			t.Errorf("%s is outside stackprint.* but not an ECS field", f)
			continue
		}
		if typ != want {
			t.Errorf("%s mapped as %s; ECS says %s", f, typ, want)
		}
	}
	if mapped["threat.enrichments"] != "nested" {
		t.Errorf("threat.enrichments mapped as %q; ECS says nested", mapped["threat.enrichments"])
	}
}

// fitsType reports why a decoded JSON value cannot be indexed as typ ("" if
// it can).
func fitsType(typ string, v any) string {
	switch typ {
	case "keyword", "match_only_text", "text":
		if _, ok := v.(string); !ok {
			return "not a string"
		}
	case "date":
		s, ok := v.(string)
		if !ok {
			return "not a string"
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return err.Error()
		}
	case "ip":
		s, ok := v.(string)
		if !ok {
			return "not a string"
		}
		if _, err := netip.ParseAddr(s); err != nil {
			return err.Error()
		}
	case "long", "unsigned_long":
		n, ok := v.(json.Number)
		if !ok {
			return "not a number"
		}
		if strings.ContainsAny(n.String(), ".eE") || (typ == "unsigned_long" && strings.HasPrefix(n.String(), "-")) {
			return "not an integer of that kind"
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return "not a boolean"
		}
	default:
		return "unexpected mapping type"
	}
	return ""
}

// TestElasticsearchPipeline runs the ingest pipeline's processors (the four
// kinds it uses, with Elasticsearch's semantics) on each real ECS line
// shipped raw as "message", as Filebeat or Elastic Agent send it: the result
// is the alert itself plus event.ingested, every field of it mapped.
func TestElasticsearchPipeline(t *testing.T) {
	var pipe struct {
		Processors []map[string]map[string]any `json:"processors"`
		OnFailure  []map[string]map[string]any `json:"on_failure"`
	}
	readJSONFile(t, "siem/elasticsearch/ingest-pipeline.json", &pipe)
	var tmpl struct {
		Template struct {
			Mappings struct {
				Properties map[string]any `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	readJSONFile(t, "siem/elasticsearch/index-template.json", &tmpl)
	mapped := map[string]string{}
	mappingFields("", tmpl.Template.Mappings.Properties, mapped)

	lines, docs := writeAlerts(t, output.AlertECS)
	for i, line := range lines {
		// What a shipper sends: the line in message, plus its own fields.
		doc := map[string]any{"message": line, "@timestamp": "2030-01-01T00:00:00Z", "log": map[string]any{"offset": json.Number("0")}}
		for _, p := range pipe.Processors {
			for kind, o := range p {
				if cond, _ := o["if"].(string); cond != "" && !pipelineCond(t, cond, doc) {
					continue
				}
				switch kind {
				case "rename":
					v, ok := getPath(doc, o["field"].(string))
					if !ok {
						t.Fatalf("rename: %s missing", o["field"])
					}
					delPath(doc, o["field"].(string))
					setPath(doc, o["target_field"].(string), v)
				case "json":
					src, _ := getPath(doc, o["field"].(string))
					d := json.NewDecoder(strings.NewReader(src.(string)))
					d.UseNumber()
					var parsed map[string]any
					if err := d.Decode(&parsed); err != nil {
						t.Fatalf("json processor: %v", err)
					}
					if o["add_to_root"] != true {
						t.Fatal("json processor: expected add_to_root")
					}
					maps.Copy(doc, parsed) // merge: the alert's fields win, shipper fields stay
				case "remove":
					delPath(doc, o["field"].(string))
				case "set":
					setPath(doc, o["field"].(string), "2030-01-01T00:00:01Z")
				default:
					t.Fatalf("processor %s: not simulated by this test; extend it", kind)
				}
			}
		}
		got := map[string][]any{}
		leaves("", doc, got)
		want := map[string][]any{}
		leaves("", docs[i], want)
		for f := range want {
			if _, ok := got[f]; !ok {
				t.Errorf("line %d: %s lost by the pipeline", i, f)
			}
		}
		for f := range got {
			if _, ok := mapped[f]; !ok && f != "log.offset" {
				t.Errorf("line %d: pipeline output has %s, not mapped", i, f)
			}
			if _, ok := want[f]; !ok && !slices.Contains(pipelineFields, f) && f != "log.offset" {
				t.Errorf("line %d: pipeline adds %s", i, f)
			}
		}
		if got["@timestamp"][0] != want["@timestamp"][0] {
			t.Errorf("line %d: @timestamp %v, want the alert's %v", i, got["@timestamp"][0], want["@timestamp"][0])
		}
	}
	for _, p := range pipe.OnFailure {
		for _, o := range p {
			if f := o["field"].(string); !slices.Contains(pipelineFields, f) {
				t.Errorf("on_failure sets %s, not in the pipeline's declared fields", f)
			}
		}
	}
}

// pipelineCond evaluates the two painless conditions the pipeline uses.
func pipelineCond(t *testing.T, cond string, doc map[string]any) bool {
	switch cond {
	case "ctx.message instanceof String && ctx.message.startsWith('{') && ctx.event?.kind == null":
		m, ok := doc["message"].(string)
		_, hasKind := getPath(doc, "event.kind")
		return ok && strings.HasPrefix(m, "{") && !hasKind
	case "ctx.event?.original instanceof String":
		v, ok := getPath(doc, "event.original")
		_, isStr := v.(string)
		return ok && isStr
	}
	t.Fatalf("condition %q: not simulated by this test; extend it", cond)
	return false
}

func getPath(doc map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	cur := doc
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	v, ok := cur[parts[len(parts)-1]]
	return v, ok
}

func setPath(doc map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	cur := doc
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

func delPath(doc map[string]any, path string) {
	parts := strings.Split(path, ".")
	cur := doc
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return
		}
		cur = next
	}
	delete(cur, parts[len(parts)-1])
	if len(cur) == 0 && len(parts) > 1 {
		delPath(doc, strings.Join(parts[:len(parts)-1], "."))
	}
}

// splunkConf reads a .conf file: stanza -> key -> value.
func splunkConf(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = map[string]string{}
			out[line[1:len(line)-1]] = cur
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == nil {
				t.Fatalf("%s:%d: not a stanza or key = value: %q", path, n, line)
			}
			k = strings.TrimSpace(k)
			if _, dup := cur[k]; dup {
				t.Fatalf("%s:%d: %s set twice", path, n, k)
			}
			cur[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSplunkConf: the props and transforms name only fields the NDJSON
// alerts carry, and the transforms extract the right endpoints from the
// real lines.
func TestSplunkConf(t *testing.T) {
	props := splunkConf(t, "siem/splunk/props.conf")
	transforms := splunkConf(t, "siem/splunk/transforms.conf")
	st, ok := props["stackprint:alert"]
	if !ok {
		t.Fatal("props.conf: no [stackprint:alert] stanza")
	}
	lines, docs := writeAlerts(t, output.AlertNDJSON)
	fields := map[string][]any{}
	for _, d := range docs {
		leaves("", d, fields)
	}
	has := func(where, f string) {
		if _, ok := fields[f]; !ok {
			t.Errorf("%s uses %q, which the NDJSON alerts do not have", where, f)
		}
	}

	// The timestamp: TIME_PREFIX names a field holding RFC 3339 in UTC.
	m := regexp.MustCompile(`^"([a-z_]+)":"$`).FindStringSubmatch(st["TIME_PREFIX"])
	if m == nil {
		t.Fatalf("TIME_PREFIX %q: want \"FIELD\":\"", st["TIME_PREFIX"])
	}
	has("TIME_PREFIX", m[1])
	for _, d := range docs {
		ts, err := time.Parse(time.RFC3339Nano, d[m[1]].(string))
		if err != nil || ts.Location() != time.UTC {
			t.Errorf("%s = %v: not RFC 3339 in UTC (%v)", m[1], d[m[1]], err)
		}
		if n := len(d[m[1]].(string)); n > 40 {
			t.Errorf("%s is %d characters, over MAX_TIMESTAMP_LOOKAHEAD", m[1], n)
		}
	}
	if st["KV_MODE"] != "json" || st["SHOULD_LINEMERGE"] != "false" {
		t.Errorf("KV_MODE %q, SHOULD_LINEMERGE %q: want json, false", st["KV_MODE"], st["SHOULD_LINEMERGE"])
	}

	for k, v := range st {
		switch {
		case strings.HasPrefix(k, "FIELDALIAS-"):
			for _, pair := range regexp.MustCompile(`(\S+) AS (\S+)`).FindAllStringSubmatch(v, -1) {
				has(k, pair[1])
			}
		case strings.HasPrefix(k, "EVAL-"):
			// Identifiers that are not functions, keywords or literals.
			expr := regexp.MustCompile(`"(\\.|[^"\\])*"`).ReplaceAllString(v, `""`)
			for _, id := range regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*\b(\s*\()?`).FindAllString(expr, -1) {
				if strings.HasSuffix(strings.TrimSpace(id), "(") || slices.Contains([]string{"OR", "AND", "NOT"}, id) {
					continue
				}
				has(k, id)
			}
		case strings.HasPrefix(k, "REPORT-"):
			for _, name := range strings.Split(v, ",") {
				if _, ok := transforms[strings.TrimSpace(name)]; !ok {
					t.Errorf("%s names transform %q, not in transforms.conf", k, name)
				}
			}
		}
	}

	// Each transform reads "FIELD":"… from the raw line: FIELD must exist,
	// and on every real line the extraction must equal the alert's own.
	for name, tr := range transforms {
		re, err := regexp.Compile(tr["REGEX"]) // Go accepts PCRE's (?<name>…)
		if err != nil {
			t.Fatalf("transform %s: %v", name, err)
		}
		key := regexp.MustCompile(`^"([a-z_]+)":`).FindStringSubmatch(tr["REGEX"])
		if key == nil {
			t.Fatalf("transform %s: REGEX does not start with a JSON key", name)
		}
		has("transform "+name, key[1])
		for i, line := range lines {
			raw, _ := docs[i][key[1]].(string)
			m := re.FindStringSubmatch(line)
			if raw == "" {
				if m != nil {
					t.Errorf("transform %s matched line %d whose %s is empty", name, i, key[1])
				}
				continue
			}
			if m == nil {
				t.Errorf("transform %s: no match on line %d (%s=%q)", name, i, key[1], raw)
				continue
			}
			want := netip.MustParseAddrPort(raw)
			ip, port := m[1], m[2]
			if got, err := netip.ParseAddr(ip); err != nil || got != want.Addr() || port != strconv.Itoa(int(want.Port())) {
				t.Errorf("transform %s on %q: %s %s, want %s %d", name, raw, ip, port, want.Addr(), want.Port())
			}
		}
	}
	if !bytes.Contains([]byte(strings.Join(lines, "\n")), []byte(`"orig":"[2001:db8::5]:40000"`)) {
		t.Error("fixture lost its IPv6 client: the bracket form is not exercised")
	}
}
