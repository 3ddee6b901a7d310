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

// fixtures returns events and results covering a Zeek hit, a Suricata hit
// over IPv6 with awkward strings, and failed probes without a match.
func fixtures() (evs []stackprint.Event, rs []stackprint.Result, ms []*stackprint.Match) {
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
		{Target: zeek.Target(), Started: t0.Add(500 * time.Millisecond), Duration: 1234567 * time.Microsecond, Status: stackprint.StatusOK, Conns: 10, JARM: jarmHit},
		{Target: suri.Target(), Started: t0.Add(1500 * time.Millisecond), Duration: 2 * time.Second, Status: stackprint.StatusPartial, Conns: 10, JARM: jarmHit, Error: "probe 3: read: connection reset\\by peer"},
		{Target: noSNI.Target(), Started: t0.Add(2500 * time.Millisecond), Duration: 5 * time.Second, Status: stackprint.StatusTimeout, Conns: 10, JARM: stackprint.ZeroJARM, Error: "deadline exceeded"},
		{Target: noSNI.Target(), Status: stackprint.StatusOutOfScope, Error: "-"},
	}
	hit := &stackprint.Match{Kind: "jarm", Value: jarmHit, Label: "cobalt-strike", Source: "salesforce/jarm", Confidence: "high"}
	odd := &stackprint.Match{Kind: "jarm", Value: jarmHit, Label: "ünïcode <&> label", Confidence: "low"}
	ms = []*stackprint.Match{hit, odd, nil, nil}
	return evs, rs, ms
}

func fixtureAlerts() []stackprint.Alert {
	evs, rs, ms := fixtures()
	var out []stackprint.Alert
	for i := range evs {
		if ms[i] == nil {
			continue
		}
		out = append(out, stackprint.Alert{
			ID:       stackprint.AlertID("jarm_match", evs[i], rs[i].JARM),
			TS:       rs[i].Started.Add(rs[i].Duration).In(testZone),
			Event:    evs[i],
			Result:   rs[i],
			Match:    *ms[i],
			Rule:     "jarm_match",
			Severity: "high",
		})
	}
	return out
}
