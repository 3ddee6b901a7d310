package explain

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goHellos are the answers of Go's crypto/tls server (testdata/atsf of the
// repository); variant answers random6306 with ALPN imap instead of alert
// 120.
var goHellos = []string{
	"771_1301_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_-",
	"771_c02b_16.AAkIaHR0cC8xLjE-0.____",
	"771_cca9_35.-65281.-16.AAMCaDI-11.AQA-0.____<40",
	"______<120",
	"______<40",
	"771_1303_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_-",
	"769_c009_35.-65281.-16.AAMCaDI-0.____",
	"771_c02b_35.-16.AAMCaDI-0.____",
	"771_c02b_35.-11.AQA-0.____",
	"771_cca9_16.AAMCaDI-0.____",
}

const (
	jarmC2    = "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"
	jarmOld   = "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5"
	certSHA1  = "6affac1fc1bc9b8bd5a8ca3e6b5b5ce4e2a5fd0b"
	certSHA2  = "8b3f2a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
	alertedAt = "192.0.2.10:443"
	nearAt    = "192.0.2.20:8443"
)

func atsfOf(hellos []string) *stackprint.ATSF {
	a := &stackprint.ATSF{ID: db.ATSFID(hellos), Fingerprint: strings.Join(hellos, "|")}
	for i, h := range hellos {
		a.Hellos = append(a.Hellos, stackprint.ATSFHello{Name: db.ATSFHelloNames()[i], Raw: h})
	}
	return a
}

// fixtureDB builds a real DB file as the daemon leaves it: two DB entries,
// an alerted server probed three times (its JARM changed once), a server
// one ATSF answer away from an entry, and the alerts the default rules
// raised on them.
func fixtureDB(t *testing.T) (*db.DB, *rules.RuleSet, map[string]string) {
	t.Helper()
	d, err := db.Open(filepath.Join(t.TempDir(), "stackprint.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	variant := slices.Clone(goHellos)
	variant[3] = "771_1301_43.AwQ-51.29_16.AAUEaW1hcA___-"
	added := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []db.Record{
		{Kind: "jarm", Value: jarmC2, Label: "cobalt-strike", Category: "c2", Source: "salesforce/jarm", Confidence: "high", Added: added},
		{Kind: "atsf", Value: db.ATSFID(goHellos), Label: "lab-c2", Category: "c2", Source: "lab", Confidence: "high", Hellos: goHellos, Added: added},
	} {
		if err := d.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := rules.New(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ids := map[string]string{}
	probe := func(at time.Time, target string, sni string, orig, uid string, r stackprint.Result) {
		ap := netip.MustParseAddrPort(target)
		ev := stackprint.Event{TS: at.Add(-2 * time.Second), UID: uid, Orig: netip.MustParseAddrPort(orig), Resp: ap, SNI: sni, Source: "zeek-ssl", Kind: "zeek_ssl"}
		r.Target, r.Started, r.Status = ev.Target(), at, stackprint.StatusOK
		if err := d.RecordObservationOf(ev, r); err != nil {
			t.Fatal(err)
		}
		ms, err := d.Match(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range eng.Judge(ev, r, ms) {
			a := stackprint.NewAlert(v, ev, r, at.Add(time.Second))
			if err := d.RecordAlert(a); err != nil {
				t.Fatal(err)
			}
			ids[target+" "+v.Rule] = a.ID
		}
	}
	cert := &stackprint.CertFacts{SHA256: certSHA2, SHA1: certSHA1}
	probe(t0, alertedAt, "c2.example", "10.0.0.5:51234", "CAlerted1", stackprint.Result{JARM: jarmOld, Cert: cert})
	probe(t0.Add(2*time.Hour), alertedAt, "c2.example", "10.0.0.7:40112", "CAlerted2", stackprint.Result{JARM: jarmC2, Cert: cert})
	probe(t0.Add(3*time.Hour), alertedAt, "c2.example", "10.0.0.5:51300", "CAlerted3", stackprint.Result{JARM: jarmC2, Cert: cert})
	probe(t0.Add(time.Hour), nearAt, "", "10.0.0.9:60000", "CNear1", stackprint.Result{ATSF: atsfOf(variant)})
	set := eng.RuleSet()
	return d, set, ids
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func explainText(t *testing.T, d *db.DB, set *rules.RuleSet, q string) (Report, []byte) {
	t.Helper()
	rep, err := Explain(d, FromRuleSet(set), q)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Text(&buf, rep); err != nil {
		t.Fatal(err)
	}
	return rep, buf.Bytes()
}

func TestExplainGolden(t *testing.T) {
	d, set, ids := fixtureDB(t)
	alertID := ids[alertedAt+" db_match"]
	nearID := ids[nearAt+" atsf_near"]
	if alertID == "" || nearID == "" {
		t.Fatalf("the fixture raised %v, want db_match on %s and atsf_near on %s", ids, alertedAt, nearAt)
	}
	for _, tc := range []struct{ name, query string }{
		{"alerted.txt", "192.0.2.10"},
		{"near.txt", nearAt},
		{"never.txt", "192.0.2.30:443"},
		{"alert.txt", alertID},
		{"fingerprint.txt", jarmC2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := explainText(t, d, set, tc.query)
			golden(t, tc.name, got)
		})
	}

	// The facts behind the golden files, checked directly too.
	rep, _ := explainText(t, d, set, alertedAt+"/c2.example")
	s := rep.Servers[0]
	if len(s.Probes) != 3 || len(s.History) != 1 || s.History[0].JARM != jarmOld || len(s.Exact) != 1 || len(s.Clients) != 3 {
		t.Errorf("alerted server: %d probes, history %+v, exact %+v, %d clients", len(s.Probes), s.History, s.Exact, len(s.Clients))
	}
	rep, _ = explainText(t, d, set, nearAt)
	s = rep.Servers[0]
	if len(s.Near) != 1 || s.Near[0].Near.Differs[0] != "random6306" || len(s.Alerts) != 1 || s.Alerts[0].Rule != "atsf_near" {
		t.Errorf("near server: near %+v, alerts %+v", s.Near, s.Alerts)
	}
	rep, _ = explainText(t, d, set, alertID)
	if rep.Alert == nil || rep.Alert.RuleDef == nil || rep.Alert.Values["match.kind"] != "jarm" || rep.Alert.Client.UID != "CAlerted3" {
		t.Errorf("alert: %+v", rep.Alert)
	}
	rep, _ = explainText(t, d, set, "192.0.2.30:443")
	if len(rep.Servers) != 1 || rep.Servers[0].Observed {
		t.Errorf("never-seen: %+v", rep.Servers)
	}

	// --json is the Report; it round-trips.
	rep, _ = explainText(t, d, set, nearID)
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil || back.Alert.ID != nearID || back.Servers[0].Near[0].Near.Agree != 9 {
		t.Fatalf("json round trip: %v %+v", err, back.Alert)
	}
	golden(t, "near-alert.json", append(raw, '\n'))
}

func TestExplainBadQuery(t *testing.T) {
	d, set, _ := fixtureDB(t)
	for _, q := range []string{"c2.example", "192.0.2.10/c2.example", "0123456789abcdef0123456789abcdef"} {
		if _, err := Explain(d, FromRuleSet(set), q); err == nil {
			t.Errorf("%q: no error", q)
		}
	}
}
