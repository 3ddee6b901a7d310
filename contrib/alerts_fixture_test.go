package contrib

import (
	"net/netip"
	"time"

	"github.com/stackprint/stackprint"
)

// fixtureAlerts are alerts with every field the outputs can write: a Zeek
// connection with every probe fact and a JARM match, an SSLBL certificate
// match (simulated, with suppressed repeats), a Suricata flow over IPv6
// with a partial result and an ATSF match, and a retro-hunt alert.
func fixtureAlerts() []stackprint.Alert {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	zone := time.FixedZone("CET", 3600)
	zeek := stackprint.Event{TS: t0, UID: "CHhAvVGS1DHFjwGM9", Orig: netip.MustParseAddrPort("10.0.0.5:51234"),
		Resp: netip.MustParseAddrPort("203.0.113.7:443"), SNI: "evil.example", Source: "zeek-ssl", Kind: "zeek_ssl"}
	suri := stackprint.Event{TS: t0.Add(time.Second), FlowID: 1234567890123456789, Orig: netip.MustParseAddrPort("[2001:db8::5]:40000"),
		Resp: netip.MustParseAddrPort("[2001:db8::7]:8443"), SNI: "c2.example", Source: "suricata", Kind: "eve_tls"}
	full := stackprint.Result{
		Target: zeek.Target(), Started: t0.Add(500 * time.Millisecond), Duration: 1234567 * time.Microsecond,
		Status: stackprint.StatusOK, Conns: 22, JARM: "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5",
		JARMRaw: "c02f|0303||ff01,|||,|||,|||,|||,|||,|||,|||,|||,|||",
		Kinds: []stackprint.KindResult{{Kind: "jarm", Status: stackprint.StatusOK, Conns: 10}, {Kind: "atsf", Status: stackprint.StatusOK, Conns: 10},
			{Kind: "cert", Status: stackprint.StatusOK, Conns: 1}, {Kind: "http", Status: stackprint.StatusOK, Conns: 1}},
		ATSF: &stackprint.ATSF{Fingerprint: "771_c02f_-____|...", ID: "5f3c1e0b9a6d4c2e8f7a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"},
		Cert: &stackprint.CertFacts{
			SHA256: "8b3f2a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a", SHA1: "6affac1fc1bc9b8bd5a8ca3e6b5b5ce4e2a5fd0b",
			Subject: "CN=evil.example", Issuer: "CN=evil.example", Serial: "0a1b2c", SANs: []string{"evil.example", "www.evil.example"},
			NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
			SelfSigned: true, KeyType: "RSA", KeyBits: 2048, SigAlg: "SHA256-RSA", ChainLen: 1,
		},
		HTTP: &stackprint.HTTPFacts{StatusCode: 404, Server: "Microsoft-IIS/10.0"},
	}
	partial := stackprint.Result{Target: suri.Target(), Started: t0.Add(1500 * time.Millisecond), Duration: 2 * time.Second,
		Status: stackprint.StatusPartial, Conns: 10, JARM: full.JARM, Error: "probe 3: read: connection reset by peer",
		ATSF: full.ATSF, HTTP: &stackprint.HTTPFacts{StatusCode: 200}}

	jarm := stackprint.Match{Kind: "jarm", Value: full.JARM, Label: "cobalt-strike", Source: "salesforce/jarm", Confidence: "high"}
	cert := stackprint.Match{Kind: "cert_sha1", Value: full.Cert.SHA1, Label: "Dridex C&C", Source: "abuse.ch SSLBL", Confidence: "high"}
	atsf := stackprint.Match{Kind: "atsf", Value: full.ATSF.ID, Label: "sliver", Source: "learned", Confidence: "medium"}
	mk := func(ev stackprint.Event, r stackprint.Result, m stackprint.Match, rule, sev string, sid int, tags ...string) stackprint.Alert {
		v := stackprint.Verdict{Rule: rule, Severity: sev, Match: m, RuleName: "Rule " + rule,
			Description: "Why " + rule + " fired.", Category: "A Network Trojan was detected", SignatureID: sid, Tags: tags}
		return stackprint.NewAlert(v, ev, r, r.Started.Add(r.Duration).In(zone))
	}
	a := mk(zeek, full, jarm, "db_match", "high", 1970101, "fingerprint-db")
	b := mk(zeek, full, cert, "sslbl_cert", "high", 1970103, "certificate", "sslbl")
	b.Simulated, b.Suppressed = true, 3
	c := mk(suri, partial, atsf, "atsf_score", "medium", 1970102, "atsf")
	retro := stackprint.Event{TS: t0, Resp: zeek.Resp, SNI: zeek.SNI, Source: "retro-hunt", Kind: "retro_hunt"}
	d := mk(retro, full, jarm, "db_match", "high", 1970101)
	d.Retro = true
	return []stackprint.Alert{a, b, c, d}
}
