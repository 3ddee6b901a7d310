package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/internal/fileio"
)

// AlertFormat is the JSON shape of an alert line.
type AlertFormat string

// The alert line formats.
const (
	// AlertNDJSON is stackprint's own flat schema (schema_version 1).
	AlertNDJSON AlertFormat = "ndjson"
	// AlertECS is Elastic Common Schema field names (MarshalECS).
	AlertECS AlertFormat = "ecs"
	// AlertEVE is a Suricata eve.json alert record (MarshalEVE).
	AlertEVE AlertFormat = "eve"
)

func (f AlertFormat) marshaler() (func(stackprint.Alert) ([]byte, error), error) {
	switch f {
	case AlertNDJSON, "":
		return MarshalAlert, nil
	case AlertECS:
		return MarshalECS, nil
	case AlertEVE:
		return MarshalEVE, nil
	}
	return nil, fmt.Errorf("unknown alert format %q (want ndjson, ecs or eve)", f)
}

// alertJSON fixes the field order of an NDJSON alert: encoding/json writes
// struct fields in declaration order, so the output is deterministic.
type alertJSON struct {
	SchemaVersion int       `json:"schema_version"`
	AlertID       string    `json:"alert_id"`
	TS            string    `json:"ts"`
	UID           string    `json:"uid,omitempty"`
	FlowID        uint64    `json:"flow_id,omitempty"`
	Orig          string    `json:"orig"`
	Resp          string    `json:"resp"`
	SNI           string    `json:"sni"`
	JARM          string    `json:"jarm"`
	Match         matchJSON `json:"match"`
	Rule          string    `json:"rule"`
	Severity      string    `json:"severity"`
	Source        string    `json:"source"`
	EventTS       string    `json:"event_ts"`
	RuleName      string    `json:"rule_name"`
	Description   string    `json:"description"`
	Category      string    `json:"category"`
	SignatureID   int       `json:"signature_id"`
	Tags          []string  `json:"tags"`
	Simulated     bool      `json:"simulated"`
	Suppressed    int       `json:"suppressed"`
	Retro         bool      `json:"retro"`
	Backfill      bool      `json:"backfill"` // judged by stackprint scan over old logs
	Status        string    `json:"status"`
	ATSF          string    `json:"atsf"`
	CertSHA256    string    `json:"cert_sha256"`
	CertSHA1      string    `json:"cert_sha1"`
	HTTPServer    string    `json:"http_server"`
	StartTLS      string    `json:"starttls"` // protocol the probe upgraded with; "" = direct TLS
	Detail        string    `json:"detail"`   // what this occurrence is about (the watch list: what changed); "" for most rules
}

type matchJSON struct {
	Label      string   `json:"label"`
	Source     string   `json:"source"`
	Confidence string   `json:"confidence"`
	Kind       string   `json:"kind"`
	Value      string   `json:"value"`
	Near       nearJSON `json:"near"`
}

// nearJSON says how close a near match is; all zero for an exact match or
// none.
type nearJSON struct {
	Agree   int      `json:"agree"`
	Of      int      `json:"of"`
	Differs []string `json:"differs"`
	Details []string `json:"details"`
	Text    string   `json:"text"`
}

func nearOf(m stackprint.Match) nearJSON {
	n := nearJSON{Differs: []string{}, Details: []string{}}
	if m.Near != nil {
		n.Agree, n.Of, n.Text = m.Near.Agree, m.Near.Of, m.Near.Text(m.Label)
		n.Differs = append(n.Differs, m.Near.Differs...)
		n.Details = append(n.Details, m.Near.Details...)
	}
	return n
}

// MarshalAlert renders a as one line of stackprint's flat NDJSON schema,
// without the trailing newline. uid and flow_id are left out when unknown;
// every other key is always present, with "" (0, false, []) for an
// unknown value, so SIEM mappings stay stable.
func MarshalAlert(a stackprint.Alert) ([]byte, error) {
	f := factsOf(a.Result)
	v := alertJSON{
		SchemaVersion: stackprint.SchemaVersion,
		AlertID:       a.ID,
		TS:            jsonTime(a.TS),
		UID:           a.Event.UID,
		FlowID:        a.Event.FlowID,
		Orig:          addrPort(a.Event.Orig),
		Resp:          addrPort(a.Event.Resp),
		SNI:           a.Event.SNI,
		JARM:          a.Result.JARM,
		Match: matchJSON{
			Label:      a.Match.Label,
			Source:     a.Match.Source,
			Confidence: a.Match.Confidence,
			Kind:       a.Match.Kind,
			Value:      a.Match.Value,
			Near:       nearOf(a.Match),
		},
		Rule:        a.Rule,
		Severity:    a.Severity,
		Source:      a.Event.Source,
		EventTS:     jsonTime(a.Event.TS),
		RuleName:    a.RuleName,
		Description: a.Description,
		Category:    a.Category,
		SignatureID: a.SignatureID,
		Tags:        tagsOf(a),
		Simulated:   a.Simulated,
		Suppressed:  a.Suppressed,
		Retro:       a.Retro,
		Backfill:    a.Event.Backfill,
		Status:      string(a.Result.Status),
		ATSF:        f.atsf,
		CertSHA256:  f.certSHA256,
		CertSHA1:    f.certSHA1,
		StartTLS:    a.Result.StartTLS,
		Detail:      a.Detail,
	}
	if a.Result.HTTP != nil {
		v.HTTPServer = a.Result.HTTP.Server
	}
	return marshalLine(v, a.ID)
}

// marshalLine encodes v as one JSON line without the newline.
func marshalLine(v any, id string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // SIEMs want "a&b", not "a\u0026b"
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("marshal alert %s: %w", id, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func addrPort(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

// AlertWriter appends alerts to a file, one JSON line each, in one
// AlertFormat. It is safe for concurrent use.
type AlertWriter struct {
	mu      sync.Mutex
	name    string
	f       *os.File
	w       *bufio.Writer
	stdout  bool // never fsynced, closed nor reopened
	closed  bool
	marshal func(stackprint.Alert) ([]byte, error)
}

// OpenAlertWriter opens path for appending alerts in format, creating it
// with mode 0640. The path "-" writes to standard output, without fsync.
func OpenAlertWriter(path string, format AlertFormat) (*AlertWriter, error) {
	marshal, err := format.marshaler()
	if err != nil {
		return nil, fmt.Errorf("alert file %s: %w", path, err)
	}
	if path == "-" {
		return &AlertWriter{name: "stdout", f: os.Stdout, w: bufio.NewWriter(os.Stdout), stdout: true, marshal: marshal}, nil
	}
	w := &AlertWriter{name: path, marshal: marshal}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *AlertWriter) open() error {
	f, err := os.OpenFile(w.name, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open alert file: %w", err)
	}
	w.f, w.w = f, bufio.NewWriter(f)
	// A crash can leave half a line; end it so the next alert is parseable.
	torn, err := fileio.EndsTorn(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("open alert file %q: %w", w.name, err)
	}
	if torn {
		w.w.WriteByte('\n')
	}
	return nil
}

// Write buffers one alert; it is durable only after Flush.
func (w *AlertWriter) Write(a stackprint.Alert) error {
	line, err := w.marshal(a)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("write alert to %s: writer closed", w.name)
	}
	_, err = w.w.Write(line)
	if err == nil {
		err = w.w.WriteByte('\n')
	}
	if err != nil {
		return fmt.Errorf("write alert to %s: %w", w.name, err)
	}
	return nil
}

// FlushBuffer hands buffered alerts to the OS without an fsync (see
// zeeklog.Log.FlushBuffer); Flush also fsyncs.
func (w *AlertWriter) FlushBuffer() error { return w.flush(false) }

// Flush writes buffered alerts and fsyncs the file.
func (w *AlertWriter) Flush() error { return w.flush(true) }

func (w *AlertWriter) flush(sync bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("flush alerts to %s: writer closed", w.name)
	}
	if !sync {
		if err := w.w.Flush(); err != nil {
			return fmt.Errorf("flush alerts to %s: %w", w.name, err)
		}
		return nil
	}
	return w.flushLocked()
}

func (w *AlertWriter) flushLocked() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("flush alerts to %s: %w", w.name, err)
	}
	if w.stdout {
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("fsync alerts to %s: %w", w.name, err)
	}
	return nil
}

// Rollback undoes a failed write: the buffered alerts are dropped and the
// file is cut back to its last whole line, so a write that ran out of
// space leaves no partial record. The caller writes the dropped alerts
// again.
func (w *AlertWriter) Rollback() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.stdout {
		return nil
	}
	w.w.Reset(w.f)
	_, torn, err := fileio.TruncateTorn(w.f)
	if err != nil {
		return fmt.Errorf("roll back %s: %w", w.name, err)
	}
	if torn {
		w.w.WriteByte('\n')
	}
	return nil
}

// Reopen flushes and closes the file and opens the path again, for
// logrotate's rename-and-create (then SIGHUP) rotation.
func (w *AlertWriter) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("reopen %s: writer closed", w.name)
	}
	if w.stdout {
		return nil
	}
	err := w.flushLocked()
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close alert file %s: %w", w.name, cerr)
	}
	if err != nil {
		return err
	}
	return w.open()
}

// Close flushes and closes the file. Closing twice is a no-op.
func (w *AlertWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.flushLocked()
	if w.stdout {
		return err
	}
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close alert file %s: %w", w.name, cerr)
	}
	return err
}
