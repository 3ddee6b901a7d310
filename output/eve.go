package output

import (
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// eveTimeLayout is Suricata's timestamp: local time, microseconds, an
// offset without a colon.
const eveTimeLayout = "2006-01-02T15:04:05.000000-0700"

// EVE alert record, in the field order Suricata writes.
type eveAlert struct {
	Timestamp string    `json:"timestamp"`
	FlowID    uint64    `json:"flow_id,omitempty"`
	EventType string    `json:"event_type"`
	SrcIP     string    `json:"src_ip,omitempty"`
	SrcPort   int       `json:"src_port,omitempty"`
	DestIP    string    `json:"dest_ip,omitempty"`
	DestPort  int       `json:"dest_port,omitempty"`
	Proto     string    `json:"proto"`
	Direction string    `json:"direction"`
	AppProto  string    `json:"app_proto"`
	Alert     eveBody   `json:"alert"`
	TLS       *eveTLS   `json:"tls,omitempty"`
	Stack     eveExtras `json:"stackprint"`
}

type eveBody struct {
	Action      string              `json:"action"`
	GID         int                 `json:"gid"`
	SignatureID int                 `json:"signature_id"`
	Rev         int                 `json:"rev"`
	Signature   string              `json:"signature"`
	Category    string              `json:"category"`
	Severity    int                 `json:"severity"`
	Metadata    map[string][]string `json:"metadata,omitempty"`
}

type eveTLS struct {
	Subject     string `json:"subject,omitempty"`
	IssuerDN    string `json:"issuerdn,omitempty"`
	Serial      string `json:"serial,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	SNI         string `json:"sni,omitempty"`
	NotBefore   string `json:"notbefore,omitempty"`
	NotAfter    string `json:"notafter,omitempty"`
}

// eveExtras carries what an analyst pivots on that EVE has no field for;
// EVE consumers keep unknown objects as they are.
type eveExtras struct {
	AlertID    string   `json:"alert_id"`
	Rule       string   `json:"rule"`
	UID        string   `json:"uid,omitempty"`
	Input      string   `json:"input,omitempty"`
	JARM       string   `json:"jarm,omitempty"`
	ATSF       string   `json:"atsf,omitempty"`
	HTTPServer *string  `json:"http_server,omitempty"`
	StartTLS   string   `json:"starttls,omitempty"` // protocol the probe upgraded with
	Match      *spMatch `json:"match,omitempty"`
	Simulated  bool     `json:"simulated"`
	Suppressed int      `json:"suppressed"`
	Retro      bool     `json:"retro"`
}

// EVESeverity is alert.severity for a severity name: Suricata's priority,
// 1 the highest.
func EVESeverity(s string) int {
	switch s {
	case "critical", "high":
		return 1
	case "medium":
		return 2
	case "low":
		return 3
	}
	return 4
}

// eveSignatureSeverity is the ET-style metadata signature_severity.
func eveSignatureSeverity(s string) string {
	switch s {
	case "critical":
		return "Critical"
	case "high":
		return "Major"
	case "medium":
		return "Minor"
	}
	return "Informational"
}

// MarshalEVE renders a as one Suricata eve.json alert line, without the
// newline: src is the client and dest the server (the flow's direction,
// to_server), flow_id when the event came from Suricata, the certificate
// in Suricata's tls form (SHA-1 fingerprint as lower-case colon hex). The
// signature is constant per rule ("STACKPRINT " + rule name) so SIEMs group
// by it; what matched is in alert.metadata and stackprint.*.
func MarshalEVE(a stackprint.Alert) ([]byte, error) {
	ev, r := a.Event, a.Result
	name := a.RuleName
	if name == "" {
		name = a.Rule
	}
	md := map[string][]string{
		"stackprint_rule":    {a.Rule},
		"signature_severity": {eveSignatureSeverity(a.Severity)},
	}
	if len(a.Tags) > 0 {
		md["tag"] = a.Tags
	}
	if a.Match.Label != "" {
		md["stackprint_match"] = []string{a.Match.Label}
	}
	if a.Simulated {
		md["stackprint_simulated"] = []string{"true"}
	}
	if a.Retro {
		md["stackprint_retro"] = []string{"true"}
	}
	cat := a.Category
	if cat == "" {
		cat = "A Network Trojan was detected"
	}
	v := eveAlert{
		Timestamp: eveTime(a.TS),
		FlowID:    ev.FlowID,
		EventType: "alert",
		SrcIP:     addrOnly(ev.Orig),
		SrcPort:   int(ev.Orig.Port()),
		DestIP:    addrOnly(ev.Resp),
		DestPort:  int(ev.Resp.Port()),
		Proto:     "TCP",
		Direction: "to_server",
		AppProto:  "tls",
		Alert: eveBody{
			Action:      "allowed",
			GID:         1,
			SignatureID: a.SignatureID,
			Rev:         1,
			Signature:   "STACKPRINT " + name,
			Category:    cat,
			Severity:    EVESeverity(a.Severity),
			Metadata:    md,
		},
		Stack: eveExtras{
			AlertID:    a.ID,
			Rule:       a.Rule,
			UID:        ev.UID,
			Input:      ev.Source,
			JARM:       r.JARM,
			StartTLS:   r.StartTLS,
			Simulated:  a.Simulated,
			Suppressed: a.Suppressed,
			Retro:      a.Retro,
		},
	}
	if r.ATSF != nil {
		v.Stack.ATSF = r.ATSF.ID
	}
	if r.HTTP != nil {
		s := r.HTTP.Server
		v.Stack.HTTPServer = &s
	}
	if m := a.Match; hasMatch(m) {
		v.Stack.Match = &spMatch{Kind: m.Kind, Value: m.Value, Label: m.Label, Source: m.Source, Confidence: m.Confidence}
	}
	if ev.SNI != "" || r.Cert != nil {
		t := &eveTLS{SNI: ev.SNI}
		if c := r.Cert; c != nil {
			t.Subject, t.IssuerDN = c.Subject, c.Issuer
			t.Serial = colonHex(strings.ToUpper(c.Serial))
			t.Fingerprint = colonHex(strings.ToLower(c.SHA1))
			t.NotBefore, t.NotAfter = eveCertTime(c.NotBefore), eveCertTime(c.NotAfter)
		}
		v.TLS = t
	}
	return marshalLine(v, a.ID)
}

func eveTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(eveTimeLayout)
}

// eveCertTime is Suricata's notbefore/notafter: UTC, no zone.
func eveCertTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05")
}

// colonHex writes hex as Suricata does: byte pairs joined by colons.
func colonHex(h string) string {
	h = strings.ReplaceAll(h, ":", "")
	if h == "" || len(h)%2 != 0 {
		return h
	}
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}
