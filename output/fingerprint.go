package output

import (
	"strings"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/zeeklog"
)

// fingerprintSchema is stackprint.log. Changing a name or type makes
// OpenFingerprintLog move an existing file aside instead of appending.
func fingerprintSchema() zeeklog.Schema {
	return zeeklog.Schema{Path: "stackprint", Fields: []zeeklog.Field{
		{Name: "ts", Type: "time"},
		{Name: "uid", Type: "string"},
		{Name: "id.orig_h", Type: "addr"},
		{Name: "id.orig_p", Type: "port"},
		{Name: "id.resp_h", Type: "addr"},
		{Name: "id.resp_p", Type: "port"},
		{Name: "server_name", Type: "string"},
		{Name: "status", Type: "string"},
		{Name: "jarm", Type: "string"},
		{Name: "atsf", Type: "string"},
		{Name: "cert_sha256", Type: "string"},
		{Name: "cert_sha1", Type: "string"},
		{Name: "cert_subject", Type: "string"},
		{Name: "cert_issuer", Type: "string"},
		{Name: "cert_not_after", Type: "time"},
		{Name: "http_server", Type: "string"},
		{Name: "conns", Type: "count"},
		{Name: "duration", Type: "interval"},
		{Name: "error", Type: "string"},
		{Name: "matched", Type: "bool"},
		{Name: "match_kind", Type: "string"},
		{Name: "match_label", Type: "string"},
		{Name: "match_source", Type: "string"},
		{Name: "match_confidence", Type: "string"},
		{Name: "starttls", Type: "string"},
	}}
}

// FingerprintLog writes stackprint.log: one record per probed target (see
// the package doc for the field conventions). It is safe for concurrent
// use.
type FingerprintLog struct {
	l *zeeklog.Log
}

// OpenFingerprintLog opens stackprint.log; see zeeklog.Open.
func OpenFingerprintLog(path string, opts zeeklog.Options) (*FingerprintLog, error) {
	l, err := zeeklog.Open(path, fingerprintSchema(), opts)
	if err != nil {
		return nil, err
	}
	return &FingerprintLog{l: l}, nil
}

// Write buffers the record of one probed target: ev is the event that
// triggered the probe, r its result and m the DB matches (the first is
// logged). It is durable only after Flush.
func (f *FingerprintLog) Write(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error {
	return f.l.Write(fingerprintRecord(ev, r, m))
}

// Flush writes buffered records and fsyncs the file.
func (f *FingerprintLog) Flush() error { return f.l.Flush() }

// FlushBuffer hands buffered records to the OS without an fsync.
func (f *FingerprintLog) FlushBuffer() error { return f.l.FlushBuffer() }

// MaybeRotate rotates when the rotation interval has passed.
func (f *FingerprintLog) MaybeRotate() error { return f.l.MaybeRotate() }

// Rotate closes the file with #close and moves it aside.
func (f *FingerprintLog) Rotate() error { return f.l.Rotate() }

// Close writes #close, flushes and closes the file.
func (f *FingerprintLog) Close() error { return f.l.Close() }

// Rollback undoes a failed write (zeeklog.Log.Rollback).
func (f *FingerprintLog) Rollback() error { return f.l.Rollback() }

func fingerprintRecord(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) []any {
	target := r.Target
	if !target.IP.IsValid() {
		target = ev.Target()
	}
	ts := r.Started
	if ts.IsZero() {
		ts = ev.TS
	}
	facts := factsOf(r)
	m = stackprint.ExactMatches(m) // near matches are the alerts' business
	rec := []any{
		ts,
		opt(ev.ConnID()),
		ev.Orig.Addr(),
		portOf(ev.Orig.Addr().IsValid(), ev.Orig.Port()),
		target.IP,
		portOf(target.IP.IsValid(), target.Port),
		opt(target.SNI),
		opt(string(r.Status)),
		opt(r.JARM),
		opt(facts.atsf),
		opt(facts.certSHA256),
		opt(facts.certSHA1),
		opt(facts.certSubject),
		opt(facts.certIssuer),
		facts.certNotAfter,
		optHTTP(r),
		max(r.Conns, 0),
		r.Duration,
		opt(r.Error),
		len(m) > 0,
		nil, nil, nil, nil,
		opt(r.StartTLS),
	}
	if len(m) > 0 {
		// Present but empty (a DB entry without a source) is "(empty)",
		// not unset.
		rec[20], rec[21], rec[22], rec[23] = m[0].Kind, m[0].Label, m[0].Source, m[0].Confidence
	}
	return rec
}

// opt is an optional string: "" is unset.
func opt(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func portOf(valid bool, p uint16) any {
	if !valid {
		return nil
	}
	return p
}

// optHTTP is the Server header when an HTTP answer was fetched: a fetched
// answer without the header is "(empty)", no answer is unset.
func optHTTP(r stackprint.Result) any {
	if r.HTTP == nil {
		return nil
	}
	return r.HTTP.Server
}

// facts are the result's certificate and ATSF facts in output form.
type facts struct {
	atsf, certSHA256, certSHA1, certSubject, certIssuer string
	certNotAfter                                        time.Time
	certNotBefore                                       time.Time
	cert                                                *stackprint.CertFacts
}

func factsOf(r stackprint.Result) facts {
	var f facts
	if r.ATSF != nil {
		f.atsf = r.ATSF.ID
	}
	if c := r.Cert; c != nil {
		f.cert = c
		f.certSHA256, f.certSHA1 = strings.ToLower(c.SHA256), strings.ToLower(c.SHA1)
		f.certSubject, f.certIssuer = c.Subject, c.Issuer
		f.certNotAfter, f.certNotBefore = c.NotAfter, c.NotBefore
	}
	return f
}
