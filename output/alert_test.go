package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
)

func TestMarshalAlertGolden(t *testing.T) {
	var buf bytes.Buffer
	for _, a := range fixtureAlerts() {
		line, err := MarshalAlert(a)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.ContainsRune(line, '\n') {
			t.Fatalf("line contains a newline: %s", line)
		}
		if !json.Valid(line) {
			t.Fatalf("invalid JSON: %s", line)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	golden(t, "alerts.ndjson", buf.Bytes())
}

func TestMarshalAlertFields(t *testing.T) {
	as := fixtureAlerts()
	var zeek, suri map[string]any
	for _, p := range []struct {
		i   int
		dst *map[string]any
	}{{0, &zeek}, {2, &suri}} {
		line, err := MarshalAlert(as[p.i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(line, p.dst); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := zeek["flow_id"]; ok {
		t.Error("flow_id present for a Zeek event")
	}
	if _, ok := suri["uid"]; ok {
		t.Error("uid present for a Suricata event")
	}
	if zeek["ts"] != "2025-03-04T05:06:08.858023789Z" {
		t.Errorf("ts = %v, want RFC3339Nano in UTC", zeek["ts"])
	}
	if zeek["schema_version"] != float64(1) {
		t.Errorf("schema_version = %v", zeek["schema_version"])
	}
	// flow_id above 2^53 must survive as an exact integer.
	line, _ := MarshalAlert(as[2])
	if !bytes.Contains(line, []byte(`"flow_id":1234567890123456789`)) {
		t.Errorf("flow_id not exact: %s", line)
	}
	if suri["resp"] != "[2001:db8::7]:8443" || suri["simulated"] != false || suri["rule_name"] == "" {
		t.Errorf("resp = %v", suri["resp"])
	}
}

func TestAlertWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.ndjson")
	as := fixtureAlerts()

	w, err := OpenAlertWriter(path, AlertNDJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(as[0]); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("alert on disk before Flush: %q", b)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Write(as[0]); err == nil {
		t.Error("Write after Close succeeded")
	}

	// Simulate a crash in the middle of a line, then reopen: the new alert
	// must start on its own line.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"schema_version":1,"alert_id":"torn`)
	f.Close()

	w, err = OpenAlertWriter(path, AlertNDJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(as[1]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), b)
	}
	for _, i := range []int{0, 2} {
		if !json.Valid([]byte(lines[i])) {
			t.Errorf("line %d is not valid JSON: %s", i+1, lines[i])
		}
	}
	want, _ := MarshalAlert(as[1])
	if lines[2] != string(want) {
		t.Errorf("last line = %s, want %s", lines[2], want)
	}
	st, _ := os.Stat(path)
	if perm := st.Mode().Perm(); perm&^0o640 != 0 {
		t.Errorf("mode %v is wider than 0640", perm)
	}
}

func TestMarshalECSGolden(t *testing.T) {
	var buf bytes.Buffer
	for _, a := range fixtureAlerts() {
		line, err := MarshalECS(a)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	golden(t, "alerts.ecs.ndjson", buf.Bytes())
}

// get follows a dotted path through nested JSON objects.
func get(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func TestMarshalECSFields(t *testing.T) {
	as := fixtureAlerts()
	var docs []map[string]any
	for _, a := range as {
		line, err := MarshalECS(a)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, m)
	}
	want := map[string]any{
		"event.kind":             "alert",
		"event.id":               as[0].ID,
		"event.severity":         float64(73),
		"rule.id":                "db_match",
		"source.ip":              "10.0.0.5",
		"destination.ip":         "203.0.113.7",
		"destination.port":       float64(443),
		"destination.domain":     "evil.example",
		"tls.client.server_name": "evil.example",
		"tls.server.hash.sha256": strings.ToUpper(certSHA256),
		"tls.server.hash.sha1":   strings.ToUpper(certSHA1),
		"tls.server.x509.subject.distinguished_name": "CN=evil.example",
		"tls.server.x509.serial_number":              "0A1B2C",
		"tls.server.x509.public_key_size":            float64(2048),
		"threat.indicator.type":                      "software",
		"threat.indicator.description":               "cobalt-strike",
		"threat.indicator.confidence":                "High",
		"threat.enrichments":                         nil, // checked below
		"stackprint.jarm":                            jarmHit,
		"stackprint.atsf.id":                         atsfHit,
		"stackprint.match.label":                     "cobalt-strike",
		"stackprint.uid":                             "CHhAvVGS1DHFjwGM9",
		"stackprint.http.server":                     "Microsoft-IIS/10.0",
		"stackprint.schema_version":                  float64(1),
		"stackprint.simulated":                       false,
	}
	for k, w := range want {
		if w == nil {
			continue
		}
		if g := get(docs[0], k); g != w {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	enr := get(docs[1], "threat.enrichments").([]any)[0].(map[string]any)
	if get(enr, "matched.field") != "tls.server.hash.sha1" || get(enr, "matched.atomic") != strings.ToUpper(certSHA1) ||
		get(docs[1], "threat.indicator.type") != "x509-certificate" || get(docs[1], "stackprint.simulated") != true ||
		get(docs[1], "stackprint.suppressed") != float64(3) {
		t.Errorf("sslbl alert: %v", docs[1])
	}
	if tags := fmt.Sprint(docs[1]["tags"]); tags != "[certificate sslbl simulated]" {
		t.Errorf("simulated alert tags %s", tags)
	}
	// The Suricata alert: no certificate, flow_id exact.
	if get(docs[2], "tls.server") != nil || get(docs[2], "source.ip") != "2001:db8::5" {
		t.Errorf("suricata alert: %v", docs[2])
	}
	line, _ := MarshalECS(as[2])
	if !bytes.Contains(line, []byte(`"flow_id":1234567890123456789`)) {
		t.Errorf("flow_id not exact: %s", line)
	}
}

func TestMarshalEVEGolden(t *testing.T) {
	var buf bytes.Buffer
	for _, a := range fixtureAlerts() {
		line, err := MarshalEVE(a)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	golden(t, "alerts.eve.json", buf.Bytes())
}

func TestMarshalEVEFields(t *testing.T) {
	as := fixtureAlerts()
	var zeek, suri map[string]any
	for _, p := range []struct {
		a   stackprint.Alert
		dst *map[string]any
	}{{as[0], &zeek}, {as[2], &suri}} {
		line, err := MarshalEVE(p.a)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(line, p.dst); err != nil {
			t.Fatal(err)
		}
	}
	for k, w := range map[string]any{
		"event_type": "alert", "src_ip": "10.0.0.5", "dest_ip": "203.0.113.7", "dest_port": float64(443), "proto": "TCP",
		"alert.signature_id": float64(1900001), "alert.signature": "STACKPRINT TLS server fingerprint in the fingerprint DB",
		"alert.category": "A Network Trojan was detected", "alert.severity": float64(1), "alert.gid": float64(1),
		"tls.sni": "evil.example", "tls.fingerprint": "6a:ff:ac:1f:c1:bc:9b:8b:d5:a8:ca:3e:6b:5b:5c:e4:e2:a5:fd:0b",
		"tls.notafter": "2026-01-01T00:00:00", "flow.dest_ip": "203.0.113.7", "flow.src_port": float64(51234),
	} {
		if g := get(zeek, k); g != w {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	if _, ok := zeek["flow_id"]; ok {
		t.Error("flow_id for a Zeek event")
	}
	// stackprint's own fields are flowvars (the schema's place for named values).
	vars := map[string]any{}
	for _, v := range get(zeek, "metadata.flowvars").([]any) {
		kv := v.(map[string]any)
		vars[kv["key"].(string)] = kv["value"]
	}
	for k, w := range map[string]any{"stackprint.alert_id": as[0].ID, "stackprint.rule": "db_match", "stackprint.match.label": "cobalt-strike",
		"stackprint.uid": "CHhAvVGS1DHFjwGM9", "stackprint.simulated": "false", "stackprint.retro": "false"} {
		if vars[k] != w {
			t.Errorf("flowvar %s = %v, want %v", k, vars[k], w)
		}
	}
	if fam := fmt.Sprint(get(zeek, "alert.metadata.malware_family")); fam != "[cobalt-strike]" {
		t.Errorf("alert.metadata.malware_family = %s", fam)
	}
	// Suricata's own timestamp form: local time, microseconds, offset
	// without a colon.
	if zeek["timestamp"] != "2025-03-04T06:06:08.858023+0100" {
		t.Errorf("timestamp %v", zeek["timestamp"])
	}
	if suri["alert"].(map[string]any)["severity"] != float64(3) || suri["dest_ip"] != "2001:db8::7" {
		t.Errorf("suricata alert: %v", suri)
	}
	line, _ := MarshalEVE(as[2])
	if !bytes.Contains(line, []byte(`"flow_id":1234567890123456789`)) {
		t.Errorf("flow_id not exact: %s", line)
	}
}

func TestAlertWriterFormatsAndReopen(t *testing.T) {
	dir := t.TempDir()
	as := fixtureAlerts()
	if _, err := OpenAlertWriter(filepath.Join(dir, "x"), "xml"); err == nil {
		t.Error("unknown format accepted")
	}
	path := filepath.Join(dir, "eve.json")
	w, err := OpenAlertWriter(path, AlertEVE)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(as[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// logrotate: rename, then the daemon reopens on SIGHUP.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(as[2]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if strings.Count(string(old), "\n") != 1 || strings.Count(string(cur), "\n") != 1 || !strings.Contains(string(cur), `"event_type":"alert"`) {
		t.Errorf("after reopen: old %q, new %q", old, cur)
	}
}
