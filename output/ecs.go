package output

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// ECSVersion is the ECS release whose field names MarshalECS uses.
const ECSVersion = "8.17.0"

// ECS documents, field by field. Pointers and omitempty leave out what is
// unknown, so a SIEM never indexes an empty string as a value.
type ecsDoc struct {
	Timestamp   string       `json:"@timestamp"`
	ECS         ecsVersion   `json:"ecs"`
	Message     string       `json:"message"`
	Tags        []string     `json:"tags,omitempty"`
	Event       ecsEvent     `json:"event"`
	Rule        ecsRule      `json:"rule"`
	Source      *ecsEndpoint `json:"source,omitempty"`
	Destination *ecsEndpoint `json:"destination,omitempty"`
	Network     ecsNetwork   `json:"network"`
	Related     ecsRelated   `json:"related"`
	TLS         *ecsTLS      `json:"tls,omitempty"`
	Threat      *ecsThreat   `json:"threat,omitempty"`
	Stackprint  spECS        `json:"stackprint"`
}

type ecsVersion struct {
	Version string `json:"version"`
}

type ecsEvent struct {
	ID       string   `json:"id"`
	Kind     string   `json:"kind"`
	Category []string `json:"category"`
	Type     []string `json:"type"`
	Severity int      `json:"severity"`
	Created  string   `json:"created,omitempty"`
	Start    string   `json:"start,omitempty"`
	Module   string   `json:"module"`
	Dataset  string   `json:"dataset"`
	Provider string   `json:"provider"`
	Reason   string   `json:"reason,omitempty"` // the alert's detail (the watch list: what changed)
}

type ecsRule struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Category    string `json:"category,omitempty"`
	Ruleset     string `json:"ruleset"`
}

type ecsEndpoint struct {
	IP     string `json:"ip,omitempty"`
	Port   int    `json:"port,omitempty"`
	Domain string `json:"domain,omitempty"`
}

type ecsNetwork struct {
	Transport string `json:"transport"`
	Protocol  string `json:"protocol"`
}

type ecsRelated struct {
	IP    []string `json:"ip,omitempty"`
	Hash  []string `json:"hash,omitempty"`
	Hosts []string `json:"hosts,omitempty"`
}

type ecsTLS struct {
	Client *ecsTLSClient `json:"client,omitempty"`
	Server *ecsTLSServer `json:"server,omitempty"`
}

type ecsTLSClient struct {
	ServerName string `json:"server_name,omitempty"`
}

type ecsTLSServer struct {
	Hash      *ecsHash `json:"hash,omitempty"`
	Subject   string   `json:"subject,omitempty"`
	Issuer    string   `json:"issuer,omitempty"`
	NotBefore string   `json:"not_before,omitempty"`
	NotAfter  string   `json:"not_after,omitempty"`
	X509      *ecsX509 `json:"x509,omitempty"`
}

type ecsHash struct {
	SHA256 string `json:"sha256,omitempty"`
	SHA1   string `json:"sha1,omitempty"`
}

type ecsX509 struct {
	Subject            *ecsDN   `json:"subject,omitempty"`
	Issuer             *ecsDN   `json:"issuer,omitempty"`
	SerialNumber       string   `json:"serial_number,omitempty"`
	NotBefore          string   `json:"not_before,omitempty"`
	NotAfter           string   `json:"not_after,omitempty"`
	AlternativeNames   []string `json:"alternative_names,omitempty"`
	PublicKeyAlgorithm string   `json:"public_key_algorithm,omitempty"`
	PublicKeySize      int      `json:"public_key_size,omitempty"`
	SignatureAlgorithm string   `json:"signature_algorithm,omitempty"`
}

type ecsDN struct {
	DistinguishedName string `json:"distinguished_name"`
}

type ecsThreat struct {
	Indicator   ecsIndicator    `json:"indicator"`
	Feed        *ecsFeed        `json:"feed,omitempty"`
	Enrichments []ecsEnrichment `json:"enrichments"`
}

type ecsIndicator struct {
	Type        string `json:"type"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Provider    string `json:"provider,omitempty"`
	Confidence  string `json:"confidence"`
	IP          string `json:"ip,omitempty"`
}

type ecsFeed struct {
	Name string `json:"name"`
}

type ecsEnrichment struct {
	Indicator ecsIndicator `json:"indicator"`
	Matched   ecsMatched   `json:"matched"`
}

type ecsMatched struct {
	Atomic   string `json:"atomic"`
	Field    string `json:"field"`
	Type     string `json:"type"`
	ID       string `json:"id"`
	Occurred string `json:"occurred,omitempty"`
}

// spECS is the stackprint.* namespace: what ECS has no name for.
type spECS struct {
	SchemaVersion int      `json:"schema_version"`
	AlertID       string   `json:"alert_id"`
	UID           string   `json:"uid,omitempty"`
	FlowID        uint64   `json:"flow_id,omitempty"`
	Input         string   `json:"input,omitempty"`
	EventKind     string   `json:"event_kind,omitempty"`
	Severity      string   `json:"severity"`
	SignatureID   int      `json:"signature_id,omitempty"`
	Simulated     bool     `json:"simulated"`
	Suppressed    int      `json:"suppressed"`
	Retro         bool     `json:"retro"`
	Backfill      bool     `json:"backfill,omitempty"`
	JARM          string   `json:"jarm,omitempty"`
	ATSF          *spATSF  `json:"atsf,omitempty"`
	Match         *spMatch `json:"match,omitempty"`
	Probe         spProbe  `json:"probe"`
	HTTP          *spHTTP  `json:"http,omitempty"`
}

type spATSF struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

type spMatch struct {
	Kind       string    `json:"kind"`
	Value      string    `json:"value"`
	Label      string    `json:"label"`
	Source     string    `json:"source,omitempty"`
	Confidence string    `json:"confidence,omitempty"`
	Near       *nearJSON `json:"near,omitempty"` // a near match: how close
}

type spProbe struct {
	Status     string `json:"status,omitempty"`
	Error      string `json:"error,omitempty"`
	Started    string `json:"started,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Conns      int    `json:"conns"`
	StartTLS   string `json:"starttls,omitempty"` // protocol every connection was upgraded with
}

type spHTTP struct {
	StatusCode int    `json:"status_code,omitempty"`
	Server     string `json:"server"`
}

// ECSSeverity is event.severity for a severity name, on the scale of
// Elastic's detection rules (low 21, medium 47, high 73, critical 99).
func ECSSeverity(s string) int {
	switch s {
	case "critical":
		return 99
	case "high":
		return 73
	case "medium":
		return 47
	case "low":
		return 21
	}
	return 0
}

// MarshalECS renders a as one ECS document line, without the newline:
// event.kind alert, the connection as source/destination, the certificate
// under tls.server (hashes upper case, as ECS asks), the DB entry as
// threat.indicator with the match itself in threat.enrichments, and
// stackprint.* for JARM, ATSF, the match and the probe.
func MarshalECS(a stackprint.Alert) ([]byte, error) {
	ev, r := a.Event, a.Result
	f := factsOf(r)
	d := ecsDoc{
		Timestamp: ecsTime(a.TS),
		ECS:       ecsVersion{ECSVersion},
		Message:   ecsMessage(a),
		Tags:      a.Tags,
		Event: ecsEvent{
			ID:       a.ID,
			Kind:     "alert",
			Category: []string{"network", "threat"},
			Type:     []string{"connection", "indicator"},
			Severity: ECSSeverity(a.Severity),
			Created:  ecsTime(a.TS),
			Start:    ecsTime(ev.TS),
			Module:   "stackprint",
			Dataset:  "stackprint.alert",
			Provider: "stackprint",
			Reason:   a.Detail,
		},
		Rule:    ecsRule{ID: a.Rule, Name: a.RuleName, Description: a.Description, Category: a.Category, Ruleset: "stackprint"},
		Network: ecsNetwork{Transport: "tcp", Protocol: "tls"},
		Stackprint: spECS{
			SchemaVersion: stackprint.SchemaVersion,
			AlertID:       a.ID,
			UID:           ev.UID,
			FlowID:        ev.FlowID,
			Input:         ev.Source,
			EventKind:     ev.Kind,
			Severity:      a.Severity,
			SignatureID:   a.SignatureID,
			Simulated:     a.Simulated,
			Suppressed:    a.Suppressed,
			Retro:         a.Retro,
			Backfill:      ev.Backfill,
			JARM:          r.JARM,
			Probe: spProbe{
				Status:     string(r.Status),
				Error:      r.Error,
				Started:    ecsTime(r.Started),
				DurationMS: r.Duration.Milliseconds(),
				Conns:      r.Conns,
				StartTLS:   r.StartTLS,
			},
		},
	}
	if a.Simulated || a.Retro {
		d.Tags = append([]string(nil), a.Tags...)
		if a.Simulated {
			d.Tags = append(d.Tags, "simulated")
		}
		if a.Retro {
			d.Tags = append(d.Tags, "retro-hunt")
		}
	}
	if ev.Orig.Addr().IsValid() {
		d.Source = &ecsEndpoint{IP: ev.Orig.Addr().Unmap().String(), Port: int(ev.Orig.Port())}
		d.Related.IP = append(d.Related.IP, d.Source.IP)
	}
	if ev.Resp.Addr().IsValid() {
		d.Destination = &ecsEndpoint{IP: ev.Resp.Addr().Unmap().String(), Port: int(ev.Resp.Port()), Domain: ev.SNI}
		d.Related.IP = append(d.Related.IP, d.Destination.IP)
	}
	if ev.SNI != "" {
		d.Related.Hosts = []string{ev.SNI}
	}
	if r.HasJARM() {
		d.Related.Hash = append(d.Related.Hash, r.JARM)
	}
	if r.ATSF != nil && r.ATSF.ID != "" {
		d.Stackprint.ATSF = &spATSF{ID: r.ATSF.ID, Fingerprint: r.ATSF.Fingerprint}
		d.Related.Hash = append(d.Related.Hash, r.ATSF.ID)
	}
	if r.HTTP != nil {
		d.Stackprint.HTTP = &spHTTP{StatusCode: r.HTTP.StatusCode, Server: r.HTTP.Server}
	}
	if ev.SNI != "" || f.cert != nil {
		d.TLS = &ecsTLS{}
		if ev.SNI != "" {
			d.TLS.Client = &ecsTLSClient{ServerName: ev.SNI}
		}
		if c := f.cert; c != nil {
			d.TLS.Server = ecsServer(c)
			if h := d.TLS.Server.Hash; h != nil {
				for _, x := range []string{h.SHA256, h.SHA1} {
					if x != "" {
						d.Related.Hash = append(d.Related.Hash, x)
					}
				}
			}
		}
	}
	if m := a.Match; hasMatch(m) {
		d.Stackprint.Match = &spMatch{Kind: m.Kind, Value: m.Value, Label: m.Label, Source: m.Source, Confidence: m.Confidence}
		if m.Near != nil {
			n := nearOf(m)
			d.Stackprint.Match.Near = &n
		}
		ind := ecsIndicator{
			Type:        indicatorType(m.Kind),
			Name:        m.Value,
			Description: m.Label,
			Provider:    m.Source,
			Confidence:  ecsConfidence(m.Confidence),
		}
		d.Threat = &ecsThreat{
			Indicator: ind,
			Enrichments: []ecsEnrichment{{
				Indicator: ind,
				Matched: ecsMatched{
					Atomic:   matchedAtomic(m, r),
					Field:    matchedField(m.Kind),
					Type:     "indicator_match_rule",
					ID:       m.Kind + ":" + m.Value,
					Occurred: ecsTime(a.TS),
				},
			}},
		}
		if m.Source != "" {
			d.Threat.Feed = &ecsFeed{Name: m.Source}
		}
	}
	return marshalLine(d, a.ID)
}

func ecsServer(c *stackprint.CertFacts) *ecsTLSServer {
	s := &ecsTLSServer{
		Subject:   c.Subject,
		Issuer:    c.Issuer,
		NotBefore: ecsTime(c.NotBefore),
		NotAfter:  ecsTime(c.NotAfter),
	}
	if c.SHA256 != "" || c.SHA1 != "" {
		s.Hash = &ecsHash{SHA256: strings.ToUpper(c.SHA256), SHA1: strings.ToUpper(c.SHA1)}
	}
	x := &ecsX509{
		SerialNumber:       strings.ToUpper(c.Serial),
		NotBefore:          s.NotBefore,
		NotAfter:           s.NotAfter,
		AlternativeNames:   c.SANs,
		PublicKeyAlgorithm: c.KeyType,
		PublicKeySize:      c.KeyBits,
		SignatureAlgorithm: c.SigAlg,
	}
	if c.Subject != "" {
		x.Subject = &ecsDN{c.Subject}
	}
	if c.Issuer != "" {
		x.Issuer = &ecsDN{c.Issuer}
	}
	if x.Subject != nil || x.Issuer != nil || x.SerialNumber != "" || x.NotAfter != "" || len(x.AlternativeNames) > 0 || x.PublicKeyAlgorithm != "" {
		s.X509 = x
	}
	return s
}

// indicatorType maps a DB kind to ECS threat.indicator.type: a certificate
// hash is an x509-certificate; a JARM or ATSF names a TLS stack, i.e.
// software.
func indicatorType(kind string) string {
	switch kind {
	case "cert_sha1", "cert_sha256":
		return "x509-certificate"
	}
	return "software"
}

// matchedField names the ECS (or stackprint.*) field that held the value.
func matchedField(kind string) string {
	switch kind {
	case "cert_sha1":
		return "tls.server.hash.sha1"
	case "cert_sha256":
		return "tls.server.hash.sha256"
	case "atsf":
		return "stackprint.atsf.id"
	case "jarm":
		return "stackprint.jarm"
	}
	return "stackprint.match.value"
}

// matchedAtomic is the value as it appears in matched.field: certificate
// hashes upper case, like tls.server.hash.*; for a near match the
// server's own fingerprint, which differs from the entry's.
func matchedAtomic(m stackprint.Match, r stackprint.Result) string {
	if m.Kind == "cert_sha1" || m.Kind == "cert_sha256" {
		return strings.ToUpper(m.Value)
	}
	if m.Near != nil {
		switch {
		case m.Kind == "atsf" && r.ATSF != nil && r.ATSF.ID != "":
			return r.ATSF.ID
		case m.Kind == "jarm" && r.JARM != "":
			return r.JARM
		}
	}
	return m.Value
}

func ecsConfidence(c string) string {
	switch c {
	case "high":
		return "High"
	case "medium":
		return "Medium"
	case "low":
		return "Low"
	}
	return "Not Specified"
}

func ecsMessage(a stackprint.Alert) string {
	var b strings.Builder
	b.WriteString(alertMsg(a))
	fmt.Fprintf(&b, " (%s", addrPort(a.Event.Resp))
	if a.Event.SNI != "" {
		b.WriteString(" " + a.Event.SNI)
	}
	b.WriteString(")")
	if a.Simulated {
		b.WriteString(" [simulated]")
	}
	if a.Retro {
		b.WriteString(" [retro-hunt]")
	}
	return b.String()
}

// ecsTime is an ECS date: RFC 3339 in UTC, "" for the zero time.
func ecsTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func addrOnly(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.Addr().Unmap().String()
}
