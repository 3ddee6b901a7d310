package output

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it under -update.
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
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

const (
	jarmHit  = "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5"
	jarmMiss = "07d14d16d21d21d07c42d41d00041d24a458a375eef0c576d23a7bab9a9fb1"
)

var testZone = time.FixedZone("CET", 3600)

// fixtures returns events and results covering a Zeek hit with every
// probe fact, a Suricata hit over IPv6 with awkward strings, and failed
// probes without a match.
func fixtures() (evs []stackprint.Event, rs []stackprint.Result, ms [][]stackprint.Match) {
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)

	zeek := stackprint.Event{
		TS:     t0,
		UID:    "CHhAvVGS1DHFjwGM9",
		Orig:   netip.MustParseAddrPort("10.0.0.5:51234"),
		Resp:   netip.MustParseAddrPort("203.0.113.7:443"),
		SNI:    "evil.example",
		Source: "zeek-ssl",
		Kind:   "zeek_ssl",
	}
	suri := stackprint.Event{
		TS:     t0.Add(time.Second),
		FlowID: 1234567890123456789,
		Orig:   netip.MustParseAddrPort("[2001:db8::5]:40000"),
		Resp:   netip.MustParseAddrPort("[2001:db8::7]:8443"),
		SNI:    "tab\there.example",
		Source: "suricata-eve",
		Kind:   "eve_tls",
	}
	noSNI := stackprint.Event{
		TS:     t0.Add(2 * time.Second),
		UID:    "C4J4Th3PJpwUYZZ6gc",
		Orig:   netip.MustParseAddrPort("10.0.0.6:50000"),
		Resp:   netip.MustParseAddrPort("198.51.100.9:443"),
		Source: "zeek-conn",
	}
	evs = []stackprint.Event{zeek, suri, noSNI, noSNI}

	rs = []stackprint.Result{
		{
			Target: zeek.Target(), Started: t0.Add(500 * time.Millisecond), Duration: 1234567 * time.Microsecond,
			Status: stackprint.StatusOK, Conns: 22, JARM: jarmHit,
			Kinds: []stackprint.KindResult{{Kind: "jarm", Status: stackprint.StatusOK, Conns: 10}, {Kind: "atsf", Status: stackprint.StatusOK, Conns: 10}, {Kind: "cert", Status: stackprint.StatusOK, Conns: 1}, {Kind: "http", Status: stackprint.StatusOK, Conns: 1}},
			ATSF:  &stackprint.ATSF{Fingerprint: "771_c02f_...|...", ID: atsfHit},
			Cert: &stackprint.CertFacts{
				SHA256: certSHA256, SHA1: certSHA1,
				Subject: "CN=evil.example", Issuer: "CN=evil.example", Serial: "0a1b2c",
				SANs:      []string{"evil.example", "www.evil.example"},
				NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				SelfSigned: true, KeyType: "RSA", KeyBits: 2048, SigAlg: "SHA256-RSA", ChainLen: 1,
			},
			HTTP: &stackprint.HTTPFacts{StatusCode: 404, Server: "Microsoft-IIS/10.0"},
		},
		{Target: suri.Target(), Started: t0.Add(1500 * time.Millisecond), Duration: 2 * time.Second, Status: stackprint.StatusPartial, Conns: 10, StartTLS: stackprint.StartTLSSMTP, JARM: jarmHit, Error: "probe 3: read: connection reset\\by peer",
			HTTP: &stackprint.HTTPFacts{StatusCode: 200}},
		{Target: noSNI.Target(), Started: t0.Add(2500 * time.Millisecond), Duration: 5 * time.Second, Status: stackprint.StatusTimeout, Conns: 10, JARM: stackprint.ZeroJARM, Error: "deadline exceeded"},
		{Target: noSNI.Target(), Status: stackprint.StatusOutOfScope, Error: "-"},
	}
	hit := stackprint.Match{Kind: "jarm", Value: jarmHit, Label: "cobalt-strike", Source: "salesforce/jarm", Confidence: "high"}
	cert := stackprint.Match{Kind: "cert_sha1", Value: certSHA1, Label: "Dridex C&C", Source: "abuse.ch SSLBL", Confidence: "high"}
	odd := stackprint.Match{Kind: "jarm", Value: jarmHit, Label: "ünïcode <&> label", Confidence: "low"}
	ms = [][]stackprint.Match{{hit, cert}, {odd}, nil, nil}
	return evs, rs, ms
}

const (
	atsfHit    = "5f3c1e0b9a6d4c2e8f7a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"
	atsfNear   = "0c1e0b9a6d4c2e8f7a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e5f"
	certSHA256 = "8b3f2a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
	certSHA1   = "6affac1fc1bc9b8bd5a8ca3e6b5b5ce4e2a5fd0b"
)

// fixtureAlerts are the verdicts of the default rules on the fixtures: a
// DB match and an SSLBL certificate on the Zeek event (the latter
// simulated, with suppressed events), a low match on the Suricata one.
func fixtureAlerts() []stackprint.Alert {
	evs, rs, ms := fixtures()
	mk := func(i int, m stackprint.Match, rule, name, sev string, sid int, tags []string) stackprint.Alert {
		v := stackprint.Verdict{Rule: rule, Severity: sev, Match: m, RuleName: name,
			Description: "Why " + rule + " fired.", Category: "A Network Trojan was detected", SignatureID: sid, Tags: tags}
		return stackprint.NewAlert(v, evs[i], rs[i], rs[i].Started.Add(rs[i].Duration).In(testZone))
	}
	a := mk(0, ms[0][0], "db_match", "TLS server fingerprint in the fingerprint DB", "high", 1900001, []string{"fingerprint-db"})
	b := mk(0, ms[0][1], "sslbl_cert", "Server certificate on a C2 certificate block list", "high", 1900003, []string{"certificate", "sslbl"})
	b.Simulated, b.Suppressed = true, 3
	c := mk(1, ms[1][0], "db_match", "TLS server fingerprint in the fingerprint DB", "low", 1900001, []string{"fingerprint-db"})
	// A retro-hunt alert: a DB entry added later matched a target probed
	// earlier; there is no connection, only the target.
	retro := stackprint.Event{TS: evs[0].TS, Resp: evs[0].Resp, SNI: evs[0].SNI, Source: "retro-hunt", Kind: "retro_hunt"}
	v := stackprint.Verdict{Rule: "db_match", Severity: "high", Match: ms[0][0], RuleName: "TLS server fingerprint in the fingerprint DB", SignatureID: 1900001}
	d := stackprint.NewAlert(v, retro, rs[0], rs[0].Started.Add(48*time.Hour).In(testZone))
	d.Retro = true
	// A watch-list drift alert: no client, the server itself probed on the
	// watch list's schedule; Detail says what changed.
	watched := stackprint.Event{TS: rs[0].Started.Add(72 * time.Hour).In(testZone), Resp: evs[0].Resp, SNI: evs[0].SNI, Source: "watch", Kind: "watch"}
	wv := stackprint.Verdict{Rule: "watch_drift", Severity: "medium", RuleName: "Watched server changed its TLS stack",
		Description: "Why watch_drift fired.", Category: "Potential Corporate Privacy Violation", SignatureID: 1960001, Tags: []string{"watch", "drift", "own-server"}}
	w := stackprint.NewAlert(wv, watched, rs[0], watched.TS)
	w.Detail = "[web-prod] JARM changed 2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5 -> 28d28d28d00028d00028d28d28d28dc354372cf4e0f164e5808b722db3fafd; " +
		"ATSF: the answers to 2 of 10 ClientHellos changed (random4520, random7225); HTTP Server header \"nginx\" -> \"Apache\""
	// A near match: the server answers 9 of the 10 ATSF ClientHellos as a
	// DB entry does.
	near := stackprint.Match{Kind: "atsf", Value: atsfNear, Label: "sliver-default", Source: "lab", Confidence: "high",
		Near: &stackprint.Near{Agree: 9, Of: 10, Differs: []string{"random6306"}, Details: []string{"ALPN"}}}
	e := mk(0, near, "atsf_near", "TLS stack fingerprint one answer away from a DB entry", "medium", 1900010, []string{"atsf", "near-match"})
	return []stackprint.Alert{a, b, c, d, e, w}
}
