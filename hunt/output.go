package hunt

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/zeeklog"
)

// Output formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
	FormatZeek  = "zeek"
)

// Formats lists the output formats.
func Formats() []string { return []string{FormatJSONL, FormatCSV, FormatZeek} }

// StatusInterrupted is the status of a target a previous run began to
// probe and never finished: it is reported, not probed again.
const StatusInterrupted stackprint.Status = "interrupted"

// Record is the one line a run writes per target.
type Record struct {
	TS         time.Time          `json:"ts"`
	IP         netip.Addr         `json:"ip"`
	Port       uint16             `json:"port"`
	SNI        string             `json:"sni"`      // name the certificate, HTTP and ATSF connections sent ("" = none)
	JARMSNI    string             `json:"jarm_sni"` // server_name JARM sent
	Status     stackprint.Status  `json:"status"`
	Error      string             `json:"error,omitempty"`
	JARM       string             `json:"jarm,omitempty"`
	ATSF       string             `json:"atsf,omitempty"` // ATSF id; "" unless all ten ClientHellos answered
	CertSHA256 string             `json:"cert_sha256,omitempty"`
	CertSHA1   string             `json:"cert_sha1,omitempty"`
	Subject    string             `json:"cert_subject,omitempty"`
	Issuer     string             `json:"cert_issuer,omitempty"`
	HTTPServer string             `json:"http_server,omitempty"`
	StartTLS   string             `json:"starttls,omitempty"`
	Matches    []stackprint.Match `json:"matches"`
	Conns      int                `json:"conns"`
	DurationMS int64              `json:"duration_ms"`
	Source     string             `json:"source"` // FILE:LINE of the input line

	// Hellos are the ten ATSF answers (status_request removed, "" for one
	// unanswered), as a DB entry keeps them: the CSV's last ten columns.
	Hellos []string `json:"-"`
}

// recordOf turns a probe result into a record.
func recordOf(res stackprint.Result, jarmSNI, where string, matches []stackprint.Match) Record {
	r := Record{
		TS: res.Started.UTC(), IP: res.Target.IP, Port: res.Target.Port, SNI: res.Target.SNI, JARMSNI: jarmSNI,
		Status: res.Status, Error: res.Error, StartTLS: res.StartTLS,
		Matches: matches, Conns: res.Conns, DurationMS: res.Duration.Milliseconds(), Source: where,
	}
	if res.HasJARM() {
		r.JARM = res.JARM
	}
	if res.HasATSF() {
		r.ATSF = res.ATSF.ID
	}
	r.Hellos, _ = db.HellosOf(res.ATSF)
	if c := res.Cert; c != nil {
		r.CertSHA256, r.CertSHA1, r.Subject, r.Issuer = c.SHA256, c.SHA1, c.Subject, c.Issuer
	}
	if h := res.HTTP; h != nil {
		r.HTTPServer = h.Server
	}
	if r.Matches == nil {
		r.Matches = []stackprint.Match{}
	}
	return r
}

// Encoder renders records in one format.
type Encoder struct {
	format string
	buf    bytes.Buffer
	csv    *csv.Writer
}

// NewEncoder returns an encoder for format (Formats).
func NewEncoder(format string) (*Encoder, error) {
	switch format {
	case FormatJSONL, FormatCSV, FormatZeek:
	default:
		return nil, fmt.Errorf("output format %q: want %s", format, strings.Join(Formats(), ", "))
	}
	e := &Encoder{format: format}
	e.csv = csv.NewWriter(&e.buf)
	return e, nil
}

// columns of the CSV and Zeek forms.
var columns = []zeeklog.Field{
	{Name: "ts", Type: "time"}, {Name: "ip", Type: "addr"}, {Name: "port", Type: "port"}, {Name: "sni", Type: "string"},
	{Name: "jarm_sni", Type: "string"}, {Name: "status", Type: "string"}, {Name: "jarm", Type: "string"}, {Name: "atsf", Type: "string"},
	{Name: "cert_sha256", Type: "string"}, {Name: "cert_sha1", Type: "string"}, {Name: "cert_subject", Type: "string"},
	{Name: "cert_issuer", Type: "string"}, {Name: "http_server", Type: "string"}, {Name: "starttls", Type: "string"},
	{Name: "match_kinds", Type: "vector[string]"}, {Name: "match_labels", Type: "vector[string]"}, {Name: "near", Type: "vector[string]"},
	{Name: "conns", Type: "count"}, {Name: "duration_ms", Type: "count"}, {Name: "source", Type: "string"}, {Name: "error", Type: "string"},
}

var zeekSchema = zeeklog.Schema{Path: "stackprint_hunt", Fields: columns}

// Header is what a new output file starts with (none for JSON lines).
func (e *Encoder) Header(now time.Time) []byte {
	switch e.format {
	case FormatCSV:
		e.buf.Reset()
		names := make([]string, len(columns))
		for i, c := range columns {
			names[i] = c.Name
		}
		// Then one column per ATSF ClientHello, named after it.
		_ = e.csv.Write(append(names, db.ATSFHelloNames()...))
		e.csv.Flush()
		return bytes.Clone(e.buf.Bytes())
	case FormatZeek:
		return zeekSchema.AppendHeader(nil, now)
	}
	return nil
}

// Encode renders one record as one line (newline included).
func (e *Encoder) Encode(r Record) ([]byte, error) {
	e.buf.Reset()
	switch e.format {
	case FormatJSONL:
		enc := json.NewEncoder(&e.buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
		return e.buf.Bytes(), nil
	case FormatCSV:
		row := make([]string, 0, len(columns))
		kinds, labels, near := matchLists(r.Matches)
		row = append(row, r.TS.Format(time.RFC3339Nano), r.IP.String(), strconv.Itoa(int(r.Port)), r.SNI, r.JARMSNI, string(r.Status),
			r.JARM, r.ATSF, r.CertSHA256, r.CertSHA1, r.Subject, r.Issuer, r.HTTPServer, r.StartTLS,
			strings.Join(kinds, ";"), strings.Join(labels, ";"), strings.Join(near, ";"),
			strconv.Itoa(r.Conns), strconv.FormatInt(r.DurationMS, 10), r.Source, r.Error)
		hellos := r.Hellos
		if len(hellos) != db.ATSFHellos {
			hellos = make([]string, db.ATSFHellos)
		}
		if err := e.csv.Write(append(row, hellos...)); err != nil {
			return nil, err
		}
		e.csv.Flush()
		return e.buf.Bytes(), e.csv.Error()
	default:
		kinds, labels, near := matchLists(r.Matches)
		opt := func(s string) any {
			if s == "" {
				return nil
			}
			return s
		}
		return zeekSchema.AppendRecord(nil, zeeklog.TSV, []any{r.TS, r.IP, r.Port, opt(r.SNI), opt(r.JARMSNI), string(r.Status),
			opt(r.JARM), opt(r.ATSF), opt(r.CertSHA256), opt(r.CertSHA1), opt(r.Subject), opt(r.Issuer), opt(r.HTTPServer), opt(r.StartTLS),
			kinds, labels, near, r.Conns, max(r.DurationMS, 0), opt(r.Source), opt(r.Error)})
	}
}

// matchLists flattens the matches for CSV and Zeek: the kinds and labels
// of the exact ones, and one line per near one ("9 of 10 answers equal
// to LABEL; differs on …").
func matchLists(ms []stackprint.Match) (kinds, labels, near []string) {
	kinds, labels, near = []string{}, []string{}, []string{}
	for _, m := range ms {
		if m.Near != nil {
			near = append(near, m.Kind+": "+m.Near.Text(m.Label))
			continue
		}
		kinds = append(kinds, m.Kind)
		labels = append(labels, m.Label)
	}
	return kinds, labels, near
}

// Output is where records go: a file the run owns (resumable exactly) or
// a stream.
type Output struct {
	W    io.Writer
	Size int64 // bytes in the file before the run; -1 for a stream
}
