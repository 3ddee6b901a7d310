package rules

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// Env is what a rule expression sees. Rule authors use the expr names (the
// struct tags), never the Go names, so the Go side can change freely; the
// package documentation lists them. Every field is always present: an
// absent fact is the zero value ("" , 0, false), never nil, so expressions
// need no nil checks.
type Env struct {
	Event    EnvEvent    `expr:"event"`
	Probe    EnvProbe    `expr:"probe"`
	Match    EnvMatch    `expr:"match"`   // each_match: the match under test; else the strongest, zero when none
	Matches  []EnvMatch  `expr:"matches"` // all exact DB matches, strongest first
	Near     []EnvNear   `expr:"near"`    // near DB matches, most answers equal first
	Nearest  EnvNear     `expr:"nearest"` // each_near: the near match under test; else near[0], zero when none
	Baseline EnvBaseline `expr:"baseline"`
}

// EnvNear is a DB entry close to the result's fingerprint without being
// equal (stackprint.Near): an ATSF entry with 9 of 10 answers equal, or a
// JARM entry with one equal half.
type EnvNear struct {
	Kind         string  `expr:"kind"` // atsf or jarm; "" for none
	Value        string  `expr:"value"`
	Label        string  `expr:"label"`
	Source       string  `expr:"source"`
	Confidence   string  `expr:"confidence"`
	Weight       float64 `expr:"weight"`
	Category     string  `expr:"category"`
	BlockCount   int     `expr:"block_count"`
	TopCount     int     `expr:"top_count"`
	Observations int     `expr:"observations"`
	Score        float64 `expr:"score"`
	// Agree of Of answers are equal (ATSF: ClientHellos of 10; JARM:
	// halves of 2).
	Agree int `expr:"agree"`
	Of    int `expr:"of"`
	// Differs names the differing ClientHellos (random6306) or the JARM
	// half ("ciphers", "extensions"); Details what differs per ClientHello
	// ("ALPN").
	Differs []string `expr:"differs"`
	Details []string `expr:"details"`
	// Text is the sentence the alert carries: "9 of 10 answers equal to
	// <label>; differs on random6306: ALPN".
	Text string `expr:"text"`
}

func newEnvNear(m stackprint.Match) EnvNear {
	em := newEnvMatch(m).withScore()
	n := EnvNear{
		Kind: em.Kind, Value: em.Value, Label: em.Label, Source: em.Source, Confidence: em.Confidence,
		Weight: em.Weight, Category: em.Category, BlockCount: em.BlockCount, TopCount: em.TopCount,
		Observations: em.Observations, Score: em.Score, Differs: []string{}, Details: []string{},
	}
	if m.Near != nil {
		n.Agree, n.Of = m.Near.Agree, m.Near.Of
		n.Differs = append(n.Differs, m.Near.Differs...)
		n.Details = append(n.Details, m.Near.Details...)
		n.Text = m.Near.Text(m.Label)
	}
	return n
}

// envNears converts the near matches, best first (agreement, then weight),
// and keeps the index into ms of each.
func envNears(ms []stackprint.Match) ([]EnvNear, []int) {
	if len(ms) == 0 {
		return nil, nil
	}
	idx := make([]int, len(ms))
	out := make([]EnvNear, len(ms))
	for i, m := range ms {
		idx[i] = i
		out[i] = newEnvNear(m)
	}
	frac := func(n EnvNear) float64 { return float64(n.Agree) / float64(max(n.Of, 1)) }
	slices.SortStableFunc(idx, func(a, b int) int {
		if c := cmp.Compare(frac(out[b]), frac(out[a])); c != 0 {
			return c
		}
		return cmp.Compare(out[b].Weight, out[a].Weight)
	})
	sorted := make([]EnvNear, len(ms))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted, idx
}

// EnvEvent is the observed connection.
type EnvEvent struct {
	TS       time.Time `expr:"ts"`
	UID      string    `expr:"uid"`     // Zeek uid, "" for Suricata
	FlowID   uint64    `expr:"flow_id"` // Suricata flow_id, 0 for Zeek
	ConnID   string    `expr:"conn_id"` // uid, or flow_id in decimal
	OrigIP   string    `expr:"orig_ip"`
	OrigPort int       `expr:"orig_port"`
	RespIP   string    `expr:"resp_ip"`
	RespPort int       `expr:"resp_port"`
	SNI      string    `expr:"sni"`    // lower case, no trailing dot, "" when none
	Source   string    `expr:"source"` // configured input name
	Kind     string    `expr:"kind"`   // zeek_ssl, zeek_conn, eve_tls, eve_flow, eve_alert
}

// EnvProbe is the probe result of the event's target.
type EnvProbe struct {
	Status   string  `expr:"status"` // ok, partial, timeout, ... (stackprint.Status)
	Error    string  `expr:"error"`
	Conns    int     `expr:"conns"`
	Duration float64 `expr:"duration"` // seconds
	JARM     string  `expr:"jarm"`
	JARMRaw  string  `expr:"jarm_raw"`
	HasJARM  bool    `expr:"has_jarm"` // a JARM usable as a fingerprint (not the all-zero hash)
	// KindStatus is the status per fingerprint kind (jarm, atsf, cert,
	// http); a kind not probed is absent, so kind_status.atsf == "ok" is
	// false for it.
	KindStatus map[string]string `expr:"kind_status"`
	ATSF       EnvATSF           `expr:"atsf"`
	Cert       EnvCert           `expr:"cert"`
	HTTP       EnvHTTP           `expr:"http"`
}

// EnvATSF is the ATSF fingerprint; "" when not all ten ClientHellos answered.
type EnvATSF struct {
	ID          string `expr:"id"` // sha256 hex of fingerprint, the DB key
	Fingerprint string `expr:"fingerprint"`
}

// EnvCert is the server's leaf certificate.
type EnvCert struct {
	SHA256     string    `expr:"sha256"` // lower-case hex
	SHA1       string    `expr:"sha1"`
	Subject    string    `expr:"subject"`
	Issuer     string    `expr:"issuer"`
	Serial     string    `expr:"serial"`
	SANs       []string  `expr:"sans"`
	NotBefore  time.Time `expr:"not_before"`
	NotAfter   time.Time `expr:"not_after"`
	SelfSigned bool      `expr:"self_signed"`
	KeyType    string    `expr:"key_type"`
	KeyBits    int       `expr:"key_bits"`
	SigAlg     string    `expr:"sig_alg"`
}

// EnvHTTP is the answer to a HEAD / over TLS.
type EnvHTTP struct {
	Fetched    bool   `expr:"fetched"`
	StatusCode int    `expr:"status_code"`
	Server     string `expr:"server"` // the Server header, "" when absent
}

// EnvMatch is one DB entry that matched a fingerprint of the result.
type EnvMatch struct {
	Kind       string `expr:"kind"` // jarm, atsf, cert_sha256, cert_sha1; "" for no match
	Value      string `expr:"value"`
	Label      string `expr:"label"`
	Source     string `expr:"source"`
	Confidence string `expr:"confidence"` // low, medium, high
	// Weight is the confidence as a number: high 1.0, medium (or unset)
	// 0.6, low 0.3; 0 for no match.
	Weight   float64 `expr:"weight"`
	Category string  `expr:"category"`
	// Learned from block and top lists (docs/ATSF.md): BlockCount servers
	// on block lists and TopCount on top lists were seen with this
	// fingerprint; Observations is their sum and Score is
	// BlockCount/Observations, 0 when there are none.
	BlockCount   int     `expr:"block_count"`
	TopCount     int     `expr:"top_count"`
	Observations int     `expr:"observations"`
	Score        float64 `expr:"score"`
}

// EnvBaseline is the recorded fingerprint of a monitored own server.
type EnvBaseline struct {
	Known      bool      `expr:"known"` // the target is monitored and has a baseline
	JARM       string    `expr:"jarm"`
	ATSF       string    `expr:"atsf"` // ATSF id (sha256 hex)
	CertSHA256 string    `expr:"cert_sha256"`
	Recorded   time.Time `expr:"recorded"`
}

// Baseline is the recorded fingerprint of a monitored server. Empty fields
// are not compared.
type Baseline struct {
	JARM       string
	ATSF       string // ATSF id (sha256 hex)
	CertSHA256 string
	Recorded   time.Time
}

// Baselines supplies the baselines of monitored servers. Judge calls it once
// per event, from several goroutines: it must be fast and safe for
// concurrent use.
type Baselines interface {
	Baseline(t stackprint.Target) (Baseline, bool)
}

// StaticBaselines is a fixed table of baselines, e.g. from the config. A
// target is looked up with its SNI first, then without one, so one entry
// covers a server whatever name clients use.
type StaticBaselines map[stackprint.Target]Baseline

// Baseline implements Baselines.
func (s StaticBaselines) Baseline(t stackprint.Target) (Baseline, bool) {
	if b, ok := s[t]; ok {
		return b, true
	}
	t.SNI = ""
	b, ok := s[t]
	return b, ok
}

// ParseBaseline checks and normalises a baseline as an operator writes it:
// hex fingerprints, colons allowed in the certificate hash.
func ParseBaseline(jarm, atsf, certSHA256 string) (Baseline, error) {
	b := Baseline{
		JARM:       strings.ToLower(strings.TrimSpace(jarm)),
		ATSF:       strings.ToLower(strings.TrimSpace(atsf)),
		CertSHA256: strings.ToLower(strings.ReplaceAll(strings.TrimSpace(certSHA256), ":", "")),
	}
	for _, f := range []struct {
		name, v string
		n       int
	}{{"jarm", b.JARM, 62}, {"atsf", b.ATSF, 64}, {"cert_sha256", b.CertSHA256, 64}} {
		if f.v != "" && (len(f.v) != f.n || strings.Trim(f.v, "0123456789abcdef") != "") {
			return Baseline{}, fmt.Errorf("%s %q: want %d hex characters", f.name, f.v, f.n)
		}
	}
	if b.JARM == stackprint.ZeroJARM {
		return Baseline{}, fmt.Errorf("jarm: the all-zero JARM means no answer, not a baseline")
	}
	if b.JARM == "" && b.ATSF == "" && b.CertSHA256 == "" {
		return Baseline{}, fmt.Errorf("a baseline needs at least one of jarm, atsf, cert_sha256")
	}
	return b, nil
}

// Confidence weights: a number so rules can compare and combine them.
const (
	WeightHigh   = 1.0
	WeightMedium = 0.6
	WeightLow    = 0.3
)

func confidenceWeight(c string) float64 {
	switch c {
	case "high":
		return WeightHigh
	case "low":
		return WeightLow
	case "medium", "":
		return WeightMedium
	}
	return 0
}

func newEnvMatch(m stackprint.Match) EnvMatch {
	return EnvMatch{
		Kind:       m.Kind,
		Value:      m.Value,
		Label:      m.Label,
		Source:     m.Source,
		Confidence: m.Confidence,
		Weight:     confidenceWeight(m.Confidence),
		Category:   m.Category,
		BlockCount: int(min(m.BlockCount, 1<<31)),
		TopCount:   int(min(m.TopCount, 1<<31)),
	}
}

// withScore derives the learned-score fields from the counts.
func (m EnvMatch) withScore() EnvMatch {
	m.Observations = m.BlockCount + m.TopCount
	if m.Observations > 0 {
		m.Score = float64(m.BlockCount) / float64(m.Observations)
	}
	return m
}

// envMatches converts ms, strongest first (by weight, then score; stable so
// the DB's order breaks ties), and keeps the index into ms of each.
func envMatches(ms []stackprint.Match) ([]EnvMatch, []int) {
	if len(ms) == 0 {
		return nil, nil
	}
	idx := make([]int, len(ms))
	for i := range idx {
		idx[i] = i
	}
	out := make([]EnvMatch, len(ms))
	for i, m := range ms {
		out[i] = newEnvMatch(m).withScore()
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if c := cmp.Compare(out[b].Weight, out[a].Weight); c != 0 {
			return c
		}
		return cmp.Compare(out[b].Score, out[a].Score)
	})
	sorted := make([]EnvMatch, len(ms))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted, idx
}

// newEnv builds the environment of one event. matches and near are already
// converted by envMatches and envNears.
func newEnv(ev stackprint.Event, r stackprint.Result, matches []EnvMatch, near []EnvNear, b Baseline, known bool) Env {
	env := Env{
		Event: EnvEvent{
			TS:       ev.TS,
			UID:      ev.UID,
			FlowID:   ev.FlowID,
			ConnID:   ev.ConnID(),
			OrigIP:   addrString(ev.Orig.Addr()),
			OrigPort: int(ev.Orig.Port()),
			RespIP:   addrString(ev.Resp.Addr()),
			RespPort: int(ev.Resp.Port()),
			SNI:      ev.SNI,
			Source:   ev.Source,
			Kind:     ev.Kind,
		},
		Probe:   newEnvProbe(r),
		Matches: matches,
		Near:    near,
	}
	if len(matches) > 0 {
		env.Match = matches[0]
	}
	if len(near) > 0 {
		env.Nearest = near[0]
	} else {
		env.Nearest = EnvNear{Differs: []string{}, Details: []string{}}
	}
	if known {
		env.Baseline = EnvBaseline{Known: true, JARM: b.JARM, ATSF: b.ATSF, CertSHA256: b.CertSHA256, Recorded: b.Recorded}
	}
	return env
}

func newEnvProbe(r stackprint.Result) EnvProbe {
	p := EnvProbe{
		Status:     string(r.Status),
		Error:      r.Error,
		Conns:      r.Conns,
		Duration:   r.Duration.Seconds(),
		JARM:       r.JARM,
		JARMRaw:    r.JARMRaw,
		HasJARM:    r.HasJARM(),
		KindStatus: make(map[string]string, max(len(r.Kinds), 1)),
	}
	for _, k := range r.Kinds {
		p.KindStatus[k.Kind] = string(k.Status)
	}
	// A JARM-only prober reports no kinds: its status is the JARM's.
	if len(r.Kinds) == 0 && r.JARM != "" {
		p.KindStatus[stackprint.KindJARM] = string(r.Status)
	}
	if a := r.ATSF; a != nil {
		p.ATSF = EnvATSF{ID: a.ID, Fingerprint: a.Fingerprint}
	}
	if c := r.Cert; c != nil {
		p.Cert = EnvCert{
			SHA256: strings.ToLower(c.SHA256), SHA1: strings.ToLower(c.SHA1),
			Subject: c.Subject, Issuer: c.Issuer, Serial: c.Serial, SANs: c.SANs,
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, SelfSigned: c.SelfSigned,
			KeyType: c.KeyType, KeyBits: c.KeyBits, SigAlg: c.SigAlg,
		}
	}
	if h := r.HTTP; h != nil {
		p.HTTP = EnvHTTP{Fetched: true, StatusCode: h.StatusCode, Server: h.Server}
	}
	return p
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
