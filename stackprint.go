// Package stackprint holds the domain types shared along the data flow of
// the daemon: an Event observed by a sensor, the Target it names, the probe
// Result for that target, DB Matches and the Alert written for a SOC.
//
// Packages below (tailer, enrich, probe, db, rules, output) import this one;
// it imports none of them.
package stackprint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is written on every output record; bump it when a field
// changes meaning or disappears.
const SchemaVersion = 1

// Event is one observed connection to a TLS server.
type Event struct {
	TS     time.Time      // connection start as logged by the sensor
	UID    string         // Zeek connection uid, empty for Suricata
	FlowID uint64         // Suricata flow_id, 0 when unknown
	Orig   netip.AddrPort // client
	Resp   netip.AddrPort // server (responder)
	SNI    string         // canonical: lower case, no trailing dot, never an IP literal
	Source string         // name of the configured input that produced it
	Kind   string         // zeek_ssl, zeek_conn, eve_tls, eve_flow, eve_alert
	File   string         // file the line came from
	Offset int64          // byte offset just past the line in File
	Ident  string         // identity of that file: device, inode, content fingerprint (tailer.Position)
	Seq    uint64         // delivery ledger id, assigned in process; 0 = untracked
	// Queued is when the daemon first took the event in; it survives a
	// restart with a parked event, so the backlog age limit counts from
	// the first sighting, not from the last start.
	Queued time.Time `json:",omitzero"`
	// Service is the application protocol the sensor saw on the
	// connection, lower case, as logged (Zeek conn service without "ssl",
	// e.g. "smtp"; EVE app_proto other than tls); "" when not logged.
	Service string
	// Backfill marks a connection read by `stackprint scan` from an old
	// log: its records and alerts are marked so.
	Backfill bool `json:",omitempty"`
}

// Target returns the dedup and probe key of e.
func (e Event) Target() Target {
	return Target{IP: e.Resp.Addr(), Port: e.Resp.Port(), SNI: e.SNI, StartTLS: StartTLSFromService(e.Service, e.Resp.Port())}
}

// ConnID is the sensor's identifier of the connection: the Zeek uid or the
// Suricata flow_id in decimal.
func (e Event) ConnID() string {
	if e.UID != "" {
		return e.UID
	}
	if e.FlowID != 0 {
		return strconv.FormatUint(e.FlowID, 10)
	}
	return ""
}

// Target is a TLS server to fingerprint: the responder address plus the SNI
// clients used with it.
type Target struct {
	IP   netip.Addr
	Port uint16
	SNI  string
	// StartTLS is the STARTTLS protocol the sensor saw on the connection
	// (StartTLSFromService); "" when it named none, and the prober then
	// decides by port.
	StartTLS string
}

// STARTTLS protocols: a probe of such a service upgrades every connection
// with the protocol's exchange before its ClientHello.
const (
	StartTLSSMTP       = "smtp"
	StartTLSIMAP       = "imap"
	StartTLSPOP3       = "pop3"
	StartTLSFTP        = "ftp"
	StartTLSXMPPClient = "xmpp-client"
	StartTLSXMPPServer = "xmpp-server"
	StartTLSLDAP       = "ldap"
	StartTLSPostgres   = "postgres"
)

// StartTLSProtocols lists the STARTTLS protocols.
func StartTLSProtocols() []string {
	return []string{StartTLSFTP, StartTLSIMAP, StartTLSLDAP, StartTLSPOP3, StartTLSPostgres, StartTLSSMTP, StartTLSXMPPClient, StartTLSXMPPServer}
}

// IsStartTLSProtocol reports whether p is one of StartTLSProtocols.
func IsStartTLSProtocol(p string) bool {
	switch p {
	case StartTLSFTP, StartTLSIMAP, StartTLSLDAP, StartTLSPOP3, StartTLSPostgres, StartTLSSMTP, StartTLSXMPPClient, StartTLSXMPPServer:
		return true
	}
	return false
}

// StartTLSFromService maps a sensor's service names (Zeek conn service,
// a comma-separated list; Suricata app_proto) to the STARTTLS protocol
// they name, "" for none. XMPP is the server-to-server variant on 5269.
func StartTLSFromService(service string, port uint16) string {
	for s := range strings.SplitSeq(strings.ToLower(service), ",") {
		switch strings.TrimSpace(s) {
		case "smtp":
			return StartTLSSMTP
		case "imap":
			return StartTLSIMAP
		case "pop3":
			return StartTLSPOP3
		case "ftp":
			return StartTLSFTP
		case "ldap", "ldap_tcp":
			return StartTLSLDAP
		case "postgresql", "pgsql", "postgres":
			return StartTLSPostgres
		case "xmpp":
			if port == 5269 {
				return StartTLSXMPPServer
			}
			return StartTLSXMPPClient
		}
	}
	return ""
}

// Addr returns ip:port.
func (t Target) Addr() netip.AddrPort { return netip.AddrPortFrom(t.IP, t.Port) }

// String renders ip:port, plus /sni when there is one.
func (t Target) String() string {
	s := t.Addr().String()
	if t.SNI != "" {
		s += "/" + t.SNI
	}
	return s
}

// CanonicalSNI lower-cases name, trims a trailing dot and returns "" for an
// IP literal, as the Event contract requires.
func CanonicalSNI(name string) string {
	name = strings.TrimRight(strings.ToLower(strings.TrimSpace(name)), ".")
	if name == "-" || name == "(empty)" {
		return ""
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return ""
	}
	return name
}

// ClientBuckets is how many groups the backlog of waiting events is kept
// in, by client host: fair loading without per-client state (a million
// clients cost the same as a few), as fq_codel hashes flows.
const ClientBuckets = 1024

// ClientBucket is the backlog group of a client host (FNV-1a of its
// 16-byte form, stable across runs and builds).
func ClientBucket(a netip.Addr) uint16 {
	h := uint32(2166136261)
	for _, b := range a.As16() {
		h = (h ^ uint32(b)) * 16777619
	}
	return uint16(h % ClientBuckets)
}

// CanonicalAddr unmaps IPv4-mapped IPv6 addresses and drops zones.
func CanonicalAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// Status is the outcome of fingerprinting one target.
type Status string

// The fixed status enum of docs/DESIGN.md.
const (
	StatusOK             Status = "ok"
	StatusPartial        Status = "partial"
	StatusTimeout        Status = "timeout"
	StatusRefused        Status = "refused"
	StatusReset          Status = "reset"
	StatusNotTLS         Status = "not_tls"
	StatusHandshakeError Status = "handshake_error"
	StatusOutOfScope     Status = "out_of_scope"
	StatusRateLimited    Status = "rate_limited"
	StatusBudgetExceeded Status = "budget_exceeded"
	// StatusExpired ends an event that waited longer than the scheduler's
	// age limit for a probe (scheduler.max_wait): the one way an event
	// ends without a verdict, counted and recorded.
	StatusExpired Status = "expired"
)

// ZeroJARM is the hash of a run with no answer at all. It is a status, never
// a fingerprint: it must never match the DB.
const ZeroJARM = "00000000000000000000000000000000000000000000000000000000000000"

// Result is the probe record of one target. Every target gets one,
// failures included.
type Result struct {
	Target   Target
	Started  time.Time
	Duration time.Duration
	Status   Status
	Error    string // short, human readable; empty when ok
	Conns    int    // TCP connections opened
	StartTLS string // STARTTLS protocol every connection was upgraded with; "" = direct TLS
	JARM     string // 62 hex; ZeroJARM when no probe answered
	JARMRaw  string // the ten per-probe strings joined by ","

	// Filled by the composite prober (probe.Engine); nil or empty when the
	// kind was not requested or produced nothing.
	Kinds []KindResult // one per requested kind, in probe order
	ATSF  *ATSF        // 10-ClientHello stack fingerprint (docs/ATSF.md)
	Cert  *CertFacts   // leaf certificate of an ordinary handshake
	HTTP  *HTTPFacts   // head of the answer to one GET / over TLS
}

// ProbeOptions refine one probe of a prober that takes them.
type ProbeOptions struct {
	Kinds []string // fingerprint kinds to take; nil: all the prober has
	// Answered, when set, is called once the target has answered its
	// first ClientHello in any way (data, close, reset), before the next
	// connection; with JARM not among the kinds, before the first one.
	// The scheduler charges the rest of the probe's connection budget
	// there, so a tarpit costs one connection. An error stops the probe
	// as a timeout.
	Answered func(context.Context) error
}

// HasATSF reports whether r carries a complete ATSF fingerprint usable for
// matching (all ten ClientHellos answered).
func (r Result) HasATSF() bool { return r.ATSF != nil && r.ATSF.ID != "" }

// Fingerprint kinds of a probe (config probe.kinds, KindResult.Kind).
const (
	KindJARM = "jarm"
	KindATSF = "atsf"
	KindCert = "cert"
	KindHTTP = "http"
)

// KindResult is the outcome of one fingerprint kind within a probe.
type KindResult struct {
	Kind     string        `json:"kind"`
	Status   Status        `json:"status"`
	Error    string        `json:"error,omitempty"`
	Conns    int           `json:"conns"`
	Duration time.Duration `json:"duration_ns"`
}

// ATSF is the Active TLS Stack Fingerprint: ten fixed ClientHellos, one
// feature string per answer, combined into one string.
type ATSF struct {
	Fingerprint string      `json:"fingerprint"` // combined string (sorted CHs, "|", status_request removed); "" unless all ten answered
	ID          string      `json:"id"`          // sha256 hex of Fingerprint; "" when there is none
	Hellos      []ATSFHello `json:"hellos"`      // in the sorted ClientHello order
}

// ATSFHello is the answer to one ATSF ClientHello.
type ATSFHello struct {
	Name    string `json:"name"`              // e.g. random4520
	Raw     string `json:"raw"`               // per-ClientHello string, status_request kept; "" = no data
	Version uint16 `json:"version,omitempty"` // negotiated version when the handshake finished
	Error   string `json:"error,omitempty"`   // why the client stopped, if it did
}

// CertFacts describes the leaf certificate a server presented.
type CertFacts struct {
	SHA256     string    `json:"sha256"` // hex of the leaf DER
	SHA1       string    `json:"sha1"`   // hex of the leaf DER (abuse.ch SSLBL)
	Subject    string    `json:"subject,omitempty"`
	Issuer     string    `json:"issuer,omitempty"`
	Serial     string    `json:"serial,omitempty"` // hex
	SANs       []string  `json:"sans,omitempty"`
	NotBefore  time.Time `json:"not_before,omitzero"`
	NotAfter   time.Time `json:"not_after,omitzero"`
	SelfSigned bool      `json:"self_signed"`
	KeyType    string    `json:"key_type,omitempty"` // RSA, ECDSA, Ed25519, DSA, unknown
	KeyBits    int       `json:"key_bits,omitempty"`
	SigAlg     string    `json:"sig_alg,omitempty"`
	ChainLen   int       `json:"chain_len"`             // certificates the server sent
	ParseError string    `json:"parse_error,omitempty"` // leaf not parsable: only hashes and chain length are set
	// SPKISHA256 is the hex SHA-256 of the SubjectPublicKeyInfo: the key's
	// identity, which a re-issued certificate keeps (the watch list tells a
	// rotation from a new key by it).
	SPKISHA256 string `json:"spki_sha256,omitempty"`
}

// HTTPFacts is what the head of the answer to one GET / over TLS said.
type HTTPFacts struct {
	StatusCode int    `json:"status_code,omitempty"`
	Server     string `json:"server"`
}

// Only returns r reduced to the given fingerprint kinds: the fields and
// kind outcomes of the others are dropped and the status is summarized
// again over what is left. The scheduler uses it to split a server probe
// into what every name of the server shares (JARM, ATSF) and what belongs
// to the name it was taken with (certificate, HTTP).
func (r Result) Only(kinds []string) Result {
	has := func(k string) bool {
		for _, x := range kinds {
			if x == k {
				return true
			}
		}
		return false
	}
	out := r
	out.Kinds = nil
	for _, k := range r.Kinds {
		if has(k.Kind) {
			out.Kinds = append(out.Kinds, k)
		}
	}
	if !has(KindJARM) {
		out.JARM, out.JARMRaw = "", ""
	}
	if !has(KindATSF) {
		out.ATSF = nil
	}
	if !has(KindCert) {
		out.Cert = nil
	}
	if !has(KindHTTP) {
		out.HTTP = nil
	}
	if len(out.Kinds) > 0 {
		out.Status, out.Error = Summarize(out.Kinds)
	}
	return out
}

// Merge completes a server-level result with a name-level one (taken for
// name's SNI): fingerprints of both, kind outcomes of both, the status
// summarized over all, and name's target, time and connections.
func Merge(server, name Result) Result {
	out := server
	out.Target, out.Started, out.Duration, out.Conns = name.Target, name.Started, name.Duration, name.Conns
	out.Kinds = append(append([]KindResult(nil), server.Kinds...), name.Kinds...)
	if name.Cert != nil {
		out.Cert = name.Cert
	}
	if name.HTTP != nil {
		out.HTTP = name.HTTP
	}
	if name.ATSF != nil {
		out.ATSF = name.ATSF
	}
	if len(out.Kinds) > 0 {
		out.Status, out.Error = Summarize(out.Kinds)
	}
	return out
}

// Summarize derives a target's status from its kinds. HTTP is auxiliary: a
// TLS server that is no web server is normal, so HTTP only counts when it
// is the only kind. ok: every counted kind ok; partial: some kind ok or
// partial; otherwise the first counted kind's failure.
func Summarize(kinds []KindResult) (Status, string) {
	var counted []KindResult
	for _, k := range kinds {
		if k.Kind != KindHTTP || len(kinds) == 1 {
			counted = append(counted, k)
		}
	}
	if len(counted) == 0 {
		return StatusHandshakeError, "probe: no kind ran"
	}
	allOK, anyGood := true, false
	var errs []string
	for _, k := range counted {
		switch k.Status {
		case StatusOK:
			anyGood = true
			continue
		case StatusPartial:
			anyGood = true
		}
		allOK = false
		if k.Error != "" {
			errs = append(errs, k.Error)
		}
	}
	msg := strings.Join(errs, "; ")
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	switch {
	case allOK:
		return StatusOK, ""
	case anyGood:
		return StatusPartial, msg
	}
	return counted[0].Status, msg
}

// HasJARM reports whether r carries a JARM usable as a fingerprint.
func (r Result) HasJARM() bool { return r.JARM != "" && r.JARM != ZeroJARM }

// Match is one DB entry that matched a fingerprint of a result.
type Match struct {
	Kind       string `json:"kind"`
	Value      string `json:"value"`
	Label      string `json:"label"`
	Source     string `json:"source,omitempty"`
	Confidence string `json:"confidence,omitempty"`
	// From the DB entry, for rules: its category and the learned counts
	// (block-listed and top-list targets seen with it).
	Category   string `json:"category,omitempty"`
	BlockCount uint64 `json:"block_count,omitempty"`
	TopCount   uint64 `json:"top_count,omitempty"`
	// Near is set when the entry is not the result's fingerprint but
	// close to it: most of its ATSF answers, or one JARM half, are equal.
	// nil for an exact match.
	Near *Near `json:"near,omitempty"`
}

// Exact reports whether m is an exact match (not a near one).
func (m Match) Exact() bool { return m.Near == nil }

// ExactMatches returns the exact matches of ms, in order.
func ExactMatches(ms []Match) []Match {
	var out []Match
	for _, m := range ms {
		if m.Exact() {
			out = append(out, m)
		}
	}
	return out
}

// Near says how close a DB entry is to a result's fingerprint.
type Near struct {
	// Agree of Of parts are equal: ClientHello answers for ATSF (of 10),
	// halves for JARM (1 of 2).
	Agree int `json:"agree"`
	Of    int `json:"of"`
	// Differs names the parts that differ: ClientHello names (random6306)
	// for ATSF; "ciphers" (the first 30 characters: cipher and version
	// choices) or "extensions" (the last 32: hashed extensions) for JARM.
	Differs []string `json:"differs"`
	// Details says, per differing ClientHello, what differs in the answer
	// ("ALPN", "cipher", "alert 40", …); empty for JARM.
	Details []string `json:"details,omitempty"`
}

// Text is the one line an analyst reads: "9 of 10 answers equal to
// <label>; differs on random6306: ALPN".
func (n Near) Text(label string) string {
	var b strings.Builder
	if n.Of == 2 && len(n.Differs) == 1 && (n.Differs[0] == NearJARMCiphers || n.Differs[0] == NearJARMExtensions) {
		same := NearJARMCiphers
		if n.Differs[0] == NearJARMCiphers {
			same = NearJARMExtensions
		}
		b.WriteString("JARM " + same + " half equal to " + label + "; differs on " + n.Differs[0])
		return b.String()
	}
	b.WriteString(strconv.Itoa(n.Agree) + " of " + strconv.Itoa(n.Of) + " answers equal to " + label)
	if len(n.Differs) > 0 {
		b.WriteString("; differs on ")
		for i, d := range n.Differs {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(d)
			if i < len(n.Details) && n.Details[i] != "" {
				b.WriteString(": " + n.Details[i])
			}
		}
	}
	return b.String()
}

// The two halves of a JARM (docs/JARM.md): the first 30 characters encode
// the cipher and version chosen per ClientHello, the last 32 a hash of the
// extensions.
const (
	NearJARMCiphers    = "ciphers"
	NearJARMExtensions = "extensions"
)

// Verdict is a rule's decision that an event deserves an alert.
type Verdict struct {
	Rule     string // rule id
	Severity string // info, low, medium, high or critical
	Match    Match  // the DB entry the rule fired on; zero when none

	// What the rule says about itself, carried so every output can say
	// why the alert fired without looking the rule up again.
	RuleName    string
	Description string
	Category    string   // EVE alert.category, ECS rule.category
	SignatureID int      // EVE alert.signature_id
	Tags        []string // shared with the rule: never modify
	// Simulated alerts are written, marked, and kept out of the Zeek Intel
	// and Suricata dataset feeds: simulation must not change what the
	// sensor blocks or flags.
	Simulated bool
	// Suppressed counts the events of the same (orig ip, target, rule)
	// that were not alerted since the previous alert.
	Suppressed int
	// Values are the facts the rule's expression read, by name
	// ("match.kind", "nearest.agree"), formatted as text.
	Values map[string]string
}

// Alert is a verdict on one event: its target carried a fingerprint that a
// rule flagged.
type Alert struct {
	ID       string
	TS       time.Time // when the alert was made
	Event    Event
	Result   Result
	Match    Match
	Rule     string
	Severity string

	// Copied from the Verdict; see there.
	RuleName    string
	Description string
	Category    string
	SignatureID int
	Tags        []string
	Simulated   bool
	Suppressed  int
	// Retro marks an alert raised by a retro-hunt: a fingerprint added to
	// the DB matched a target probed earlier; Event is that target, not a
	// connection.
	Retro bool
	// Detail is one line on what this occurrence is about, beyond the
	// rule's fixed description: for the watch list's alerts, exactly what
	// changed. "" when the rule says it all.
	Detail string
	// Values are what the rule's expression read when it fired (copied
	// from the Verdict), for explain.
	Values map[string]string
}

// NewAlert is the alert for verdict v on ev, whose target's probe result is
// r, made at ts. Building alerts here keeps every Verdict field flowing to
// the outputs when fields are added.
func NewAlert(v Verdict, ev Event, r Result, ts time.Time) Alert {
	return Alert{
		ID:          AlertID(v.Rule, ev, r.JARM),
		TS:          ts,
		Event:       ev,
		Result:      r,
		Match:       v.Match,
		Rule:        v.Rule,
		Severity:    v.Severity,
		RuleName:    v.RuleName,
		Description: v.Description,
		Category:    v.Category,
		SignatureID: v.SignatureID,
		Tags:        v.Tags,
		Simulated:   v.Simulated,
		Suppressed:  v.Suppressed,
		Values:      v.Values,
	}
}

// AlertID is deterministic over (rule, connection, target, fingerprint) so a
// replay after a crash yields the same id and SIEMs can dedup it.
func AlertID(rule string, ev Event, fingerprint string) string {
	h := sha256.New()
	for _, s := range []string{rule, ev.ConnID(), ev.Orig.String(), ev.Target().String(), fingerprint} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}
