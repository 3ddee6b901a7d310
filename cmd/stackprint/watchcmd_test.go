package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The watch commands on a DB file (no daemon): add, list, import (bad
// lines named file:line, all or nothing), accept before any probe, rm.
func TestWatchCommandsOnTheFile(t *testing.T) {
	dir := t.TempDir()
	dbf := filepath.Join(dir, "fp.db")
	out, err := runCmd(t, "watch", "add", "--db", dbf, "--label", "web-prod", "--every", "30m", "--sni", "www.example.org", "192.0.2.10:443")
	if err != nil || !strings.Contains(out, "watching 192.0.2.10:443/www.example.org (every 30m0s)") {
		t.Fatalf("add: %q %v", out, err)
	}
	if _, err := runCmd(t, "watch", "add", "--db", dbf, "--sni", "www.example.org", "192.0.2.10:443"); err == nil || !strings.Contains(err.Error(), "already watched") {
		t.Fatalf("second add: %v", err)
	}
	if _, err := runCmd(t, "watch", "add", "--db", dbf, "--every", "10ms", "192.0.2.11:443"); err == nil || !strings.Contains(err.Error(), "every 10ms: at least 1s") {
		t.Fatalf("bad every: %v", err)
	}
	list := filepath.Join(dir, "own.csv")
	bad := "target,sni,every,label\n# our servers\n192.0.2.20:443,,1h,mail\n192.0.2.21,,,\n192.0.2.22:8443,,soon,\n\n192.0.2.20:443,,,again\n"
	if err := os.WriteFile(list, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runCmd(t, "watch", "import", "--db", dbf, list)
	for _, want := range []string{list + ":4: target \"192.0.2.21\"", list + `:5: every "soon"`, list + ":7: 192.0.2.20:443 listed twice (first on line 3)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("import error %v lacks %q", err, want)
		}
	}
	good := "192.0.2.20:443,,1h,mail\n[2001:db8::5]:993,imap.example.org,,imap\n192.0.2.10:443,www.example.org,,dup\n"
	if err := os.WriteFile(list, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, "watch", "import", "--db", dbf, list); err == nil || !strings.Contains(err.Error(), list+":3: 192.0.2.10:443/www.example.org: already watched") {
		t.Fatalf("import of a watched server: %v", err)
	}
	if out, _ := runCmd(t, "watch", "list", "--db", dbf); strings.Count(out, "\n") != 2 {
		t.Fatalf("a failed import wrote entries:\n%s", out)
	}
	if out, err := runCmd(t, "watch", "import", "--db", dbf, "--replace", list); err != nil || !strings.Contains(out, "imported 3 servers") {
		t.Fatalf("import --replace: %q %v", out, err)
	}
	out, err = runCmd(t, "watch", "list", "--db", dbf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.0.2.10:443/www.example.org", "dup", "192.0.2.20:443", "[2001:db8::5]:993/imap.example.org", "new"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	if _, err := runCmd(t, "watch", "accept", "--db", dbf, "192.0.2.20:443"); err == nil || !strings.Contains(err.Error(), "no successful probe yet") {
		t.Fatalf("accept before a probe: %v", err)
	}
	if out, err := runCmd(t, "watch", "rm", "--db", dbf, "192.0.2.10:443"); err != nil || !strings.Contains(out, "no longer watching 192.0.2.10:443/www.example.org") {
		t.Fatalf("rm by address: %q %v", out, err)
	}
	if _, err := runCmd(t, "watch", "rm", "--db", dbf, "192.0.2.10:443"); err == nil || !strings.Contains(err.Error(), "not watched") {
		t.Fatalf("rm twice: %v", err)
	}
	if out, err := runCmd(t, "watch", "list", "--db", dbf, "--json"); err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"origin":"import `) {
		t.Fatalf("list --json: %q %v", out, err)
	}
}

// restartable is a Go TLS server on a fixed loopback address that can be
// stopped and started again with another configuration, as an operator
// restarts a server.
type restartable struct {
	t    *testing.T
	addr netip.AddrPort
	srv  *http.Server
	done chan struct{}
}

func newRestartable(t *testing.T, ip string) *restartable {
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &restartable{t: t, addr: netip.MustParseAddrPort(ln.Addr().String())}
	ln.Close()
	t.Cleanup(s.stop)
	return s
}

func (s *restartable) start(cfg *tls.Config) {
	s.t.Helper()
	s.stop()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp4", s.addr.String()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Server", "own-web/1.0")
			w.WriteHeader(http.StatusNoContent)
		}),
		ErrorLog:          log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 5 * time.Second,
	}
	s.done = make(chan struct{})
	srv, done := s.srv, s.done
	go func() { defer close(done); _ = srv.Serve(tls.NewListener(ln, cfg)) }()
}

func (s *restartable) stop() {
	if s.srv != nil {
		_ = s.srv.Close()
		<-s.done
		s.srv = nil
	}
}

func watchCert(t *testing.T, key *ecdsa.PrivateKey, serial int64, notAfter time.Time) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "own.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		DNSNames:     []string{"own.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// alertsOf returns the NDJSON alerts of rule.
func alertsOf(t *testing.T, path, rule string) []map[string]any {
	var out []map[string]any
	for _, a := range readAlerts(t, path) {
		if a["rule"] == rule {
			out = append(out, a)
		}
	}
	return out
}

// The built daemon re-probes the watch list on its schedule, with no log
// line naming the servers and no scope.allow for loopback: a server
// restarted with another TLS configuration raises one drift alert naming
// the changed ClientHello answers (in the NDJSON, EVE and Zeek alert
// files), `watch accept` ends it, a certificate re-issued with the same
// key is a rotation, a stopped server raises the reachability alert and no
// drift, a certificate close to its end a warning, and a config baseline
// is imported into the watch list.
func TestWatchListDaemon(t *testing.T) {
	dir := t.TempDir()
	own := newRestartable(t, "127.0.0.93")
	key := ecKey(t)
	year := time.Now().Add(365 * 24 * time.Hour)
	cert1 := watchCert(t, key, 1, year)
	own.start(&tls.Config{Certificates: []tls.Certificate{cert1}})
	expiring := newRestartable(t, "127.0.0.94")
	notAfter := time.Now().Add(5*24*time.Hour + time.Hour)
	expiring.start(&tls.Config{Certificates: []tls.Certificate{watchCert(t, ecKey(t), 9, notAfter)}})
	legacy := mustServer(t, "legacy", "127.0.0.95", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "ecdsa")}})

	p := flatLab(dir)
	eve, zeekAlerts := filepath.Join(dir, "alerts.eve.json"), filepath.Join(dir, "stackprint_alert.log")
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	writeConfig(t, cfgPath, configText(t, p,
		"  every: 1h", "  every: 1s",
		"  unreachable_after: 3", "  unreachable_after: 2",
		`  eve: ""`, "  eve: "+eve,
		`  alert_log: ""`, "  alert_log: "+zeekAlerts,
		"  baselines: []", fmt.Sprintf("  baselines: [{server: %q, jarm: %s}]", legacy.Addr.String(), jarmOf(t, legacy))))
	if out, errOut, err := runBin(t, "watch", "add", "-c", cfgPath, "--sni", "own.test", "--label", "web-prod", own.addr.String()); err != nil {
		t.Fatal(err, out, errOut)
	}
	cmd, stderr := startDaemon(t, cfgPath)
	waitFor(t, "the admin socket", 10*time.Second, func() bool { return strings.Contains(stderr.String(), "admin socket listening") })
	if !strings.Contains(stderr.String(), "rules.baselines are deprecated") {
		t.Errorf("no message about the imported rules.baselines:\n%s", stderr.String())
	}
	// Added while the daemon runs: through its admin socket.
	if out, errOut, err := runBin(t, "watch", "add", "-c", cfgPath, "--every", "1s", expiring.addr.String()); err != nil || !strings.Contains(out, "the running daemon") {
		t.Fatal(err, out, errOut)
	}
	entry := func(key string) map[string]any {
		out, errOut, err := runBin(t, "watch", "list", "-c", cfgPath, "--json")
		if err != nil {
			t.Fatal(err, errOut)
		}
		for l := range strings.Lines(out) {
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			if k := e["addr"].(string); k == key || k+"/"+fmt.Sprint(e["sni"]) == key {
				return e
			}
		}
		return nil
	}
	ownKey := own.addr.String() + "/own.test"
	waitFor(t, "the baselines", 30*time.Second, func() bool {
		e, l := entry(ownKey), entry(legacy.Addr.String())
		return e != nil && e["baseline"] != nil && l != nil && l["state"].(map[string]any)["last_status"] == "ok"
	})
	// Each watch probe is a fingerprint record too (no client).
	if fp := string(mustReadOK(p.Fingerprints)); !strings.Contains(fp, "-\t-\t"+own.addr.Addr().String()+"\t"+fmt.Sprint(own.addr.Port())+"\town.test\tok") {
		t.Errorf("no fingerprint record of the watch probes in stackprint.log:\n%s", fp)
	}
	if l := entry(legacy.Addr.String()); !strings.HasPrefix(fmt.Sprint(l["origin"]), "config rules.baselines[0]") {
		t.Errorf("imported entry %v", l)
	}

	// Restarted with another TLS configuration: one drift alert.
	cfgB := &tls.Config{Certificates: []tls.Certificate{cert1}, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}, CurvePreferences: []tls.CurveID{tls.CurveP384}}
	own.start(cfgB)
	waitFor(t, "the drift alert", 30*time.Second, func() bool { return len(alertsOf(t, p.Alerts, "watch_drift")) > 0 })
	probed := func() string { return fmt.Sprint(entry(ownKey)["state"].(map[string]any)["last_probe"]) }
	for range 2 { // two more probes of the same answers
		last := probed()
		waitFor(t, "another probe", 30*time.Second, func() bool { return probed() != last })
	}
	drift := alertsOf(t, p.Alerts, "watch_drift")
	if len(drift) != 1 {
		t.Fatalf("%d drift alerts, want 1: %v", len(drift), drift)
	}
	d := fmt.Sprint(drift[0]["detail"])
	t.Logf("drift alert: %s", d)
	if !strings.HasPrefix(d, "[web-prod] JARM changed") || !strings.Contains(d, "ClientHellos changed (random") ||
		drift[0]["resp"] != own.addr.String() || drift[0]["source"] != "watch" || drift[0]["orig"] != "" || fmt.Sprint(drift[0]["signature_id"]) != "1960001" {
		t.Errorf("drift alert %v", drift[0])
	}
	for _, a := range readAlerts(t, p.Alerts) {
		if a["resp"] == legacy.Addr.String() && a["rule"] != "watch_cert_expiry" { // the lab certificate lives a day
			t.Errorf("alert for the imported server, which did not change: %v", a)
		}
	}
	waitFor(t, "the EVE and Zeek alerts", 10*time.Second, func() bool {
		ev, zk := string(mustReadOK(eve)), string(mustReadOK(zeekAlerts))
		return strings.Contains(ev, `"signature_id":1960001`) && strings.Contains(ev, `"key":"stackprint.detail","value":"[web-prod] JARM changed`) &&
			strings.Contains(zk, "watch_drift") && strings.Contains(zk, "Watched server changed its TLS stack: [web-prod] JARM changed")
	})

	// Accepted: no more drift for these answers.
	if out, errOut, err := runBin(t, "watch", "accept", "-c", cfgPath, own.addr.String()); err != nil || !strings.Contains(out, "baseline now") {
		t.Fatal(err, out, errOut)
	}
	// Re-issued with the same key and issuer: a rotation, not a drift.
	cert2 := watchCert(t, key, 2, year.Add(time.Hour))
	own.start(&tls.Config{Certificates: []tls.Certificate{cert2}, MaxVersion: tls.VersionTLS12,
		CipherSuites: cfgB.CipherSuites, CurvePreferences: cfgB.CurvePreferences})
	waitFor(t, "the rotation alert", 30*time.Second, func() bool { return len(alertsOf(t, p.Alerts, "watch_cert_rotated")) > 0 })
	rot := alertsOf(t, p.Alerts, "watch_cert_rotated")[0]
	t.Logf("rotation alert: %s", rot["detail"])
	if !strings.Contains(fmt.Sprint(rot["detail"]), "same key and issuer") || rot["severity"] != "info" {
		t.Errorf("rotation alert %v", rot)
	}

	// Down: the reachability alert after two failed probes, no drift.
	own.stop()
	waitFor(t, "the reachability alert", 30*time.Second, func() bool { return len(alertsOf(t, p.Alerts, "watch_unreachable")) > 0 })
	un := alertsOf(t, p.Alerts, "watch_unreachable")[0]
	t.Logf("reachability alert: %s", un["detail"])
	if !strings.Contains(fmt.Sprint(un["detail"]), "2 probes in a row failed (last: refused") || un["status"] != "refused" {
		t.Errorf("reachability alert %v", un)
	}
	if n := len(alertsOf(t, p.Alerts, "watch_drift")); n != 1 {
		t.Errorf("%d drift alerts after the accept, rotation and outage, want the first only", n)
	}

	// Back with the same stack: reachable again, and no drift.
	own.start(&tls.Config{Certificates: []tls.Certificate{cert2}, MaxVersion: tls.VersionTLS12,
		CipherSuites: cfgB.CipherSuites, CurvePreferences: cfgB.CurvePreferences})
	waitFor(t, "the reachable-again alert", 30*time.Second, func() bool { return len(alertsOf(t, p.Alerts, "watch_reachable")) > 0 })
	back := alertsOf(t, p.Alerts, "watch_reachable")[0]
	t.Logf("reachable-again alert: %s", back["detail"])
	if d := fmt.Sprint(back["detail"]); !strings.HasPrefix(d, "[web-prod] reachable again after ") || !strings.Contains(d, "last failure: refused") ||
		!strings.HasSuffix(d, "it answers with its baseline's fingerprints") || back["severity"] != "info" || fmt.Sprint(back["signature_id"]) != "1960005" ||
		back["resp"] != own.addr.String() || back["status"] != "ok" {
		t.Errorf("reachable-again alert %v", back)
	}
	for range 2 {
		last := probed()
		waitFor(t, "another probe", 30*time.Second, func() bool { return probed() != last })
	}
	if n, r := len(alertsOf(t, p.Alerts, "watch_drift")), len(alertsOf(t, p.Alerts, "watch_reachable")); n != 1 || r != 1 {
		t.Errorf("back with the same stack: %d drift alerts (want the first only), %d reachable-again alerts (want 1)", n, r)
	}

	// Down again, back with another stack (TLS 1.3 again): reachable
	// again, saying it answers otherwise, and a drift alert of its own.
	own.stop()
	waitFor(t, "the second reachability alert", 30*time.Second, func() bool { return len(alertsOf(t, p.Alerts, "watch_unreachable")) > 1 })
	own.start(&tls.Config{Certificates: []tls.Certificate{cert2}})
	waitFor(t, "the second reachable-again alert and the drift", 30*time.Second, func() bool {
		return len(alertsOf(t, p.Alerts, "watch_reachable")) > 1 && len(alertsOf(t, p.Alerts, "watch_drift")) > 1
	})
	back = alertsOf(t, p.Alerts, "watch_reachable")[1]
	drift2 := alertsOf(t, p.Alerts, "watch_drift")[1]
	t.Logf("reachable-again alert (another stack): %s", back["detail"])
	t.Logf("drift alert after the outage: %s", drift2["detail"])
	if d := fmt.Sprint(back["detail"]); !strings.Contains(d, "it answers with other fingerprints than its baseline (JARM, ATSF answers") ||
		!strings.Contains(d, "a watch_drift alert follows if the next probe confirms them") || strings.Contains(d, "JARM changed") {
		t.Errorf("reachable-again alert (another stack) %v", back)
	}
	if d := fmt.Sprint(drift2["detail"]); !strings.HasPrefix(d, "[web-prod] JARM changed") || strings.Contains(d, "reachable") {
		t.Errorf("drift after the outage %v", drift2)
	}
	own.stop()
	waitFor(t, "the third reachability alert", 30*time.Second, func() bool { return len(alertsOf(t, p.Alerts, "watch_unreachable")) > 2 })

	var exp []map[string]any
	for _, a := range alertsOf(t, p.Alerts, "watch_cert_expiry") {
		if a["resp"] != legacy.Addr.String() {
			exp = append(exp, a)
		}
	}
	if len(exp) != 1 || exp[0]["resp"] != expiring.addr.String() || !strings.Contains(fmt.Sprint(exp[0]["detail"]), "expires in 5 days") {
		t.Fatalf("expiry alerts %v", exp)
	}
	t.Logf("expiry alert: %s", exp[0]["detail"])

	if out, errOut, err := runBin(t, "watch", "rm", "-c", cfgPath, expiring.addr.String()); err != nil || !strings.Contains(out, "no longer watching") {
		t.Fatal(err, out, errOut)
	}
	stopDaemon(t, cmd)
	// The watch list is in the DB file: check and backup see it.
	if out, errOut, err := runBin(t, "db", "check", "-c", cfgPath); err != nil {
		t.Fatal(err, out, errOut)
	}
	if out, _, err := runBin(t, "watch", "list", "-c", cfgPath); err != nil || !strings.Contains(out, "unreachable") || strings.Contains(out, expiring.addr.String()) {
		t.Fatalf("list after the stop: %q %v", out, err)
	}
}

// A watched SMTP server that speaks TLS only after STARTTLS: the entry's
// protocol (watch add --starttls, the import's starttls column) is stored,
// listed (text and JSON), used by every probe of the built daemon and
// recorded with the baseline; an entry of the same server without it fails
// its probes (not TLS on that port), and accept refuses until it has a
// probe made the way it asks.
func TestWatchStartTLSDaemon(t *testing.T) {
	dir := t.TempDir()
	smtp := startSMTPStartTLS(t, "127.0.0.96", &tls.Config{Certificates: []tls.Certificate{watchCert(t, ecKey(t), 1, time.Now().Add(365*24*time.Hour))}})
	p := flatLab(dir)
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	writeConfig(t, cfgPath, configText(t, p, "  every: 1h", "  every: 1s"))
	if _, err := runCmd(t, "watch", "add", "-c", cfgPath, "--starttls", "smtps", smtp.String()); err == nil || !strings.Contains(err.Error(), `--starttls "smtps": want one of ftp, imap`) {
		t.Fatalf("bad --starttls: %v", err)
	}
	if out, errOut, err := runBin(t, "watch", "add", "-c", cfgPath, "--starttls", "smtp", "--label", "mx", smtp.String()); err != nil ||
		!strings.Contains(out, "watching "+smtp.String()+" (every watch.every, STARTTLS smtp)") {
		t.Fatal(err, out, errOut)
	}
	list := filepath.Join(dir, "own.csv")
	if err := os.WriteFile(list, []byte("target,sni,every,label,starttls\n"+smtp.String()+",mx.test,,mx-direct,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := runBin(t, "watch", "import", "-c", cfgPath, list); err != nil {
		t.Fatal(err, out, errOut)
	}
	cmd, stderr := startDaemon(t, cfgPath)
	waitFor(t, "the admin socket", 10*time.Second, func() bool { return strings.Contains(stderr.String(), "admin socket listening") })
	entries := func() map[string]map[string]any {
		out, errOut, err := runBin(t, "watch", "list", "-c", cfgPath, "--json")
		if err != nil {
			t.Fatal(err, errOut)
		}
		m := map[string]map[string]any{}
		for l := range strings.Lines(out) {
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			m[fmt.Sprint(e["label"])] = e
		}
		return m
	}
	state := func(e map[string]any) map[string]any { s, _ := e["state"].(map[string]any); return s }
	waitFor(t, "the STARTTLS baseline and a failed direct probe", 30*time.Second, func() bool {
		es := entries()
		return es["mx"]["baseline"] != nil && state(es["mx-direct"])["last_status"] != nil
	})
	es := entries()
	if es["mx"]["starttls"] != "smtp" || es["mx"]["baseline"].(map[string]any)["starttls"] != "smtp" || es["mx"]["baseline"].(map[string]any)["jarm"] == nil {
		t.Errorf("the STARTTLS entry %v", es["mx"])
	}
	if _, ok := es["mx-direct"]["starttls"]; ok || es["mx-direct"]["baseline"] != nil || state(es["mx-direct"])["last_status"] == "ok" {
		t.Errorf("the entry without STARTTLS %v", es["mx-direct"])
	}
	t.Logf("direct probe of the SMTP port: %v: %v", state(es["mx-direct"])["last_status"], state(es["mx-direct"])["last_error"])
	out, _, err := runBin(t, "watch", "list", "-c", cfgPath)
	if err != nil || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(smtp.String())+` +mx +watch\.every +smtp +ok `).MatchString(out) {
		t.Errorf("list: %v\n%s", err, out)
	}
	t.Logf("watch list:\n%s", out)
	if _, errOut, err := runBin(t, "watch", "accept", "-c", cfgPath, smtp.String()+"/mx.test"); err == nil || !strings.Contains(errOut, "no successful probe yet") {
		t.Errorf("accept with no successful probe: %v %s", err, errOut)
	}

	// The import's column, taken by --replace: the daemon probes it with
	// STARTTLS from then on.
	if err := os.WriteFile(list, []byte(smtp.String()+",mx.test,1s,mx-direct,smtp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := runBin(t, "watch", "import", "-c", cfgPath, "--replace", list); err != nil {
		t.Fatal(err, out, errOut)
	}
	waitFor(t, "the baseline of the replaced entry", 30*time.Second, func() bool { return entries()["mx-direct"]["baseline"] != nil })
	if e := entries()["mx-direct"]; e["starttls"] != "smtp" || e["baseline"].(map[string]any)["starttls"] != "smtp" {
		t.Errorf("replaced entry %v", e)
	}
	out, errOut, err := runBin(t, "watch", "accept", "-c", cfgPath, smtp.String()+"/mx.test")
	if err != nil || !strings.Contains(out, ", STARTTLS smtp) are its baseline now") {
		t.Fatal(err, out, errOut)
	}
	t.Logf("accept: %s", out)
	if n := len(readAlerts(t, p.Alerts)); n != 0 {
		t.Errorf("%d alerts, want none: %v", n, readAlerts(t, p.Alerts))
	}
	stopDaemon(t, cmd)
}

// The `watch:` settings apply on SIGHUP without a restart: a shorter
// default interval reschedules the servers at once, a lower
// unreachable_after and a longer cert_expiry_days take effect at the next
// probe. A bad `watch:` section is refused with its file:line and the
// running settings stay.
func TestSIGHUPReloadsWatchSettings(t *testing.T) {
	dir := t.TempDir()
	own := newRestartable(t, "127.0.0.97")
	cfg := &tls.Config{Certificates: []tls.Certificate{watchCert(t, ecKey(t), 1, time.Now().Add(10*24*time.Hour))}}
	own.start(cfg)
	p := flatLab(dir)
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	settings := func(every, after, days string) string {
		return configText(t, p, "  every: 1h", "  every: "+every, "  unreachable_after: 3", "  unreachable_after: "+after,
			"  cert_expiry_days: 14", "  cert_expiry_days: "+days)
	}
	writeConfig(t, cfgPath, settings("1h", "3", "0"))
	if out, errOut, err := runBin(t, "watch", "add", "-c", cfgPath, "--label", "hup", own.addr.String()); err != nil {
		t.Fatal(err, out, errOut)
	}
	cmd, stderr := startDaemon(t, cfgPath)
	waitFor(t, "the admin socket", 10*time.Second, func() bool { return strings.Contains(stderr.String(), "admin socket listening") })
	lastProbe := func() string {
		// Through the daemon's socket beside the DB: the config file may
		// be a bad one the daemon refused.
		out, errOut, err := runBin(t, "watch", "list", "--db", p.DB, "--json")
		if err != nil {
			t.Fatal(err, errOut)
		}
		var e struct {
			State struct {
				LastProbe string `json:"last_probe"`
			} `json:"state"`
		}
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatal(err, out)
		}
		return e.State.LastProbe
	}
	waitFor(t, "the first probe", 30*time.Second, func() bool { return lastProbe() != "" })
	first := lastProbe()
	time.Sleep(2 * time.Second)
	if lastProbe() != first || len(readAlerts(t, p.Alerts)) != 0 {
		t.Fatalf("under every: 1h and cert_expiry_days: 0: probed again (%s -> %s) or alerted %v", first, lastProbe(), readAlerts(t, p.Alerts))
	}
	hup := func() {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	// every 1s, unreachable after 1 failure, warn 30 days before the end.
	writeConfig(t, cfgPath, settings("1s", "1", "30"))
	hup()
	waitFor(t, "the reload", 10*time.Second, func() bool {
		return strings.Contains(stderr.String(), "config reloaded") && strings.Contains(stderr.String(), "watch_every=1s watch_unreachable_after=1 watch_cert_expiry_days=30")
	})
	waitFor(t, "the expiry warning at the new cert_expiry_days", 30*time.Second, func() bool {
		return len(alertsOf(t, p.Alerts, "watch_cert_expiry")) == 1
	})
	exp := alertsOf(t, p.Alerts, "watch_cert_expiry")[0]
	t.Logf("expiry alert after the reload: %s", exp["detail"])
	if !strings.Contains(fmt.Sprint(exp["detail"]), "warning at 30 days") {
		t.Errorf("expiry alert %v", exp)
	}
	own.stop()
	waitFor(t, "the reachability alert after one failure", 30*time.Second, func() bool { return len(alertsOf(t, p.Alerts, "watch_unreachable")) == 1 })
	un := alertsOf(t, p.Alerts, "watch_unreachable")[0]
	t.Logf("reachability alert after the reload: %s", un["detail"])
	if !strings.HasPrefix(fmt.Sprint(un["detail"]), "[hup] 1 probe failed (last: refused") {
		t.Errorf("reachability alert %v", un)
	}
	own.start(cfg)
	waitFor(t, "reachable again", 30*time.Second, func() bool { return len(alertsOf(t, p.Alerts, "watch_reachable")) == 1 })

	// Bad watch sections: refused with file:line; the running settings stay.
	good := settings("1s", "1", "30")
	lineOf := func(text, field string) int {
		for i, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "  "+field+":") && strings.Contains(text[:strings.Index(text, l)], "\nwatch:") {
				return i + 1
			}
		}
		t.Fatalf("no %s line", field)
		return 0
	}
	for n, bad := range []struct{ old, new, want string }{
		{"  unreachable_after: 1", "  unreachable_after: -1", "watch.unreachable_after: must be 0..1000 (0 turns the alert off) (got -1)"},
		{"  every: 1s", "  every: soon", "watch.every"},
		{"  reachable_again: true", "  reachable_again: maybe", "watch.reachable_again"},
	} {
		text := strings.Replace(good, bad.old, bad.new, 1)
		writeConfig(t, cfgPath, text)
		hup()
		field, _, _ := strings.Cut(strings.TrimSpace(bad.new), ":")
		pos := fmt.Sprintf("%s:%d:", cfgPath, lineOf(text, field))
		waitFor(t, "the refusal", 10*time.Second, func() bool { return strings.Count(stderr.String(), "config reload refused") == n+1 })
		var refusal string
		for l := range strings.Lines(stderr.String()) {
			if strings.Contains(l, "config reload refused") {
				refusal = l
			}
		}
		t.Logf("refused: %s", strings.TrimSpace(refusal))
		if !strings.Contains(refusal, pos) || !strings.Contains(refusal, bad.want) {
			t.Errorf("refusal %q lacks %q and %q", refusal, pos, bad.want)
		}
	}
	// Still every 1s: probes go on; still one failure to alert.
	for range 2 {
		last := lastProbe()
		waitFor(t, "another probe at 1s", 10*time.Second, func() bool { return lastProbe() != last })
	}
	own.stop()
	waitFor(t, "the second reachability alert after one failure", 30*time.Second, func() bool { return len(alertsOf(t, p.Alerts, "watch_unreachable")) == 2 })
	stopDaemon(t, cmd)
}
