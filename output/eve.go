package output

import (
	"strconv"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// eveTimeLayout is Suricata's timestamp: local time, microseconds, an
// offset without a colon.
const eveTimeLayout = "2006-01-02T15:04:05.000000-0700"

// EVE alert record, in the field order Suricata writes. Every key is one
// Suricata's EVE schema (etc/schema.json) declares, which refuses unknown
// keys at the top level and in alert, alert.metadata, tls and flow: what
// EVE has no field for goes in metadata.flowvars (eveVar), the one place
// of the schema that takes named values.
type eveAlert struct {
	Timestamp string      `json:"timestamp"`
	FlowID    uint64      `json:"flow_id,omitempty"`
	EventType string      `json:"event_type"`
	SrcIP     string      `json:"src_ip,omitempty"`
	SrcPort   int         `json:"src_port,omitempty"`
	DestIP    string      `json:"dest_ip,omitempty"`
	DestPort  int         `json:"dest_port,omitempty"`
	Proto     string      `json:"proto"`
	Direction string      `json:"direction"`
	AppProto  string      `json:"app_proto"`
	Alert     eveBody     `json:"alert"`
	TLS       *eveTLS     `json:"tls,omitempty"`
	Flow      eveFlow     `json:"flow"`
	Metadata  eveMetadata `json:"metadata"`
}

type eveBody struct {
	Action      string      `json:"action"`
	GID         int         `json:"gid"`
	SignatureID int         `json:"signature_id"`
	Rev         int         `json:"rev"`
	Signature   string      `json:"signature"`
	Category    string      `json:"category"`
	Severity    int         `json:"severity"`
	Metadata    eveRuleMeta `json:"metadata"`
}

// eveRuleMeta is alert.metadata: the schema allows only these keys (the
// ET conventions), each a list of strings.
type eveRuleMeta struct {
	SignatureSeverity []string `json:"signature_severity"`
	Tag               []string `json:"tag,omitempty"`
	MalwareFamily     []string `json:"malware_family,omitempty"`
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

// eveFlow is the connection the alert is about, as Suricata's alert
// records carry it (start is when the sensor saw it).
type eveFlow struct {
	SrcIP    string `json:"src_ip,omitempty"`
	SrcPort  int    `json:"src_port,omitempty"`
	DestIP   string `json:"dest_ip,omitempty"`
	DestPort int    `json:"dest_port,omitempty"`
	Start    string `json:"start,omitempty"`
}

// eveMetadata is the top-level metadata object; stackprint's own fields
// are flowvars named stackprint.*.
type eveMetadata struct {
	FlowVars []eveVar `json:"flowvars"`
}

// eveVar is one flowvar: a name and a string value.
type eveVar struct {
	Key   string `json:"key"`
	Value string `json:"value"`
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
// by it; the matched label is alert.metadata.malware_family and the rest
// (alert id, rule, JARM, ATSF, match, …) metadata.flowvars stackprint.*.
func MarshalEVE(a stackprint.Alert) ([]byte, error) {
	ev, r := a.Event, a.Result
	name := a.RuleName
	if name == "" {
		name = a.Rule
	}
	rm := eveRuleMeta{SignatureSeverity: []string{eveSignatureSeverity(a.Severity)}, Tag: a.Tags}
	if a.Match.Label != "" {
		rm.MalwareFamily = []string{a.Match.Label}
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
			Metadata:    rm,
		},
		Flow: eveFlow{SrcIP: addrOnly(ev.Orig), SrcPort: int(ev.Orig.Port()), DestIP: addrOnly(ev.Resp), DestPort: int(ev.Resp.Port()), Start: eveTime(ev.TS)},
	}
	vars := []eveVar{{"stackprint.alert_id", a.ID}, {"stackprint.rule", a.Rule}}
	add := func(k, v string) {
		if v != "" {
			vars = append(vars, eveVar{"stackprint." + k, v})
		}
	}
	add("uid", ev.UID)
	add("input", ev.Source)
	add("jarm", r.JARM)
	if r.ATSF != nil {
		add("atsf", r.ATSF.ID)
	}
	if r.HTTP != nil {
		// Present even when empty: the server answered without a Server header.
		vars = append(vars, eveVar{"stackprint.http_server", r.HTTP.Server})
	}
	add("starttls", r.StartTLS)
	add("detail", a.Detail)
	if m := a.Match; hasMatch(m) {
		add("match.kind", m.Kind)
		add("match.value", m.Value)
		add("match.label", m.Label)
		add("match.source", m.Source)
		add("match.confidence", m.Confidence)
		if n := m.Near; n != nil {
			add("match.near", n.Text(m.Label))
			add("match.agree", strconv.Itoa(n.Agree)+"/"+strconv.Itoa(n.Of))
			add("match.differs", strings.Join(n.Differs, ","))
		}
	}
	vars = append(vars, eveVar{"stackprint.simulated", strconv.FormatBool(a.Simulated)},
		eveVar{"stackprint.suppressed", strconv.Itoa(a.Suppressed)}, eveVar{"stackprint.retro", strconv.FormatBool(a.Retro)})
	if ev.Backfill {
		vars = append(vars, eveVar{"stackprint.backfill", "true"})
	}
	v.Metadata.FlowVars = vars
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
