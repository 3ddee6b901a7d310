package db_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/probe"
	"github.com/stackprint/stackprint/rules"
)

// loopbackTLS serves TLS handshakes on 127.0.0.1 with cfg until the test
// ends.
func loopbackTLS(t *testing.T, cfg *tls.Config) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					tc.Write([]byte("HTTP/1.1 200 OK\r\nServer: loop\r\nContent-Length: 0\r\n\r\n"))
				}
			})
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader) // random6306 offers ecdsa_p384_sha384, not P-256
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "near.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"near.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func probeATSF(t *testing.T, ap netip.AddrPort) stackprint.Result {
	t.Helper()
	eng, err := probe.NewEngine(probe.EngineConfig{Kinds: []string{"jarm", "atsf"}, ConnRate: -1, IOTimeout: 3 * time.Second, Deadline: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	res := eng.Probe(ctx, stackprint.Target{IP: ap.Addr(), Port: ap.Port()}, "")
	if !res.HasATSF() {
		t.Fatalf("probe of %s: no ATSF fingerprint (status %s, %s)", ap, res.Status, res.Error)
	}
	return res
}

// probeJSONLine is what `stackprint probe --json` prints for res (the
// fields the importer reads).
func probeJSONLine(t *testing.T, res stackprint.Result) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"schema_version": stackprint.SchemaVersion, "target": res.Target.Addr().String(),
		"ip": res.Target.IP.String(), "port": res.Target.Port, "observed_sni": res.Target.SNI,
		"starttls": res.StartTLS, "status": res.Status, "jarm": res.JARM, "jarm_raw": res.JARMRaw, "atsf": res.ATSF,
	})
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// A Go TLS server that also offers the ALPN protocol "imap" differs from
// the plain one (h2, http/1.1) in exactly one ATSF answer: random6306 is
// the only ClientHello that offers neither h2 nor http/1.1, so the plain
// server refuses it with alert 120 and the variant negotiates imap. The DB
// holds the plain server (imported from probe --json output); the
// variant is a near match that names random6306 and ALPN, and the default
// atsf_near rule alerts on it.
func TestNearMatchOneClientHelloDiffers(t *testing.T) {
	cert := testCert(t)
	base := loopbackTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	variant := loopbackTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1", "imap"}})

	bres := probeATSF(t, base)
	vres := probeATSF(t, variant)
	if bres.ATSF.ID == vres.ATSF.ID {
		t.Fatalf("the variant has the base's ATSF id %s", bres.ATSF.ID)
	}

	d, err := db.Open(filepath.Join(t.TempDir(), "fp.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rep, err := d.ImportWith(bytes.NewReader(probeJSONLine(t, bres)), "base.json", db.ImportOptions{Label: "lab-c2", Confidence: "high", Source: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Format != db.FormatProbe || rep.Accepted != 2 {
		t.Fatalf("import: format %s, %d accepted, want probe and 2 (atsf, jarm): %+v", rep.Format, rep.Accepted, rep)
	}
	rec, ok, err := d.Get("atsf", bres.ATSF.ID)
	if err != nil || !ok || len(rec.Hellos) != db.ATSFHellos {
		t.Fatalf("stored atsf entry: %+v %v %v, want its ten answers", rec, ok, err)
	}

	// The base server matches exactly, with no near match of its own entry.
	ms, err := d.Match(bres)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Kind == "atsf" && m.Near != nil {
			t.Errorf("base server: its own entry reported near: %+v", m)
		}
	}
	if !slices.ContainsFunc(ms, func(m stackprint.Match) bool { return m.Kind == "atsf" && m.Exact() }) {
		t.Errorf("base server: no exact atsf match in %+v", ms)
	}

	ms, err = d.Match(vres)
	if err != nil {
		t.Fatal(err)
	}
	var near *stackprint.Match
	for i, m := range ms {
		if m.Kind == "atsf" {
			if m.Exact() {
				t.Fatalf("variant: exact atsf match %+v", m)
			}
			near = &ms[i]
		}
	}
	if near == nil {
		t.Fatalf("variant: no atsf near match in %+v\nbase    %s\nvariant %s", ms, bres.ATSF.Fingerprint, vres.ATSF.Fingerprint)
	}
	n := near.Near
	if n.Agree != 9 || n.Of != 10 || !slices.Equal(n.Differs, []string{"random6306"}) || len(n.Details) != 1 || !strings.Contains(n.Details[0], "ALPN") {
		t.Fatalf("near = %+v, want 9 of 10, differing on random6306: ALPN", n)
	}
	text := n.Text(near.Label)
	if want := "9 of 10 answers equal to lab-c2; differs on random6306: ALPN"; text != want {
		t.Errorf("text = %q, want %q", text, want)
	}
	t.Logf("base    %s\nvariant %s\n%s", bres.ATSF.Hellos[3].Raw, vres.ATSF.Hellos[3].Raw, text)

	// The default rule alerts on it, below an exact match's severity.
	eng, err := rules.New(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := stackprint.Event{TS: time.Now(), UID: "Cnear1", Orig: netip.MustParseAddrPort("10.0.0.5:40000"), Resp: variant}
	var got *stackprint.Verdict
	for _, v := range eng.Judge(ev, vres, ms) {
		if v.Rule == "atsf_near" {
			got = &v
		}
	}
	if got == nil {
		t.Fatalf("rule atsf_near did not fire on %+v", ms)
	}
	if got.Severity != "medium" || got.Match.Near == nil || got.Match.Value != bres.ATSF.ID {
		t.Errorf("verdict = %+v, want medium (high entry, one step below exact) about the base entry", got)
	}
}

// The ATSF ClientHello order the DB keeps is the prober's.
func TestATSFHelloNamesAgreeWithProbe(t *testing.T) {
	if got, want := db.ATSFHelloNames(), probe.ATSFHelloNames(); !slices.Equal(got, want) {
		t.Fatalf("db %v, probe %v", got, want)
	}
	// And the DB's status_request removal is the prober's.
	raws := []string{"771_1301_5.-43.AwQ_5.-16.AAMCaDI__5._", "______<40", "a", "b", "c", "d", "e", "f", "g", "h"}
	fp, id := probe.CombineATSF(raws)
	var stripped []string
	for _, r := range raws {
		stripped = append(stripped, db.StripStatusRequest(r))
	}
	if strings.Join(stripped, "|") != fp || db.ATSFID(stripped) != id {
		t.Fatalf("db strips to %q (id %s), probe %q (id %s)", strings.Join(stripped, "|"), db.ATSFID(stripped), fp, id)
	}
}
