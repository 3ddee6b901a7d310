package watch

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// Rule ids, names and signature ids of the watch list's alerts. The sids
// are in the local-rules range, outside the range derived for rule ids
// (1900000-1959999) and the dataset rules of contrib/suricata
// (1970001-1970099).
const (
	RuleDrift       = "watch_drift"
	RuleRotated     = "watch_cert_rotated"
	RuleUnreachable = "watch_unreachable"
	RuleExpiry      = "watch_cert_expiry"
	RuleReachable   = "watch_reachable"

	SIDDrift       = 1960001
	SIDRotated     = 1960002
	SIDUnreachable = 1960003
	SIDExpiry      = 1960004
	SIDReachable   = 1960005
)

// Source is the Event.Source of the watch list's alerts.
const Source = "watch"

// Policy holds the daemon's watch settings.
type Policy struct {
	// Every is the re-probe interval of an entry that names none.
	Every time.Duration
	// FailAfter is how many probes in a row must fail before the
	// watch_unreachable alert; 0 disables it.
	FailAfter int
	// ExpiryWarn raises watch_cert_expiry when a certificate ends within
	// it; 0 disables it.
	ExpiryWarn time.Duration
	// ReachableAgain raises watch_reachable at the first successful probe
	// after a watch_unreachable alert.
	ReachableAgain bool
}

// DefaultPolicy is the policy of an empty config.
func DefaultPolicy() Policy {
	return Policy{Every: time.Hour, FailAfter: 3, ExpiryWarn: 14 * 24 * time.Hour, ReachableAgain: true}
}

// failed reports whether a probe result says the server did not answer
// as a TLS server at all.
func failed(r stackprint.Result) bool {
	return r.Status != stackprint.StatusOK && r.Status != stackprint.StatusPartial
}

// Observe files one probe result of e taken at now: it returns the entry
// with its baseline and state updated, and the alerts to write. It never
// raises a drift for a failed probe.
func Observe(e Entry, r stackprint.Result, now time.Time, p Policy) (Entry, []stackprint.Alert) {
	st := &e.State
	prev := *st
	st.LastProbe, st.LastStatus, st.LastError = now, string(r.Status), r.Error
	cur, measured := FromResult(r)
	if failed(r) || !measured {
		if st.Failures == 0 {
			st.FailingSince = now
		}
		st.Failures++
		st.Pending = nil // confirmed only by two answers in a row
		if p.FailAfter > 0 && st.Failures >= p.FailAfter && !st.Unreachable {
			st.Unreachable = true
			why := string(r.Status)
			if r.Error != "" {
				why += ": " + r.Error
			}
			return e, []stackprint.Alert{newAlert(e, r, now, RuleUnreachable,
				fmt.Sprintf("%s failed (last: %s)", probesInARow(st.Failures), why))}
		}
		return e, nil
	}
	st.Failures, st.FailingSince, st.Unreachable, st.LastOK = 0, time.Time{}, false, now
	st.Current = &cur
	var (
		alerts []stackprint.Alert
		// after says how the server answers, for the reachable-again alert.
		after string
	)
	if e.Baseline == nil {
		b := cur
		e.Baseline, e.BaselineAt = &b, now
		after = "no baseline before: this probe recorded it"
	} else {
		changes := Compare(*e.Baseline, cur)
		var stack, rotation []Change
		for _, c := range changes {
			if c.Stack() {
				stack = append(stack, c)
			} else {
				rotation = append(rotation, c)
			}
		}
		switch {
		case len(stack) > 0:
			// Drift: alert once for this set of fingerprints, when a
			// second probe confirms it; the baseline waits for `watch
			// accept`.
			switch {
			case st.Drift != nil && !stackChanged(*st.Drift, cur):
				st.Pending = nil // alerted already
				after = "it still answers with the fingerprints of the standing watch_drift alert (" + changedParts(stack) + ")"
			case st.Pending != nil && !stackChanged(*st.Pending, cur):
				d := cur
				st.Drift, st.Pending = &d, nil
				alerts = append(alerts, newAlert(e, r, now, RuleDrift, Describe(changes)))
				after = "it answers with other fingerprints than its baseline (" + changedParts(stack) + "): see the watch_drift alert"
			default:
				pend := cur
				st.Pending = &pend
				after = "it answers with other fingerprints than its baseline (" + changedParts(stack) + "): a watch_drift alert follows if the next probe confirms them"
			}
		default:
			st.Drift, st.Pending = nil, nil
			after = "it answers with its baseline's fingerprints"
			if len(rotation) > 0 {
				alerts = append(alerts, newAlert(e, r, now, RuleRotated, Describe(rotation)))
				e.Baseline.Cert = cur.Cert
				after = "it answers with its baseline's fingerprints and a rotated certificate (watch_cert_rotated)"
			}
			complete(e.Baseline, cur)
		}
	}
	if prev.Unreachable && p.ReachableAgain {
		// First, before what the answer says (drift, rotation).
		alerts = append([]stackprint.Alert{newAlert(e, r, now, RuleReachable, reachableAgain(prev, now, after))}, alerts...)
	}
	if a, ok := expiry(e, r, cur, now, p); ok {
		alerts = append(alerts, a)
		st.ExpiryWarned = cur.Cert.SHA256
	}
	return e, alerts
}

// stackChanged reports whether cur differs in its stack from the set a
// drift alert was raised for.
func stackChanged(alerted, cur Fingerprints) bool {
	for _, c := range Compare(alerted, cur) {
		if c.Stack() {
			return true
		}
	}
	return false
}

// reachableAgain describes the end of an outage: how long, how many
// probes failed, the last failure and how the server answers now.
func reachableAgain(prev State, now time.Time, after string) string {
	msg := fmt.Sprintf("reachable again after %d failed probe%s", prev.Failures, map[bool]string{true: "s"}[prev.Failures != 1])
	var when []string
	if !prev.FailingSince.IsZero() {
		msg += " over " + span(now.Sub(prev.FailingSince))
		when = append(when, "failing since "+prev.FailingSince.UTC().Format(time.RFC3339))
	}
	if !prev.LastOK.IsZero() {
		when = append(when, "last success "+prev.LastOK.UTC().Format(time.RFC3339))
	}
	if prev.LastStatus != "" {
		why := prev.LastStatus
		if prev.LastError != "" {
			why += ": " + prev.LastError
		}
		when = append(when, "last failure: "+why)
	}
	if len(when) > 0 {
		msg += " (" + strings.Join(when, ", ") + ")"
	}
	return msg + "; " + after
}

// probesInARow says how many probes failed: "1 probe", "3 probes in a row".
func probesInARow(n int) string {
	if n == 1 {
		return "1 probe"
	}
	return fmt.Sprintf("%d probes in a row", n)
}

// span renders a duration to the second (in days and hours past two days).
func span(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days %dh", int(d.Hours()/24), int((d % (24 * time.Hour)).Hours()))
	}
	return d.Round(time.Second).String()
}

// changedParts names what differs in stack changes: "JARM, ATSF answers".
func changedParts(cs []Change) string {
	names := make([]string, 0, len(cs))
	for _, c := range cs {
		switch c.What {
		case ChangeJARM:
			names = append(names, "JARM")
		case ChangeATSF:
			names = append(names, "ATSF answers")
		case ChangeCert:
			names = append(names, "certificate")
		case ChangeHTTPServer:
			names = append(names, "HTTP Server header")
		default:
			names = append(names, c.What)
		}
	}
	return strings.Join(names, ", ")
}

func expiry(e Entry, r stackprint.Result, cur Fingerprints, now time.Time, p Policy) (stackprint.Alert, bool) {
	c := cur.Cert
	if p.ExpiryWarn <= 0 || c == nil || c.NotAfter.IsZero() || e.State.ExpiryWarned == c.SHA256 {
		return stackprint.Alert{}, false
	}
	left := c.NotAfter.Sub(now)
	if left > p.ExpiryWarn {
		return stackprint.Alert{}, false
	}
	days := int(math.Floor(left.Hours() / 24))
	var msg string
	if left <= 0 {
		msg = fmt.Sprintf("certificate expired %s (not after %s)", ago(-left), c.NotAfter.UTC().Format(time.RFC3339))
	} else {
		in := fmt.Sprintf("%d days", days)
		if left < 48*time.Hour {
			in = left.Round(time.Minute).String()
		}
		msg = fmt.Sprintf("certificate expires in %s (not after %s; warning at %d days)", in,
			c.NotAfter.UTC().Format(time.RFC3339), int(p.ExpiryWarn.Hours()/24))
	}
	if c.Subject != "" {
		msg += ", subject " + fmt.Sprintf("%q", c.Subject)
	}
	return newAlert(e, r, now, RuleExpiry, msg), true
}

func ago(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String() + " ago"
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// ruleInfo is what every output says about a watch rule.
type ruleInfo struct {
	name, description, category, severity string
	sid                                   int
	tags                                  []string
}

func rulesInfo(rule string) ruleInfo {
	switch rule {
	case RuleDrift:
		return ruleInfo{"Watched server changed its TLS stack",
			"A server on the watch list answered with other fingerprints (JARM, ATSF answers, certificate key or issuer, HTTP Server) than its baseline: an unintended software or configuration change, or a compromise. `stackprint watch accept` takes the new fingerprints as the baseline.",
			"Potential Corporate Privacy Violation", "medium", SIDDrift, []string{"watch", "drift", "own-server"}}
	case RuleRotated:
		return ruleInfo{"Watched server rotated its certificate",
			"A server on the watch list presents a certificate re-issued with the same key and issuer: a rotation, not a stack change. The baseline follows it.",
			"Not Suspicious Traffic", "info", SIDRotated, []string{"watch", "certificate", "own-server"}}
	case RuleUnreachable:
		return ruleInfo{"Watched server unreachable",
			"A server on the watch list failed several probes in a row (refused, reset, timeout, not TLS). Not a drift: its fingerprints are compared again when it answers.",
			"Misc activity", "low", SIDUnreachable, []string{"watch", "reachability", "own-server"}}
	case RuleExpiry:
		return ruleInfo{"Watched server's certificate expires soon",
			"The certificate of a server on the watch list ends within the configured warning period (watch.cert_expiry_days).",
			"Misc activity", "low", SIDExpiry, []string{"watch", "certificate", "own-server"}}
	case RuleReachable:
		return ruleInfo{"Watched server reachable again",
			"A server on the watch list that had raised watch_unreachable answered a probe again: how long it was down, how many probes failed, and whether it answers with its baseline's fingerprints (a different stack is a watch_drift alert of its own).",
			"Not Suspicious Traffic", "info", SIDReachable, []string{"watch", "reachability", "own-server"}}
	}
	return ruleInfo{name: rule, severity: "info"}
}

// newAlert is a watch alert on e: the event is the watched server itself
// (no client: the daemon probed it on its schedule).
func newAlert(e Entry, r stackprint.Result, now time.Time, rule, detail string) stackprint.Alert {
	ri := rulesInfo(rule)
	if e.Label != "" {
		detail = fmt.Sprintf("[%s] %s", e.Label, detail)
	}
	ev := stackprint.Event{TS: now, Resp: netip.AddrPortFrom(e.Addr.Addr(), e.Addr.Port()), SNI: e.SNI, Source: Source, Kind: "watch"}
	r.Target = e.Target()
	a := stackprint.NewAlert(stackprint.Verdict{
		Rule: rule, Severity: ri.severity, RuleName: ri.name, Description: ri.description,
		Category: ri.category, SignatureID: ri.sid, Tags: ri.tags,
	}, ev, r, now)
	// Deterministic over the server, the rule, what was seen and when.
	a.ID = stackprint.AlertID(rule, ev, strings.Join([]string{r.JARM, detail, now.UTC().Format(time.RFC3339Nano)}, "|"))
	a.Detail = detail
	return a
}

// startTLSText names how a probe connected: "STARTTLS smtp" or "direct TLS".
func startTLSText(p string) string {
	if p == "" {
		return "direct TLS"
	}
	return "STARTTLS " + p
}

// ErrNoProbeYet is Accept's error for a server never probed successfully
// (the way its entry asks).
var ErrNoProbeYet = errors.New("no successful probe yet, nothing to accept")

// Accept makes the last successful probe's fingerprints e's baseline.
func Accept(e Entry, now time.Time) (Entry, error) {
	if e.State.Current == nil {
		return e, fmt.Errorf("watch accept %s: %w", e.Key(), ErrNoProbeYet)
	}
	if c := e.State.Current.StartTLS; e.StartTLS != "" && c != e.StartTLS {
		// The entry's STARTTLS changed since (import --replace): these
		// fingerprints were not measured the way it asks.
		return e, fmt.Errorf("watch accept %s: its last successful probe used %s, the entry asks STARTTLS %s: %w",
			e.Key(), startTLSText(c), e.StartTLS, ErrNoProbeYet)
	}
	b := *e.State.Current
	e.Baseline, e.BaselineAt = &b, now
	e.State.Drift, e.State.Pending = nil, nil
	return e, nil
}
