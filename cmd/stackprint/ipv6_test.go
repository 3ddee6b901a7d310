package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint/internal/lab"
)

// requireIPv6Loopback fails the test when ::1 cannot be bound: IPv6
// support is tested, not assumed, and a host without it must say so.
func requireIPv6Loopback(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("::1 is not configured in this test environment (%v): the IPv6 tests need the IPv6 loopback address", err)
	}
	ln.Close()
}

// TestEndToEndIPv6: a Zeek ssl.log line and an EVE tls event naming a
// server on ::1 are probed (with ::1/128 allowed explicitly), matched and
// recorded like IPv4.
func TestEndToEndIPv6(t *testing.T) {
	requireIPv6Loopback(t)
	dir := t.TempDir()
	srv := mustServer(t, "v6", "::1", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}, MaxVersion: tls.VersionTLS12})
	jarm := jarmOf(t, srv)

	p := flatLab(dir)
	if out, errOut, err := runBin(t, "db", "add", "--db", p.DB, "--kind", "jarm", "--value", jarm,
		"--label", "v6-c2", "--source", "e2e-test", "--confidence", "high"); err != nil {
		t.Fatalf("db add: %v\n%s%s", err, out, errOut)
	}
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	writeConfig(t, cfgPath, configText(t, p, "allow: []", `allow: ["::1/128"]`))

	startDaemon(t, cfgPath)
	time.Sleep(300 * time.Millisecond)

	writeZeekSSLT(t, p.SSL, []lab.Conn{{UID: "CV6a1", Orig: "[::1]:40001", Resp: srv.Addr, SNI: "v6.e2e.test"}}, true)
	eve := fmt.Sprintf(`{"timestamp":"2026-11-27T08:00:00.000000+0000","flow_id":4242,"event_type":"tls","src_ip":"::1","src_port":40002,"dest_ip":"::1","dest_port":%d,"proto":"TCP","tls":{"sni":"v6b.e2e.test"}}`+"\n", srv.Addr.Port())
	if err := os.WriteFile(p.Eve, []byte(eve), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alerts for the ::1 server from Zeek and EVE", 30*time.Second, func() bool {
		as := readAlerts(t, p.Alerts)
		return alertFor(as, "uid", "CV6a1") != nil && alertFor(as, "flow_id", "4242") != nil
	})
	a := alertFor(readAlerts(t, p.Alerts), "uid", "CV6a1")
	if a["resp"] != srv.Addr.String() || a["orig"] != "[::1]:40001" || a["jarm"] != jarm || a["sni"] != "v6.e2e.test" {
		t.Errorf("alert fields: %v", a)
	}
	fp := string(mustRead(t, p.Fingerprints))
	if !strings.Contains(fp, "\t::1\t") || !strings.Contains(fp, jarm) {
		t.Errorf("fingerprint log lacks the ::1 record:\n%s", fp)
	}
}

// TestProbeCommandIPv6: `stackprint probe` takes a bracketed IPv6 target.
func TestProbeCommandIPv6(t *testing.T) {
	requireIPv6Loopback(t)
	s := mustServer(t, "probe6", "::1", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "ecdsa")}})
	out, errOut, err := runBin(t, "probe", "--json", s.Addr.String())
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, errOut)
	}
	for _, want := range []string{`"ip":"::1"`, `"status":"ok"`, `"target":"` + s.Addr.String() + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("probe output lacks %s:\n%s", want, out)
		}
	}
}
