// Package explain answers an analyst's questions about a server, an alert
// or a fingerprint from what the DB keeps: the observations and probe log
// of every probed target, its fingerprint history, the DB entries it
// matches exactly and nearly, the alerts raised with the values their
// rules read, and the connections that triggered probes.
//
// It reads through Store (the DB file, or the daemon's DB behind the admin
// API) and returns a Report that renders as text (Text) or JSON.
package explain

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/rules"
)

// Store is what explain reads; *db.DB implements it.
type Store interface {
	ObservationsOf(ip netip.Addr, port uint16, sni string, exact bool) ([]db.Observation, error)
	ProbeLog(t stackprint.Target) ([]db.ProbeEntry, error)
	AlertsOf(t stackprint.Target) ([]db.AlertRecord, error)
	Alert(id string) (db.AlertRecord, bool, error)
	Match(r stackprint.Result) ([]stackprint.Match, error)
	Get(kind, value string) (db.Record, bool, error)
	ObservationsWith(kind, value string, since time.Time) ([]db.Sighting, error)
	NearIndexed() bool
}

// Rule is what explain shows of the rule an alert names.
type Rule struct {
	ID           string         `json:"id"`
	Name         string         `json:"name,omitempty"`
	When         string         `json:"when"`
	SeverityExpr string         `json:"severity_expr,omitempty"`
	Params       map[string]any `json:"params,omitempty"`
	File         string         `json:"file,omitempty"`
}

// Rules looks a rule up by id (the loaded rule set); nil: rules unknown.
type Rules func(id string) (Rule, bool)

// Query kinds.
const (
	KindTarget      = "target"
	KindAlert       = "alert"
	KindFingerprint = "fingerprint"
)

// Report is the answer to one query.
type Report struct {
	Query string `json:"query"`
	Kind  string `json:"kind"` // target, alert or fingerprint
	// Alert: the alert asked for, with its rule.
	Alert *AlertReport `json:"alert,omitempty"`
	// Servers: the targets of the address asked for, or of the alert.
	Servers []Server `json:"servers"`
	// Fingerprint: the DB entries that are it (one per kind it can be) and
	// the observed servers that carried it.
	Fingerprint *FingerprintReport `json:"fingerprint,omitempty"`
	// NearIndexed is false for a file whose near index was never built
	// (opened read-only since an older stackprint wrote it): no near
	// matches can be shown.
	NearIndexed bool `json:"near_indexed"`
}

// AlertReport is an alert and the rule that raised it.
type AlertReport struct {
	db.AlertRecord
	RuleDef *Rule `json:"rule_def,omitempty"`
}

// Server is everything known about one target.
type Server struct {
	Target   string             `json:"target"` // ip:port[/sni]
	IP       netip.Addr         `json:"ip"`
	Port     uint16             `json:"port,omitempty"`
	SNI      string             `json:"sni,omitempty"`
	Observed bool               `json:"observed"`
	Current  *db.Observation    `json:"observation,omitempty"`
	Probes   []db.ProbeEntry    `json:"probes"`
	History  []db.Change        `json:"history"` // oldest first; the current set is Current
	Exact    []stackprint.Match `json:"exact"`
	Near     []stackprint.Match `json:"near"`
	Alerts   []db.AlertRecord   `json:"alerts"`
	Rules    []string           `json:"rules_fired"`
	Clients  []db.Client        `json:"clients"`
}

// FingerprintReport is a fingerprint's DB entries and carriers.
type FingerprintReport struct {
	Value   string        `json:"value"`
	Entries []db.Record   `json:"entries"`
	Servers []db.Sighting `json:"servers"`
}

// Explain answers query: an alert id (32 hex), a fingerprint (40, 62 or 64
// hex, optionally PROTOCOL: for STARTTLS), or a target (ip, ip:port,
// [v6]:port, each optionally /sni).
func Explain(s Store, rules Rules, query string) (Report, error) {
	q := strings.TrimSpace(query)
	rep := Report{Query: q, Servers: []Server{}, NearIndexed: s.NearIndexed()}
	_, hexPart, _ := cutProto(strings.ToLower(q))
	switch {
	case len(q) == 32 && isHex(q):
		rep.Kind = KindAlert
		a, ok, err := s.Alert(strings.ToLower(q))
		if err != nil {
			return rep, err
		}
		if !ok {
			return rep, fmt.Errorf("explain %s: no alert with this id in the DB (alerts are kept as long as observations, db.retro_window)", q)
		}
		ar := &AlertReport{AlertRecord: a}
		if rules != nil {
			if r, ok := rules(a.Rule); ok {
				ar.RuleDef = &r
			}
		}
		rep.Alert = ar
		srv, err := server(s, a.Target(), nil)
		if err != nil {
			return rep, err
		}
		rep.Servers = append(rep.Servers, srv)
		return rep, nil
	case (len(hexPart) == 40 || len(hexPart) == 62 || len(hexPart) == 64) && isHex(hexPart):
		rep.Kind = KindFingerprint
		fr, err := fingerprint(s, strings.ToLower(q))
		if err != nil {
			return rep, err
		}
		rep.Fingerprint = fr
		return rep, nil
	}
	rep.Kind = KindTarget
	ip, port, sni, exact, err := parseTarget(q)
	if err != nil {
		return rep, err
	}
	obs, err := s.ObservationsOf(ip, port, sni, exact)
	if err != nil {
		return rep, err
	}
	for i := range obs {
		srv, err := server(s, obs[i].Target(), &obs[i])
		if err != nil {
			return rep, err
		}
		rep.Servers = append(rep.Servers, srv)
	}
	if len(obs) == 0 {
		t := stackprint.Target{IP: ip, Port: port, SNI: sni}
		srv, err := server(s, t, nil)
		if err != nil {
			return rep, err
		}
		rep.Servers = append(rep.Servers, srv)
	}
	return rep, nil
}

// server gathers what is known about t; o is its observation when the
// caller has it.
func server(s Store, t stackprint.Target, o *db.Observation) (Server, error) {
	t.IP = stackprint.CanonicalAddr(t.IP)
	srv := Server{Target: t.String(), IP: t.IP, Port: t.Port, SNI: t.SNI,
		Probes: []db.ProbeEntry{}, History: []db.Change{}, Exact: []stackprint.Match{}, Near: []stackprint.Match{},
		Alerts: []db.AlertRecord{}, Rules: []string{}, Clients: []db.Client{}}
	if t.Port == 0 {
		srv.Target = t.IP.String()
	}
	if o == nil && t.Port != 0 {
		obs, err := s.ObservationsOf(t.IP, t.Port, t.SNI, true)
		if err != nil {
			return srv, err
		}
		if len(obs) == 1 {
			o = &obs[0]
		}
	}
	if o == nil {
		return srv, nil
	}
	srv.Observed, srv.Current = true, o
	for i := len(o.History) - 1; i >= 0; i-- {
		srv.History = append(srv.History, o.History[i])
	}
	srv.Clients = append(srv.Clients, o.Clients...)
	if len(srv.Clients) == 0 && o.Client != nil {
		srv.Clients = append(srv.Clients, *o.Client)
	}
	var err error
	if srv.Probes, err = s.ProbeLog(t); err != nil {
		return srv, err
	}
	if srv.Probes == nil {
		srv.Probes = []db.ProbeEntry{}
	}
	ms, err := s.Match(o.Result())
	if err != nil {
		return srv, err
	}
	for _, m := range ms {
		if m.Exact() {
			srv.Exact = append(srv.Exact, m)
		} else {
			srv.Near = append(srv.Near, m)
		}
	}
	alerts, err := s.AlertsOf(t)
	if err != nil {
		return srv, err
	}
	srv.Alerts = append(srv.Alerts, alerts...)
	for _, a := range alerts {
		if !slices.Contains(srv.Rules, a.Rule) {
			srv.Rules = append(srv.Rules, a.Rule)
		}
	}
	return srv, nil
}

// fingerprint finds the DB entries and the observed servers of a value.
func fingerprint(s Store, v string) (*FingerprintReport, error) {
	fr := &FingerprintReport{Value: v, Entries: []db.Record{}, Servers: []db.Sighting{}}
	_, h, _ := cutProto(v)
	var kinds []string
	switch len(h) {
	case 40:
		kinds = []string{db.KindCertSHA1}
	case 62:
		kinds = []string{db.KindJARM}
	case 64:
		kinds = []string{db.KindATSF, db.KindCertSHA256}
	}
	for _, k := range kinds {
		if _, err := db.NormaliseKey(k, v); err != nil {
			continue // a STARTTLS prefix on a certificate hash
		}
		rec, ok, err := s.Get(k, v)
		if err != nil {
			return nil, err
		}
		if ok {
			fr.Entries = append(fr.Entries, rec)
		}
		ss, err := s.ObservationsWith(k, v, time.Time{})
		if err != nil {
			return nil, err
		}
		fr.Servers = append(fr.Servers, ss...)
	}
	return fr, nil
}

// parseTarget reads ip, ip:port, [v6]:port, each optionally /sni.
func parseTarget(q string) (ip netip.Addr, port uint16, sni string, exact bool, err error) {
	addr, name, hasName := strings.Cut(q, "/")
	if hasName {
		sni = stackprint.CanonicalSNI(name)
	}
	if a, e := netip.ParseAddr(strings.Trim(addr, "[]")); e == nil {
		if hasName {
			return a, 0, "", false, fmt.Errorf("explain %q: a name needs a port (ip:port/name)", q)
		}
		return a, 0, "", false, nil
	}
	ap, e := netip.ParseAddrPort(addr)
	if e != nil {
		return ip, 0, "", false, fmt.Errorf("explain %q: want an alert id (32 hex), a fingerprint (40, 62 or 64 hex) or a server (ip, ip:port, [v6]:port, optionally /sni)", q)
	}
	return ap.Addr(), ap.Port(), sni, hasName, nil
}

func cutProto(v string) (proto, rest string, ok bool) {
	if p, r, found := strings.Cut(v, ":"); found && stackprint.IsStartTLSProtocol(p) {
		return p + ":", r, true
	}
	return "", v, false
}

func isHex(s string) bool {
	return s != "" && strings.IndexFunc(s, func(c rune) bool {
		return !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F')
	}) < 0
}

// stamp renders a time for the text output.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func itoa(n int) string { return strconv.Itoa(n) }

// FromRuleSet looks rules up in a loaded rule set.
func FromRuleSet(set *rules.RuleSet) Rules {
	if set == nil {
		return nil
	}
	return func(id string) (Rule, bool) {
		for _, r := range set.Rules {
			if r.ID == id {
				return Rule{ID: r.ID, Name: r.Name, When: r.When, SeverityExpr: r.SeverityExr, Params: r.Params, File: r.File}, true
			}
		}
		return Rule{}, false
	}
}
