package db

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

func result(ip string, port uint16, sni, jarm string, status stackprint.Status, at time.Time) stackprint.Result {
	return stackprint.Result{
		Target:  stackprint.Target{IP: netip.MustParseAddr(ip), Port: port, SNI: sni},
		Started: at, Status: status, JARM: jarm,
	}
}

func TestRecordObservationHistoryAndIndex(t *testing.T) {
	d, c := openTest(t)
	t0 := c.t
	tgt := stackprint.Target{IP: netip.MustParseAddr("203.0.113.7"), Port: 443, SNI: "a.example"}
	steps := []stackprint.Result{
		result("203.0.113.7", 443, "a.example", jarmA, stackprint.StatusOK, t0),
		result("203.0.113.7", 443, "a.example", jarmA, stackprint.StatusOK, t0.Add(time.Hour)),
		result("203.0.113.7", 443, "a.example", stackprint.ZeroJARM, stackprint.StatusTimeout, t0.Add(2*time.Hour)),
		result("203.0.113.7", 443, "a.example", jarmB, stackprint.StatusOK, t0.Add(3*time.Hour)),
		// Never probed: no trace.
		result("203.0.113.7", 443, "a.example", "", stackprint.StatusOutOfScope, t0.Add(4*time.Hour)),
	}
	for _, r := range steps {
		if err := d.RecordObservation(r); err != nil {
			t.Fatal(err)
		}
	}
	o, ok, err := d.Observation(tgt)
	if err != nil || !ok {
		t.Fatalf("Observation: %v %v", ok, err)
	}
	if o.Probes != 4 || o.Status != stackprint.StatusOK || o.JARM != jarmB || !o.LastProbe.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("observation = %+v", o)
	}
	if !o.Since.Equal(t0.Add(3*time.Hour)) || !o.Seen.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("since %v seen %v", o.Since, o.Seen)
	}
	if len(o.History) != 1 || o.History[0].JARM != jarmA || !o.History[0].From.Equal(t0) || !o.History[0].Until.Equal(t0.Add(time.Hour)) {
		t.Errorf("history = %+v, want jarmA from t0 until t0+1h", o.History)
	}

	// jarmA was carried until t0+1h: inside a window from t0+30m, outside one from t0+2h.
	s, err := d.ObservationsWith("jarm", jarmA, t0.Add(30*time.Minute))
	if err != nil || len(s) != 1 || !s[0].Carried.Equal(t0.Add(time.Hour)) || s[0].Target() != tgt {
		t.Fatalf("ObservationsWith(jarmA, t0+30m) = %+v, %v", s, err)
	}
	if s, _ := d.ObservationsWith("jarm", jarmA, t0.Add(2*time.Hour)); len(s) != 0 {
		t.Errorf("jarmA found after it was replaced: %+v", s)
	}
	if s, _ := d.ObservationsWith("JARM", jarmB, time.Time{}); len(s) != 1 {
		t.Errorf("jarmB: %+v", s)
	}
	if _, err := d.ObservationsWith("jarm", "short", time.Time{}); err == nil {
		t.Error("bad value accepted")
	}
}

func TestRecordObservationTouchesMatchedRecord(t *testing.T) {
	d, c := openTest(t)
	if err := d.Add(Record{Kind: "jarm", Value: jarmA, Label: "x"}); err != nil {
		t.Fatal(err)
	}
	seen := c.t.Add(time.Hour)
	if err := d.RecordObservation(result("198.51.100.1", 8443, "", jarmA, stackprint.StatusOK, seen)); err != nil {
		t.Fatal(err)
	}
	r, _, _ := d.Get("jarm", jarmA)
	if !r.FirstSeen.Equal(seen) || !r.LastSeen.Equal(seen) {
		t.Errorf("record seen %v..%v, want %v", r.FirstSeen, r.LastSeen, seen)
	}
	ms, err := d.MatchedServers("", time.Time{})
	if err != nil || len(ms) != 1 || ms[0].Port != 8443 || ms[0].Records[0].Label != "x" {
		t.Fatalf("MatchedServers = %+v, %v", ms, err)
	}
	if ms, _ := d.MatchedServers("medium", seen.Add(time.Second)); len(ms) != 0 {
		t.Errorf("window ignored: %+v", ms)
	}
	if ms, _ := d.MatchedServers("high", time.Time{}); len(ms) != 0 {
		t.Errorf("min confidence ignored: %+v", ms)
	}
}

func TestPruneObservations(t *testing.T) {
	d, c := openTest(t)
	t0 := c.t
	for i, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if err := d.RecordObservation(result(ip, 443, "", jarmA, stackprint.StatusOK, t0.Add(time.Duration(i)*24*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	n, err := d.PruneObservations(t0.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	s, _ := d.ObservationsWith("jarm", jarmA, time.Time{})
	if len(s) != 1 || s[0].IP.String() != "192.0.2.2" {
		t.Errorf("after prune: %+v", s)
	}
}

func TestMatchAllKindsOfResult(t *testing.T) {
	d, _ := openTest(t)
	if err := d.Add(Record{Kind: "jarm", Value: jarmA, Label: "j"}); err != nil {
		t.Fatal(err)
	}
	ms, err := d.Match(result("192.0.2.9", 443, "", fmtUpper(jarmA), stackprint.StatusOK, time.Time{}))
	if err != nil || len(ms) != 1 || ms[0].Label != "j" {
		t.Fatalf("Match = %+v %v", ms, err)
	}
}

func fmtUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - 32
		}
	}
	return string(b)
}

func TestMatchAndObserveATSFAndCert(t *testing.T) {
	d, c := openTest(t)
	atsfID := strings.Repeat("a1", 32)
	sha256 := strings.Repeat("b2", 32)
	for _, r := range []Record{
		{Kind: KindATSF, Value: atsfID, Label: "stack", Confidence: "medium"},
		{Kind: KindCertSHA1, Value: sha1A, Label: "sslbl", Confidence: "high"},
	} {
		if err := d.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	res := result("192.0.2.50", 443, "x.example", jarmB, stackprint.StatusOK, c.t)
	res.ATSF = &stackprint.ATSF{ID: atsfID, Fingerprint: "…"}
	res.Cert = &stackprint.CertFacts{SHA256: strings.ToUpper(sha256), SHA1: sha1A}
	ms, err := d.Match(res)
	if err != nil || len(ms) != 2 || ms[0].Kind != KindATSF || ms[1].Kind != KindCertSHA1 {
		t.Fatalf("Match = %+v, %v", ms, err)
	}
	if got := FingerprintsOf(res); got != (Fingerprints{JARM: jarmB, ATSF: atsfID, CertSHA256: sha256, CertSHA1: sha1A}) {
		t.Errorf("FingerprintsOf = %+v", got)
	}
	// An ATSF without an id (not all ten answered) and a zero JARM carry nothing.
	if got := FingerprintsOf(stackprint.Result{JARM: stackprint.ZeroJARM, ATSF: &stackprint.ATSF{}}); got != (Fingerprints{}) {
		t.Errorf("FingerprintsOf(empty) = %+v", got)
	}
	if err := d.RecordObservation(res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{{KindATSF, atsfID}, {KindCertSHA256, sha256}, {KindCertSHA1, sha1A}, {KindJARM, jarmB}} {
		if s, err := d.ObservationsWith(k.Kind, k.Value, time.Time{}); err != nil || len(s) != 1 {
			t.Errorf("ObservationsWith(%s) = %+v %v", k, s, err)
		}
	}
}

// TestPruneObservationsToACount keeps the most recently probed ones and
// drops the index entries of the others, so ObservationsWith stays exact.
func TestPruneObservationsToACount(t *testing.T) {
	d, c := openTest(t)
	t0 := c.t
	for i := range 10 {
		ip := fmt.Sprintf("192.0.2.%d", i+1)
		if err := d.RecordObservation(result(ip, 443, "", jarmA, stackprint.StatusOK, t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	n, err := d.PruneObservationsTo(t0.Add(-time.Hour), 4)
	if err != nil || n != 6 {
		t.Fatalf("PruneObservationsTo = %d, %v; want 6", n, err)
	}
	s, _ := d.ObservationsWith("jarm", jarmA, time.Time{})
	if len(s) != 4 || s[0].IP.String() != "192.0.2.10" || s[3].IP.String() != "192.0.2.7" {
		t.Fatalf("after prune: %+v", s)
	}
	var idx int
	_ = d.view(func(tx *bolt.Tx) error { idx = tx.Bucket([]byte(bucketObsIndex)).Stats().KeyN; return nil })
	if idx != 4 {
		t.Fatalf("%d index entries left, want 4", idx)
	}
}

// TestPruneObservationsOverKeepsTheNewest: past the bound, the ones
// probed longest ago go with their index entries (current and past
// fingerprints) and probe logs; ties at the edge are cut to the exact
// count; the kept ones keep theirs; the count follows, and is counted
// again when the file is opened anew.
func TestPruneObservationsOverKeepsTheNewest(t *testing.T) {
	d, c := openTest(t)
	t0 := c.t
	for i := range 12 {
		ip := fmt.Sprintf("192.0.2.%d", i+1)
		at := t0.Add(time.Duration(min(i, 10)) * time.Minute) // .11 and .12 tie at +10m
		// Two probes each, the fingerprint changed: two index entries.
		if err := d.RecordObservation(result(ip, 443, "", jarmA, stackprint.StatusOK, at.Add(-time.Hour))); err != nil {
			t.Fatal(err)
		}
		if err := d.RecordObservation(result(ip, 443, "", jarmB, stackprint.StatusOK, at)); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.Observations(); n != 12 {
		t.Fatalf("Observations = %d, want 12", n)
	}
	if n, err := d.PruneObservationsOver(12); err != nil || n != 0 {
		t.Fatalf("at the bound: pruned %d, %v", n, err)
	}
	n, err := d.PruneObservationsOver(2)
	if err != nil || n != 10 {
		t.Fatalf("PruneObservationsOver(2) = %d, %v; want 10", n, err)
	}
	if n := d.Observations(); n != 2 {
		t.Fatalf("Observations = %d after the prune, want 2", n)
	}
	kept := 0
	for i := range 12 {
		ip := netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i+1))
		_, ok, err := d.Observation(stackprint.Target{IP: ip, Port: 443})
		if err != nil {
			t.Fatal(err)
		}
		log, err := d.ProbeLog(stackprint.Target{IP: ip, Port: 443})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ok && i < 9:
			t.Fatalf("%s kept, probed before the newest two", ip)
		case ok && len(log) != 2, !ok && len(log) != 0:
			t.Fatalf("%s kept %v with %d probe log entries", ip, ok, len(log))
		}
		if ok {
			kept++
		}
	}
	if kept != 2 {
		t.Fatalf("%d kept, want 2", kept)
	}
	for _, j := range []string{jarmA, jarmB} {
		if s, err := d.ObservationsWith("jarm", j, time.Time{}); err != nil || len(s) != 2 {
			t.Fatalf("ObservationsWith(%s) = %d, %v; want the two kept", j, len(s), err)
		}
	}
	var idx int
	_ = d.view(func(tx *bolt.Tx) error { idx = tx.Bucket([]byte(bucketObsIndex)).Stats().KeyN; return nil })
	if idx != 4 {
		t.Fatalf("%d index entries left, want 4 (two fingerprints of two targets)", idx)
	}
	// The two left were probed at the same time: one goes.
	if n, err := d.PruneObservationsOver(1); err != nil || n != 1 || d.Observations() != 1 {
		t.Fatalf("PruneObservationsOver(1) = %d, %v; %d left", n, err, d.Observations())
	}
	path := d.Path()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if n := d2.Observations(); n != 1 {
		t.Fatalf("Observations after a reopen = %d, want 1", n)
	}
}
