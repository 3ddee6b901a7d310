package watch_test

import (
	"crypto/tls"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/watch"
)

func entryOf(s *tlsServer) watch.Entry {
	e := watch.Entry{Addr: s.addr, SNI: "watch.test", Label: "web-prod"}
	if err := e.Validate(); err != nil {
		panic(err)
	}
	return e
}

func rules(as []stackprint.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Rule)
	}
	return out
}

var helloNames = regexp.MustCompile(`random[0-9]+`)

// A watched Go server restarted with another TLS configuration raises one
// drift alert that names the ClientHellos whose answers changed; the same
// answers again raise nothing more, and accept makes them the baseline.
func TestDriftNamesChangedClientHellos(t *testing.T) {
	s := newTLSServer(t)
	p := newEngine(t)
	pol := watch.DefaultPolicy()
	cert := certOf(t, newKey(t), 1, time.Now().Add(365*24*time.Hour))
	s.start(&tls.Config{Certificates: []tls.Certificate{cert}}, "nginx")

	e := entryOf(s)
	now := time.Now()
	e, as := watch.Observe(e, probeNow(t, p, s), now, pol)
	if len(as) != 0 || e.Baseline == nil || e.Baseline.JARM == "" || len(e.Baseline.Hellos) != 10 || e.Baseline.Cert == nil || !e.Baseline.HTTP {
		t.Fatalf("first probe: alerts %v, baseline %+v", rules(as), e.Baseline)
	}
	// The same server again: nothing.
	if e, as = watch.Observe(e, probeNow(t, p, s), now.Add(time.Minute), pol); len(as) != 0 {
		t.Fatalf("unchanged server alerted: %v %q", rules(as), as[0].Detail)
	}

	// Restarted: TLS 1.2 only, one cipher suite, P-384 only.
	s.start(&tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12,
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
		CurvePreferences: []tls.CurveID{tls.CurveP384}}, "nginx")
	e, as = watch.Observe(e, probeNow(t, p, s), now.Add(2*time.Minute), pol)
	if len(as) != 0 || e.State.Pending == nil {
		t.Fatalf("first probe after the restart: alerts %v; a change waits for a second probe to confirm it", rules(as))
	}
	e, as = watch.Observe(e, probeNow(t, p, s), now.Add(2*time.Minute+10*time.Second), pol)
	if len(as) != 1 || as[0].Rule != watch.RuleDrift {
		t.Fatalf("after the restart: alerts %v, want one %s", rules(as), watch.RuleDrift)
	}
	a := as[0]
	t.Logf("drift alert: %s", a.Detail)
	names := helloNames.FindAllString(a.Detail, -1)
	if !strings.Contains(a.Detail, "JARM changed") || !strings.Contains(a.Detail, "ClientHellos changed") || len(names) == 0 {
		t.Fatalf("detail does not say what changed: %q", a.Detail)
	}
	if strings.Contains(a.Detail, "certificate") || strings.Contains(a.Detail, "HTTP Server") {
		t.Errorf("detail names what did not change: %q", a.Detail)
	}
	// The names are exactly those whose answers differ.
	base := map[string]string{}
	for _, h := range e.Baseline.Hellos {
		base[h.Name] = h.Raw
	}
	var changed []string
	for _, h := range e.State.Current.Hellos {
		if h.Raw != base[h.Name] {
			changed = append(changed, h.Name)
		}
	}
	if strings.Join(changed, ",") != strings.Join(names, ",") {
		t.Errorf("named %v, changed %v", names, changed)
	}
	if a.Severity != "medium" || a.SignatureID != watch.SIDDrift || a.Event.Source != watch.Source || a.Event.Resp != s.addr || !strings.HasPrefix(a.Detail, "[web-prod] ") {
		t.Errorf("alert %+v", a)
	}

	// Same answers on the next probe: no second alert.
	if e, as = watch.Observe(e, probeNow(t, p, s), now.Add(3*time.Minute), pol); len(as) != 0 {
		t.Fatalf("the same drift alerted twice: %v", rules(as))
	}
	// Accepted: the new answers are the baseline.
	e, err := watch.Accept(e, now.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if e, as = watch.Observe(e, probeNow(t, p, s), now.Add(5*time.Minute), pol); len(as) != 0 || e.State.Drift != nil {
		t.Fatalf("after accept: %v", rules(as))
	}
	// Back to the first configuration: that is a drift from the accepted one.
	s.start(&tls.Config{Certificates: []tls.Certificate{cert}}, "Apache")
	e, _ = watch.Observe(e, probeNow(t, p, s), now.Add(6*time.Minute), pol)
	if _, as = watch.Observe(e, probeNow(t, p, s), now.Add(7*time.Minute), pol); len(as) != 1 || as[0].Rule != watch.RuleDrift ||
		!strings.Contains(as[0].Detail, `HTTP Server header "nginx" -> "Apache"`) {
		t.Fatalf("back to the old config: %v %v", rules(as), as)
	}
	t.Logf("drift alert (server header too): %s", as[0].Detail)
}

// A certificate re-issued with the same key and issuer is a rotation, not
// a stack change: its own info alert, and the baseline follows it; a new
// key is a drift.
func TestCertRotationIsNotDrift(t *testing.T) {
	s := newTLSServer(t)
	p := newEngine(t)
	pol := watch.DefaultPolicy()
	key := newKey(t)
	year := time.Now().Add(365 * 24 * time.Hour)
	s.start(&tls.Config{Certificates: []tls.Certificate{certOf(t, key, 1, year)}}, "nginx")
	now := time.Now()
	e, as := watch.Observe(entryOf(s), probeNow(t, p, s), now, pol)
	if len(as) != 0 || e.Baseline == nil {
		t.Fatalf("baseline: %v", rules(as))
	}
	old := e.Baseline.Cert.SHA256

	s.start(&tls.Config{Certificates: []tls.Certificate{certOf(t, key, 2, year.Add(24*time.Hour))}}, "nginx")
	e, as = watch.Observe(e, probeNow(t, p, s), now.Add(time.Minute), pol)
	if len(as) != 1 || as[0].Rule != watch.RuleRotated || e.State.Drift != nil {
		t.Fatalf("re-issued with the same key: alerts %v, drift %v", rules(as), e.State.Drift)
	}
	t.Logf("rotation alert: %s", as[0].Detail)
	if d := as[0].Detail; !strings.Contains(d, "same key and issuer") || !strings.Contains(d, "rotation, not a stack change") ||
		!strings.Contains(d, "serial 01 -> 02") || !strings.Contains(d, old) || as[0].Severity != "info" {
		t.Errorf("rotation alert %q (%s)", d, as[0].Severity)
	}
	if e.Baseline.Cert.SHA256 == old {
		t.Error("the baseline did not follow the rotated certificate")
	}
	if e, as = watch.Observe(e, probeNow(t, p, s), now.Add(2*time.Minute), pol); len(as) != 0 {
		t.Fatalf("the rotation was reported twice: %v", rules(as))
	}

	s.start(&tls.Config{Certificates: []tls.Certificate{certOf(t, newKey(t), 3, year)}}, "nginx")
	e, _ = watch.Observe(e, probeNow(t, p, s), now.Add(3*time.Minute), pol)
	_, as = watch.Observe(e, probeNow(t, p, s), now.Add(4*time.Minute), pol)
	if len(as) != 1 || as[0].Rule != watch.RuleDrift || !strings.Contains(as[0].Detail, "certificate replaced with a new key") ||
		strings.Contains(as[0].Detail, "JARM") || strings.Contains(as[0].Detail, "ClientHello") {
		t.Fatalf("new key: %v %v", rules(as), as)
	}
	t.Logf("new-key drift alert: %s", as[0].Detail)
}

// A watched server that goes down raises the reachability alert after
// FailAfter failed probes, once, and never a drift; when it answers again
// as before, the reachable-again alert says how long it was down and that
// it answers with its baseline, and nothing else is raised.
func TestUnreachableIsNotDrift(t *testing.T) {
	s := newTLSServer(t)
	p := newEngine(t)
	pol := watch.Policy{Every: time.Minute, FailAfter: 3, ReachableAgain: true}
	cert := certOf(t, newKey(t), 1, time.Now().Add(365*24*time.Hour))
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	s.start(cfg, "nginx")
	now := time.Now()
	e, _ := watch.Observe(entryOf(s), probeNow(t, p, s), now, pol)
	s.stop()
	var all []stackprint.Alert
	for i := range 4 {
		var as []stackprint.Alert
		e, as = watch.Observe(e, probeNow(t, p, s), now.Add(time.Duration(i+1)*time.Minute), pol)
		if i < 2 && len(as) != 0 {
			t.Fatalf("probe %d raised %v before %d failures", i+1, rules(as), pol.FailAfter)
		}
		all = append(all, as...)
	}
	if len(all) != 1 || all[0].Rule != watch.RuleUnreachable || !e.State.Unreachable || e.State.Failures != 4 {
		t.Fatalf("alerts %v, state %+v", rules(all), e.State)
	}
	t.Logf("reachability alert: %s", all[0].Detail)
	if d := all[0].Detail; !strings.Contains(d, "3 probes in a row failed") || !strings.Contains(d, "refused") {
		t.Errorf("reachability detail %q", d)
	}
	s.start(cfg, "nginx")
	e, as := watch.Observe(e, probeNow(t, p, s), now.Add(10*time.Minute), pol)
	if len(as) != 1 || as[0].Rule != watch.RuleReachable || e.State.Unreachable || e.State.Failures != 0 || !e.State.FailingSince.IsZero() {
		t.Fatalf("back up: alerts %v, state %+v", rules(as), e.State)
	}
	t.Logf("reachable-again alert: %s", as[0].Detail)
	if d := as[0].Detail; !strings.HasPrefix(d, "[web-prod] reachable again after 4 failed probes over 9m0s (failing since ") ||
		!strings.Contains(d, ", last failure: refused") || !strings.HasSuffix(d, "; it answers with its baseline's fingerprints") ||
		as[0].Severity != "info" || as[0].SignatureID != watch.SIDReachable {
		t.Errorf("reachable-again alert %q (%s, %d)", d, as[0].Severity, as[0].SignatureID)
	}
	if _, as = watch.Observe(e, probeNow(t, p, s), now.Add(11*time.Minute), pol); len(as) != 0 {
		t.Errorf("the next probe raised %v", rules(as))
	}
}

// A server that comes back with another stack raises both alerts, each
// saying its own part: reachable again (with other fingerprints than the
// baseline) at once, the drift when the next probe confirms it. With
// ReachableAgain off, the outage's end raises nothing.
func TestReachableAgainWithAnotherStack(t *testing.T) {
	s := newTLSServer(t)
	p := newEngine(t)
	pol := watch.Policy{Every: time.Minute, FailAfter: 2, ReachableAgain: true}
	cert := certOf(t, newKey(t), 1, time.Now().Add(365*24*time.Hour))
	s.start(&tls.Config{Certificates: []tls.Certificate{cert}}, "nginx")
	now := time.Now()
	e, _ := watch.Observe(entryOf(s), probeNow(t, p, s), now, pol)
	s.stop()
	for i := range 2 {
		e, _ = watch.Observe(e, probeNow(t, p, s), now.Add(time.Duration(i+1)*time.Minute), pol)
	}
	if !e.State.Unreachable {
		t.Fatalf("not unreachable: %+v", e.State)
	}
	down := e
	s.start(&tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, "nginx")
	e, as := watch.Observe(e, probeNow(t, p, s), now.Add(3*time.Minute), pol)
	if len(as) != 1 || as[0].Rule != watch.RuleReachable || e.State.Pending == nil {
		t.Fatalf("back with another stack: alerts %v, pending %v", rules(as), e.State.Pending)
	}
	t.Logf("reachable-again alert (another stack): %s", as[0].Detail)
	if d := as[0].Detail; !strings.Contains(d, "reachable again after 2 failed probes over 2m0s") ||
		!strings.HasSuffix(d, "it answers with other fingerprints than its baseline (JARM, ATSF answers): a watch_drift alert follows if the next probe confirms them") ||
		strings.Contains(d, "JARM changed") {
		t.Errorf("reachable-again alert %q", d)
	}
	e, as = watch.Observe(e, probeNow(t, p, s), now.Add(3*time.Minute+10*time.Second), pol)
	if len(as) != 1 || as[0].Rule != watch.RuleDrift || !strings.Contains(as[0].Detail, "JARM changed") || strings.Contains(as[0].Detail, "reachable") {
		t.Fatalf("confirming probe: %v %v", rules(as), as)
	}
	t.Logf("drift alert after the outage: %s", as[0].Detail)

	pol.ReachableAgain = false
	if e, as = watch.Observe(down, probeNow(t, p, s), now.Add(3*time.Minute), pol); len(as) != 0 || e.State.Unreachable {
		t.Errorf("reachable_again off: alerts %v, state %+v", rules(as), e.State)
	}
}

// A certificate close to its end raises one warning.
func TestCertExpiryWarning(t *testing.T) {
	s := newTLSServer(t)
	p := newEngine(t)
	pol := watch.Policy{Every: time.Minute, FailAfter: 3, ExpiryWarn: 14 * 24 * time.Hour}
	notAfter := time.Now().Add(5*24*time.Hour + time.Hour).Truncate(time.Second)
	s.start(&tls.Config{Certificates: []tls.Certificate{certOf(t, newKey(t), 1, notAfter)}}, "nginx")
	now := time.Now()
	e, as := watch.Observe(entryOf(s), probeNow(t, p, s), now, pol)
	if len(as) != 1 || as[0].Rule != watch.RuleExpiry {
		t.Fatalf("alerts %v", rules(as))
	}
	t.Logf("expiry alert: %s", as[0].Detail)
	if d := as[0].Detail; !strings.Contains(d, "expires in 5 days") || !strings.Contains(d, notAfter.UTC().Format(time.RFC3339)) {
		t.Errorf("expiry detail %q", d)
	}
	if _, as = watch.Observe(e, probeNow(t, p, s), now.Add(time.Hour), pol); len(as) != 0 {
		t.Errorf("warned twice: %v", rules(as))
	}
}
