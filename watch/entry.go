package watch

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// MinEvery is the shortest re-probe interval an entry may ask for.
const MinEvery = time.Second

// Entry is one watched server as the DB stores it.
type Entry struct {
	Addr  netip.AddrPort `json:"addr"`            // canonical ip:port
	SNI   string         `json:"sni,omitempty"`   // server_name of the probes; "" = none
	Every time.Duration  `json:"every,omitempty"` // re-probe interval; 0 = the daemon's watch.every
	Label string         `json:"label,omitempty"`
	// StartTLS is the STARTTLS protocol every probe upgrades with first
	// (stackprint.StartTLSProtocols); "" = by port, as the daemon's probes
	// of logged connections decide (probe.starttls_ports).
	StartTLS string `json:"starttls,omitempty"`
	// Origin says where the entry came from: "cli", "import FILE:LINE",
	// "config rules.baselines[N]".
	Origin string    `json:"origin,omitempty"`
	Added  time.Time `json:"added"`

	// Baseline is what the server is expected to answer; nil until the
	// first successful probe records it (or `watch accept` sets it).
	Baseline   *Fingerprints `json:"baseline,omitempty"`
	BaselineAt time.Time     `json:"baseline_at,omitzero"`
	State      State         `json:"state"`
}

// State is what the daemon learned from the entry's probes.
type State struct {
	LastProbe  time.Time `json:"last_probe,omitzero"`
	LastStatus string    `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	// Current is the fingerprint set of the last successful probe.
	Current *Fingerprints `json:"current,omitempty"`
	// Failures counts the failed probes since the last success, the
	// first of which was made at FailingSince.
	Failures     int       `json:"failures,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	// LastOK is when the last successful probe was made.
	LastOK time.Time `json:"last_ok,omitzero"`
	// Unreachable is set while a watch_unreachable alert stands.
	Unreachable bool `json:"unreachable,omitempty"`
	// Drift is the fingerprint set a watch_drift alert was raised for; nil
	// while the server answers as its baseline.
	Drift *Fingerprints `json:"drift,omitempty"`
	// Pending is a changed set seen once and not confirmed yet: a drift is
	// alerted when the next probe answers the same way (a probe that ran
	// while the server restarted mixes two configurations).
	Pending *Fingerprints `json:"pending,omitempty"`
	// ExpiryWarned is the certificate (SHA-256) a watch_cert_expiry alert
	// was raised for.
	ExpiryWarned string `json:"expiry_warned,omitempty"`
}

// Target is what the daemon probes for e.
func (e Entry) Target() stackprint.Target {
	return stackprint.Target{IP: e.Addr.Addr(), Port: e.Addr.Port(), SNI: e.SNI, StartTLS: e.StartTLS}
}

// ParseStartTLS reads the STARTTLS protocol of `watch add --starttls` and
// of an import's starttls column for a server on port: a protocol name,
// or a service name as sensors write it (xmpp: the client or, on 5269,
// the server variant; postgresql); "" stays "" (by port).
func ParseStartTLS(s string, port uint16) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || stackprint.IsStartTLSProtocol(s) {
		return s, nil
	}
	if !strings.Contains(s, ",") {
		if p := stackprint.StartTLSFromService(s, port); p != "" {
			return p, nil
		}
	}
	return "", fmt.Errorf("starttls %q: want one of %s (xmpp and postgresql are understood too)", s, strings.Join(stackprint.StartTLSProtocols(), ", "))
}

// Key is the entry's identity in the list and the DB: ip:port, plus /sni
// when there is one (stackprint.Target.String).
func (e Entry) Key() string { return e.Target().String() }

// Validate checks an entry before it is stored and canonicalises its
// address and name.
func (e *Entry) Validate() error {
	if !e.Addr.IsValid() || e.Addr.Port() == 0 {
		return fmt.Errorf("watch: address %q: want ip:port with a port", e.Addr)
	}
	e.Addr = netip.AddrPortFrom(stackprint.CanonicalAddr(e.Addr.Addr()), e.Addr.Port())
	if e.SNI != "" {
		sni := stackprint.CanonicalSNI(e.SNI)
		if sni == "" {
			return fmt.Errorf("watch: sni %q: want a host name (an IP literal is never sent as server_name)", e.SNI)
		}
		if strings.ContainsAny(sni, " \t/,") {
			return fmt.Errorf("watch: sni %q: not a host name", e.SNI)
		}
		e.SNI = sni
	}
	if e.StartTLS != "" && !stackprint.IsStartTLSProtocol(e.StartTLS) {
		return fmt.Errorf("watch: starttls %q: want one of %s", e.StartTLS, strings.Join(stackprint.StartTLSProtocols(), ", "))
	}
	if e.Every != 0 && e.Every < MinEvery {
		return fmt.Errorf("watch: every %s: at least %s", e.Every, MinEvery)
	}
	if strings.ContainsAny(e.Label, "\n\r\t") {
		return errors.New("watch: label: no tabs or line breaks")
	}
	if len(e.Label) > 200 {
		return errors.New("watch: label: at most 200 bytes")
	}
	return nil
}

// ParseKey reads a target as `watch rm`/`watch accept` name it: ip:port or
// ip:port/sni ([v6]:port for IPv6). sni, when not empty, overrides the
// name in s.
func ParseKey(s, sni string) (netip.AddrPort, string, error) {
	addr, name, _ := strings.Cut(strings.TrimSpace(s), "/")
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.AddrPort{}, "", fmt.Errorf("target %q: want ip:port or ip:port/sni ([v6]:port for IPv6)", s)
	}
	if sni != "" {
		name = sni
	}
	return netip.AddrPortFrom(stackprint.CanonicalAddr(ap.Addr()), ap.Port()), stackprint.CanonicalSNI(name), nil
}

// Fingerprints is what one probe of a watched server said, reduced to what
// is compared. Empty fields were not measured and are not compared.
type Fingerprints struct {
	JARM string `json:"jarm,omitempty"`
	ATSF string `json:"atsf,omitempty"` // ATSF id; "" unless all ten ClientHellos answered
	// Hellos are the ATSF answers by ClientHello name; an empty Raw is a
	// ClientHello that got no data (timeout, dial error).
	Hellos []Hello `json:"hellos,omitempty"`
	Cert   *Cert   `json:"cert,omitempty"`
	// HTTP is set when the HTTP kind answered; Server is then its Server
	// header ("" when it sent none).
	HTTP       bool   `json:"http,omitempty"`
	HTTPServer string `json:"http_server,omitempty"`
	// StartTLS is the protocol the probe upgraded with ("" = direct TLS);
	// not compared: it says how the fingerprints were measured.
	StartTLS string `json:"starttls,omitempty"`
}

// Hello is the answer to one ATSF ClientHello.
type Hello struct {
	Name string `json:"name"`
	Raw  string `json:"raw"`
}

// Cert is the leaf certificate as compared.
type Cert struct {
	SHA256    string    `json:"sha256"`
	SPKI      string    `json:"spki_sha256,omitempty"` // sha256 of the public key info: the key
	Issuer    string    `json:"issuer,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	Serial    string    `json:"serial,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
}

// kindOK reports whether kind k of r succeeded well enough to compare it.
func kindOK(r stackprint.Result, k string) bool {
	for _, kr := range r.Kinds {
		if kr.Kind == k {
			return kr.Status == stackprint.StatusOK || kr.Status == stackprint.StatusPartial
		}
	}
	return len(r.Kinds) == 0 && (r.Status == stackprint.StatusOK || r.Status == stackprint.StatusPartial)
}

// FromResult takes the comparable fingerprints of a probe result; ok is
// false when the probe measured nothing (the server did not answer).
func FromResult(r stackprint.Result) (Fingerprints, bool) {
	f := Fingerprints{StartTLS: r.StartTLS}
	if r.HasJARM() && kindOK(r, stackprint.KindJARM) {
		f.JARM = r.JARM
	}
	if a := r.ATSF; a != nil && kindOK(r, stackprint.KindATSF) {
		f.ATSF = a.ID
		for _, h := range a.Hellos {
			f.Hellos = append(f.Hellos, Hello{Name: h.Name, Raw: h.Raw})
		}
		if !anyRaw(f.Hellos) {
			f.Hellos = nil
		}
	}
	if c := r.Cert; c != nil && c.SHA256 != "" {
		f.Cert = &Cert{SHA256: c.SHA256, SPKI: c.SPKISHA256, Issuer: c.Issuer, Subject: c.Subject,
			Serial: c.Serial, NotBefore: c.NotBefore, NotAfter: c.NotAfter}
	}
	if h := r.HTTP; h != nil && kindOK(r, stackprint.KindHTTP) {
		f.HTTP, f.HTTPServer = true, h.Server
	}
	return f, f.JARM != "" || f.ATSF != "" || len(f.Hellos) > 0 || f.Cert != nil || f.HTTP
}

func anyRaw(hs []Hello) bool {
	for _, h := range hs {
		if h.Raw != "" {
			return true
		}
	}
	return false
}

// complete fills what base lacks from cur (a baseline imported with a JARM
// alone gains the ATSF answers, the certificate and the Server header of
// the first probe that agrees with it).
func complete(base *Fingerprints, cur Fingerprints) {
	if base.JARM == "" {
		base.JARM = cur.JARM
	}
	if base.ATSF == "" {
		base.ATSF = cur.ATSF
	}
	if len(base.Hellos) == 0 {
		base.Hellos = cur.Hellos
	} else {
		// Answers the baseline lacked (a ClientHello that timed out then).
		have := map[string]int{}
		for i, h := range base.Hellos {
			have[h.Name] = i
		}
		for _, h := range cur.Hellos {
			if i, ok := have[h.Name]; ok && base.Hellos[i].Raw == "" {
				base.Hellos[i].Raw = h.Raw
			}
		}
	}
	if base.Cert == nil {
		base.Cert = cur.Cert
	} else if cur.Cert != nil && base.Cert.SHA256 == cur.Cert.SHA256 && base.Cert.SPKI == "" {
		*base.Cert = *cur.Cert // a config baseline's cert_sha256 alone
	}
	if !base.HTTP {
		base.HTTP, base.HTTPServer = cur.HTTP, cur.HTTPServer
	}
}

// Find picks the entry a command names: addr with sni when sniGiven (""
// for none), else the only entry on addr whatever its name.
func Find(entries []Entry, addr netip.AddrPort, sni string, sniGiven bool) (Entry, error) {
	var cands []Entry
	for _, e := range entries {
		if e.Addr != addr {
			continue
		}
		if e.SNI == sni {
			return e, nil
		}
		cands = append(cands, e)
	}
	switch {
	case sniGiven || len(cands) == 0:
		return Entry{}, fmt.Errorf("%s: not watched", stackprint.Target{IP: addr.Addr(), Port: addr.Port(), SNI: sni})
	case len(cands) == 1:
		return cands[0], nil
	}
	keys := make([]string, len(cands))
	for i, c := range cands {
		keys[i] = c.Key()
	}
	return Entry{}, fmt.Errorf("%s is watched under %d names (%s): name one, as ip:port/sni or with --sni", addr, len(cands), strings.Join(keys, ", "))
}

// Status is a one-word summary of an entry for `watch list`.
func (e Entry) Status() string {
	switch {
	case e.State.Unreachable:
		return "unreachable"
	case e.State.Drift != nil:
		return "drift"
	case e.State.Pending != nil:
		return "changing" // seen once, to be confirmed by the next probe
	case e.Baseline == nil && e.State.LastProbe.IsZero():
		return "new"
	case e.Baseline == nil:
		return "no-baseline"
	case e.State.Failures > 0:
		return "failing"
	}
	return "ok"
}
