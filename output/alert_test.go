package output

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	}{{0, &zeek}, {1, &suri}} {
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
	line, _ := MarshalAlert(as[1])
	if !bytes.Contains(line, []byte(`"flow_id":1234567890123456789`)) {
		t.Errorf("flow_id not exact: %s", line)
	}
	if suri["resp"] != "[2001:db8::7]:8443" {
		t.Errorf("resp = %v", suri["resp"])
	}
}

func TestAlertWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.ndjson")
	as := fixtureAlerts()

	w, err := OpenAlertWriter(path)
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

	w, err = OpenAlertWriter(path)
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
