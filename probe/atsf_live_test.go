package probe

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// TestATSFLocalFingerprints reproduces every row of local_fingerprints.tsv
// against the same three server configurations: the per-ClientHello
// strings, their negotiated version and the combined string must be
// identical.
func TestATSFLocalFingerprints(t *testing.T) {
	want := readLocalFingerprints(t)
	certDir := t.TempDir()
	opensslCerts(t, certDir)
	type row struct {
		name, ip, sni string
		start         func(t *testing.T, ip string) netip.AddrPort
	}
	goRef := func(t *testing.T, ip string) netip.AddrPort { return startGoReferenceServer(t, ip) }
	rows := []row{
		{"go-crypto-tls", "127.0.0.71", "example.test", goRef},
		{"go-crypto-tls-noSNI", "127.0.0.72", "", goRef},
		{"openssl3-default", "127.0.0.73", "example.test", func(t *testing.T, ip string) netip.AddrPort {
			return startOpenSSL(t, ip, certDir, "rsa.crt", "rsa.key")
		}},
		{"openssl3-tls12-serverpref-alpn", "127.0.0.74", "example.test", func(t *testing.T, ip string) netip.AddrPort {
			return startOpenSSL(t, ip, certDir, "rsa.crt", "rsa.key", "-no_tls1_3", "-serverpref", "-alpn", "h2,http/1.1")
		}},
	}
	e, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindATSF}, IOTimeout: 5 * time.Second, Deadline: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			exp := want[r.name]
			if exp == nil || len(exp.perCH) != 10 || exp.combined == "" {
				t.Fatalf("no complete expectation for %s", r.name)
			}
			ap := r.start(t, r.ip)
			res := e.Probe(testCtx(t), stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: r.sni}, "")
			if res.ATSF == nil || len(res.ATSF.Hellos) != 10 {
				t.Fatalf("no ATSF result: %+v", res)
			}
			matched := 0
			for _, h := range res.ATSF.Hellos {
				if h.Raw != exp.perCH[h.Name] {
					t.Errorf("%s:\n got %q\nwant %q\n(error %q)", h.Name, h.Raw, exp.perCH[h.Name], h.Error)
					continue
				}
				if v := strconv.Itoa(int(h.Version)); v != exp.version[h.Name] {
					t.Errorf("%s: negotiated version %s, want %s", h.Name, v, exp.version[h.Name])
					continue
				}
				matched++
			}
			t.Logf("%s: %d/10 per-ClientHello strings match, conns=%d, %v", r.name, matched, res.Conns, res.Duration.Round(time.Millisecond))
			if res.ATSF.Fingerprint != exp.combined {
				t.Errorf("combined\n got %q\nwant %q", res.ATSF.Fingerprint, exp.combined)
			}
			if sum := sha256.Sum256([]byte(exp.combined)); res.ATSF.ID != hex.EncodeToString(sum[:]) {
				t.Errorf("id %q is not the sha256 hex of the combined string", res.ATSF.ID)
			}
			if res.Status != stackprint.StatusOK || res.Conns != 10 || !res.HasATSF() {
				t.Errorf("status %s conns %d error %q", res.Status, res.Conns, res.Error)
			}
		})
	}
}
