package probe

import (
	"crypto/tls"
	"net/netip"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// TestJARMLive fingerprints real servers on loopback configured like the
// rows of docs/JARM.md §2 and expects the reference hashes and raw strings.
func TestJARMLive(t *testing.T) {
	certDir := t.TempDir()
	opensslCerts(t, certDir)
	rsaCert, ecCert := goCert(t, false), goCert(t, true)

	type row struct {
		id, ip string
		start  func(t *testing.T, ip string) netip.AddrPort
		want   string
	}
	goRow := func(cfg *tls.Config) func(*testing.T, string) netip.AddrPort {
		return func(t *testing.T, ip string) netip.AddrPort { return startGoTLS(t, ip, cfg) }
	}
	osslRow := func(cert, key string, extra ...string) func(*testing.T, string) netip.AddrPort {
		return func(t *testing.T, ip string) netip.AddrPort {
			return startOpenSSL(t, ip, certDir, cert, key, extra...)
		}
	}
	rows := []row{
		{"A", "127.0.0.31", osslRow("rsa.crt", "rsa.key"), "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"},
		{"B", "127.0.0.32", osslRow("rsa.crt", "rsa.key", "-no_tls1_3"), "07d14d16d21d21d00007d14d07d21d0ae59125bcd90b8876b50928af8f6cd4"},
		{"C", "127.0.0.21", goRow(&tls.Config{Certificates: []tls.Certificate{rsaCert}}), "3fd3fd0003fd3fd00043d43d00043d3bef2bf79cd6719851e8198c1e8f9a14"},
		{"D", "127.0.0.22", goRow(&tls.Config{Certificates: []tls.Certificate{rsaCert}, MaxVersion: tls.VersionTLS12}), "3fd3fd0003fd3fd0003fd3fd3fd3fdc354372cf4e0f164e5808b722db3fafd"},
		{"E", "127.0.0.33", osslRow("ec.crt", "ec.key"), "1dd40d40d00040d00042d43d000000ad9bf51cc3f5a1e29eecb81d0c7b06eb"},
		{"F", "127.0.0.23", goRow(&tls.Config{Certificates: []tls.Certificate{ecCert}}), "40d40d40d00040d00043d43d00043d3bef2bf79cd6719851e8198c1e8f9a14"},
		{"G", "127.0.0.34", osslRow("rsa.crt", "rsa.key", "-alpn", "h2,http/1.1"), "07d14d16d00000000042d43d000000daf5e7b936a108dd9f38b18567550faa"},
		{"H", "127.0.0.24", goRow(&tls.Config{Certificates: []tls.Certificate{rsaCert}, NextProtos: []string{"http/1.1"}}), "3fd3fd00000000000043d43d00043d32c43d8acf7f98719049050401317871"},
		{"I", "127.0.0.35", osslRow("ec.crt", "ec.key", "-no_tls1_3", "-cipher", "ALL:@SECLEVEL=0"), "1dd40d40d00040d1dc1dd40d1dd40dfb8420aff03e5374ca4fa4df6e5c5114"},
		{"J", "127.0.0.25", goRow(&tls.Config{Certificates: []tls.Certificate{rsaCert}, CurvePreferences: []tls.CurveID{tls.CurveP256}}), "3fd3fd0003fd3fd00043d43d00043d3bef2bf79cd6719851e8198c1e8f9a14"},
		{"K", "127.0.0.36", osslRow("rsa.crt", "rsa.key", "-groups", "P-256"), "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"},
	}
	j := NewJARM(JARMConfig{IOTimeout: 5 * time.Second, Deadline: 15 * time.Second})
	for _, r := range rows {
		t.Run(r.id, func(t *testing.T) {
			t.Parallel()
			ap := r.start(t, r.ip)
			target := stackprint.Target{IP: ap.Addr(), Port: ap.Port()}
			res := j.Probe(testCtx(t), target, ap.Addr().String())
			t.Logf("row %s %s: %s %s conns=%d in %v", r.id, ap, res.Status, res.JARM, res.Conns, res.Duration.Round(time.Millisecond))
			if res.Status != stackprint.StatusOK || res.Error != "" {
				t.Errorf("status %s, error %q", res.Status, res.Error)
			}
			if res.JARM != r.want {
				t.Errorf("JARM %s\nwant %s\nraw  %s", res.JARM, r.want, res.JARMRaw)
			}
			if want := jarmCaptureFor(t, r.id).Raw; res.JARMRaw != want {
				t.Errorf("raw differs from the reference capture\n got %s\nwant %s", res.JARMRaw, want)
			}
			if res.Conns != 10 || !res.HasJARM() || res.Target != target || res.Started.IsZero() || res.Duration <= 0 {
				t.Errorf("result fields: %+v", res)
			}
		})
	}
}
