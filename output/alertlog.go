package output

import (
	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/zeeklog"
)

// alertSchema is stackprint_alert.log: one record per alert, in the
// conventions of Zeek's notice.log (flat names, the connection's uid and
// id.* so analysts join it with conn.log and ssl.log).
func alertSchema() zeeklog.Schema {
	return zeeklog.Schema{Path: "stackprint_alert", Fields: []zeeklog.Field{
		{Name: "ts", Type: "time"},
		{Name: "alert_id", Type: "string"},
		{Name: "uid", Type: "string"},
		{Name: "id.orig_h", Type: "addr"},
		{Name: "id.orig_p", Type: "port"},
		{Name: "id.resp_h", Type: "addr"},
		{Name: "id.resp_p", Type: "port"},
		{Name: "server_name", Type: "string"},
		{Name: "rule", Type: "string"},
		{Name: "rule_name", Type: "string"},
		{Name: "severity", Type: "string"},
		{Name: "signature_id", Type: "count"},
		{Name: "category", Type: "string"},
		{Name: "msg", Type: "string"},
		{Name: "tags", Type: "set[string]"},
		{Name: "simulated", Type: "bool"},
		{Name: "retro", Type: "bool"},
		{Name: "suppressed", Type: "count"},
		{Name: "probe_ts", Type: "time"},
		{Name: "status", Type: "string"},
		{Name: "jarm", Type: "string"},
		{Name: "atsf", Type: "string"},
		{Name: "cert_sha256", Type: "string"},
		{Name: "cert_sha1", Type: "string"},
		{Name: "http_server", Type: "string"},
		{Name: "match_kind", Type: "string"},
		{Name: "match_value", Type: "string"},
		{Name: "match_label", Type: "string"},
		{Name: "match_source", Type: "string"},
		{Name: "match_confidence", Type: "string"},
		{Name: "input", Type: "string"},
		{Name: "event_ts", Type: "time"},
		{Name: "near_agree", Type: "count"},
		{Name: "near_of", Type: "count"},
		{Name: "near_differs", Type: "vector[string]"},
		{Name: "near_details", Type: "vector[string]"},
		{Name: "backfill", Type: "bool"},
	}}
}

// AlertLog writes stackprint_alert.log. It is safe for concurrent use.
type AlertLog struct {
	l *zeeklog.Log
}

// OpenAlertLog opens stackprint_alert.log; see zeeklog.Open.
func OpenAlertLog(path string, opts zeeklog.Options) (*AlertLog, error) {
	l, err := zeeklog.Open(path, alertSchema(), opts)
	if err != nil {
		return nil, err
	}
	return &AlertLog{l: l}, nil
}

// Write buffers one alert; it is durable only after Flush.
func (a *AlertLog) Write(al stackprint.Alert) error { return a.l.Write(alertRecord(al)) }

// Flush writes buffered records and fsyncs the file.
func (a *AlertLog) Flush() error { return a.l.Flush() }

// FlushBuffer hands buffered records to the OS without an fsync.
func (a *AlertLog) FlushBuffer() error { return a.l.FlushBuffer() }

// MaybeRotate rotates when the rotation interval has passed.
func (a *AlertLog) MaybeRotate() error { return a.l.MaybeRotate() }

// Rotate closes the file with #close and moves it aside.
func (a *AlertLog) Rotate() error { return a.l.Rotate() }

// Close writes #close, flushes and closes the file.
func (a *AlertLog) Close() error { return a.l.Close() }

// Rollback undoes a failed write (zeeklog.Log.Rollback).
func (a *AlertLog) Rollback() error { return a.l.Rollback() }

func alertRecord(a stackprint.Alert) []any {
	ev, r := a.Event, a.Result
	target := ev.Target()
	f := factsOf(r)
	rec := []any{
		a.TS,
		a.ID,
		opt(ev.ConnID()),
		ev.Orig.Addr(),
		portOf(ev.Orig.Addr().IsValid(), ev.Orig.Port()),
		target.IP,
		portOf(target.IP.IsValid(), target.Port),
		opt(target.SNI),
		a.Rule,
		opt(a.RuleName),
		a.Severity,
		optCount(a.SignatureID),
		opt(a.Category),
		opt(alertMsg(a)),
		tagsOf(a),
		a.Simulated,
		a.Retro,
		max(a.Suppressed, 0),
		r.Started,
		opt(string(r.Status)),
		opt(r.JARM),
		opt(f.atsf),
		opt(f.certSHA256),
		opt(f.certSHA1),
		optHTTP(r),
		nil, nil, nil, nil, nil,
		opt(ev.Source),
		ev.TS,
		nil, nil, nil, nil,
		ev.Backfill,
	}
	if m := a.Match; hasMatch(m) {
		rec[25], rec[26], rec[27], rec[28], rec[29] = m.Kind, m.Value, m.Label, m.Source, m.Confidence
	}
	if n := a.Match.Near; n != nil {
		rec[32], rec[33], rec[34], rec[35] = n.Agree, n.Of, nonNil(n.Differs), nonNil(n.Details)
	}
	return rec
}

func optCount(n int) any {
	if n <= 0 {
		return nil
	}
	return n
}

func tagsOf(a stackprint.Alert) []string {
	if a.Tags == nil {
		return []string{}
	}
	return a.Tags
}

// alertMsg is the one line an analyst reads first: the rule's name and
// what matched, or for a near match what is equal and what differs, and
// the alert's detail (for the watch list: what changed).
func alertMsg(a stackprint.Alert) string {
	msg := a.RuleName
	if msg == "" {
		msg = a.Rule
	}
	switch {
	case a.Match.Near != nil:
		msg += ": " + a.Match.Near.Text(a.Match.Label)
	case a.Match.Label != "":
		msg += ": " + a.Match.Label
	}
	if a.Detail != "" {
		msg += ": " + a.Detail
	}
	return msg
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// hasMatch tells a verdict about a DB entry from one about something else
// (drift, a probe fact).
func hasMatch(m stackprint.Match) bool { return m.Kind != "" || m.Value != "" || m.Label != "" }
