package watch

import (
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

func okResult(jarm string, hellos map[string]string, cert *stackprint.CertFacts, server string) stackprint.Result {
	r := stackprint.Result{Status: stackprint.StatusOK, JARM: jarm, Cert: cert, HTTP: &stackprint.HTTPFacts{StatusCode: 200, Server: server},
		Kinds: []stackprint.KindResult{{Kind: "jarm", Status: "ok"}, {Kind: "cert", Status: "ok"}, {Kind: "http", Status: "ok"}, {Kind: "atsf", Status: "ok"}}}
	r.ATSF = &stackprint.ATSF{ID: strings.Repeat("a", 64)}
	for _, n := range []string{"random4520", "random458"} {
		r.ATSF.Hellos = append(r.ATSF.Hellos, stackprint.ATSFHello{Name: n, Raw: hellos[n]})
	}
	return r
}

// A baseline imported from rules.baselines (a JARM and a certificate hash
// only) is completed by the first probe that agrees with it; from then on
// every part is compared, and a certificate change against a hash-only
// baseline says it cannot tell a rotation.
func TestImportedBaselineIsCompleted(t *testing.T) {
	jarm := strings.Repeat("1", 62)
	cert := &stackprint.CertFacts{SHA256: strings.Repeat("c", 64), SPKISHA256: strings.Repeat("d", 64), Issuer: "CN=ca"}
	e := Entry{Baseline: &Fingerprints{JARM: jarm, Cert: &Cert{SHA256: cert.SHA256}}}
	e, as := Observe(e, okResult(jarm, map[string]string{"random4520": "x", "random458": "y"}, cert, "nginx"), time.Now(), DefaultPolicy())
	if len(as) != 0 || len(e.Baseline.Hellos) != 2 || e.Baseline.Cert.SPKI == "" || !e.Baseline.HTTP || e.Baseline.HTTPServer != "nginx" {
		t.Fatalf("alerts %v, baseline %+v", as, e.Baseline)
	}
	changed := okResult(jarm, map[string]string{"random4520": "x", "random458": "z"}, cert, "nginx")
	e, _ = Observe(e, changed, time.Now(), DefaultPolicy())
	_, as = Observe(e, changed, time.Now(), DefaultPolicy())
	if len(as) != 1 || as[0].Detail != "ATSF: the answers to 1 of 2 ClientHellos changed (random458)" {
		t.Fatalf("alerts %v", as)
	}
	// A hash-only baseline and another certificate: a change, said so.
	base := Fingerprints{Cert: &Cert{SHA256: cert.SHA256}}
	cs := Compare(base, Fingerprints{Cert: &Cert{SHA256: strings.Repeat("e", 64), SPKI: cert.SPKISHA256, Issuer: "CN=ca"}})
	if len(cs) != 1 || !cs[0].Stack() || !strings.Contains(Describe(cs), "cannot be told from a new key") {
		t.Fatalf("hash-only baseline: %v", Describe(cs))
	}
	// A ClientHello that got no answer on one side is not compared.
	cs = Compare(Fingerprints{Hellos: []Hello{{"random4520", "x"}, {"random458", ""}}}, Fingerprints{Hellos: []Hello{{"random4520", "x"}, {"random458", "y"}}})
	if len(cs) != 0 {
		t.Fatalf("an unanswered ClientHello counted as a change: %v", Describe(cs))
	}
}

func TestScheduleOrder(t *testing.T) {
	s := newSchedule()
	t0 := time.Unix(1000, 0)
	s.set("b", t0.Add(2*time.Second))
	s.set("a", t0.Add(time.Second))
	s.set("c", t0.Add(3*time.Second))
	s.set("b", t0) // moved to the front
	s.remove("c")
	var got []string
	for {
		k, ok := s.popDue(t0.Add(10 * time.Second))
		if !ok {
			break
		}
		got = append(got, k)
	}
	if strings.Join(got, ",") != "b,a" {
		t.Fatalf("order %v", got)
	}
	if _, ok := s.next(); ok {
		t.Fatal("empty schedule has a next")
	}
}

func TestParseKeyAndFind(t *testing.T) {
	ap, sni, err := ParseKey("[::ffff:192.0.2.1]:443/WWW.Example.org.", "")
	if err != nil || ap.String() != "192.0.2.1:443" || sni != "www.example.org" {
		t.Fatalf("%v %q %v", ap, sni, err)
	}
	es := []Entry{{Addr: ap, SNI: "a.example"}, {Addr: ap, SNI: "b.example"}}
	if _, err := Find(es, ap, "", false); err == nil || !strings.Contains(err.Error(), "under 2 names") {
		t.Fatalf("ambiguous: %v", err)
	}
	if e, err := Find(es, ap, "b.example", true); err != nil || e.SNI != "b.example" {
		t.Fatalf("by name: %v %v", e, err)
	}
	if _, _, err := ParseKey("example.org:443", ""); err == nil {
		t.Fatal("a host name accepted as a key")
	}
}

// A probe that ran while the server restarted mixes two configurations:
// a change seen once is not alerted; only a second probe with the same
// answers confirms it, and an answer as the baseline in between clears it.
func TestDriftNeedsConfirmation(t *testing.T) {
	a, b, mixed := strings.Repeat("1", 62), strings.Repeat("2", 62), strings.Repeat("3", 62)
	e := Entry{Baseline: &Fingerprints{JARM: a}}
	var all []stackprint.Alert
	for _, j := range []string{mixed, b, a, b, b, b} {
		var as []stackprint.Alert
		e, as = Observe(e, okResult(j, nil, nil, "x"), time.Now(), DefaultPolicy())
		all = append(all, as...)
	}
	if len(all) != 1 || !strings.Contains(all[0].Detail, "-> "+b) || e.Status() != "drift" {
		t.Fatalf("alerts %v, status %s", all, e.Status())
	}
	fresh, _ := Observe(Entry{Baseline: &Fingerprints{JARM: a}}, okResult(b, nil, nil, "x"), time.Now(), DefaultPolicy())
	if fresh.Status() != "changing" {
		t.Fatalf("status %s after a change seen once", fresh.Status())
	}
}

// The starttls column of a watch list file and `watch add --starttls`:
// protocol names and sensors' service names, a bad one named file:line;
// an accept refuses fingerprints measured otherwise than the entry asks.
func TestStartTLSOfEntries(t *testing.T) {
	data := "target,sni,every,label,starttls\n192.0.2.25:2525,mx.example.org,,mx,smtp\n192.0.2.26:5222,,,chat,xmpp\n" +
		"192.0.2.27:5269,,,s2s,XMPP\n192.0.2.28:5432,,,db,postgresql\n192.0.2.10:443,,,web\n"
	es, err := ParseList(t.Context(), nil, "own.csv", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.StartTLS)
	}
	if want := "smtp xmpp-client xmpp-server postgres "; strings.Join(got, " ") != want {
		t.Fatalf("starttls %q, want %q", strings.Join(got, " "), want)
	}
	if es[0].Target().StartTLS != "smtp" || es[0].Key() != "192.0.2.25:2525/mx.example.org" {
		t.Errorf("target %+v key %s", es[0].Target(), es[0].Key())
	}
	_, err = ParseList(t.Context(), nil, "own.csv", []byte("192.0.2.25:25,,,,smtps\n192.0.2.26:25,,,,\"smtp,imap\"\n192.0.2.27:25,,,,smtp,imap\n"))
	for _, want := range []string{`own.csv:1: starttls "smtps": want one of ftp, imap, ldap, pop3, postgres, smtp, xmpp-client, xmpp-server`,
		`own.csv:2: starttls "smtp,imap"`, "own.csv:3: 6 fields, want at most 5"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if err := (&Entry{Addr: es[0].Addr, StartTLS: "tls"}).Validate(); err == nil || !strings.Contains(err.Error(), `starttls "tls"`) {
		t.Errorf("Validate: %v", err)
	}

	e := es[0]
	e.State.Current = &Fingerprints{JARM: strings.Repeat("1", 62)} // measured by direct TLS
	if _, err := Accept(e, time.Now()); err == nil || !strings.Contains(err.Error(), "its last successful probe used direct TLS, the entry asks STARTTLS smtp") {
		t.Errorf("accept of a direct-TLS probe for a STARTTLS entry: %v", err)
	}
	e.State.Current.StartTLS = "smtp"
	if e, err = Accept(e, time.Now()); err != nil || e.Baseline.StartTLS != "smtp" {
		t.Errorf("accept: %v %+v", err, e.Baseline)
	}
}
