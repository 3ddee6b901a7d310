package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// startSMTPStartTLS serves SMTP with STARTTLS (Postfix's dialogue) on ip
// and a free port, then TLS with cfg.
func startSMTPStartTLS(t *testing.T, ip string, cfg *tls.Config) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				_, _ = io.WriteString(c, "220 mail.e2e.test ESMTP Postfix\r\n")
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(l)); {
					case strings.HasPrefix(cmd, "EHLO"):
						_, _ = io.WriteString(c, "250-mail.e2e.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
					case cmd == "STARTTLS":
						_, _ = io.WriteString(c, "220 2.0.0 Ready to start TLS\r\n")
						tc := tls.Server(c, cfg)
						if tc.Handshake() == nil {
							_, _ = io.Copy(io.Discard, tc)
						}
						return
					default:
						_, _ = io.WriteString(c, "502 5.5.2 Error: command not recognized\r\n")
					}
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestEndToEndSTARTTLS: a Zeek conn record with service smtp,ssl on a port
// no rule maps makes the daemon probe through SMTP STARTTLS; the result
// matches the DB entry of the STARTTLS fingerprint ("smtp:<jarm>") and
// says so in the alert and in stackprint.log.
func TestEndToEndSTARTTLS(t *testing.T) {
	dir := t.TempDir()
	srv := startSMTPStartTLS(t, "127.0.0.66", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "ecdsa")}})

	out, errOut, err := runBin(t, "probe", "--json", "--starttls", "smtp", srv.String())
	if err != nil {
		t.Fatalf("probe --starttls smtp: %v\n%s", err, errOut)
	}
	var pr struct {
		Status, JARM, StartTLS string
	}
	if err := json.Unmarshal([]byte(out), &pr); err != nil || pr.Status != "ok" || pr.StartTLS != "smtp" || len(pr.JARM) != 62 {
		t.Fatalf("probe output %v: %s", err, out)
	}
	p := flatLab(dir)
	if out, errOut, err := runBin(t, "db", "add", "--db", p.DB, "--kind", "jarm", "--value", "smtp:"+pr.JARM,
		"--label", "mail-c2", "--source", "e2e-test", "--confidence", "high"); err != nil {
		t.Fatalf("db add: %v\n%s%s", err, out, errOut)
	}
	cfgPath, _, _ := labConfig(t, dir, "allow: []", "allow: [127.0.0.0/8]")
	startDaemon(t, cfgPath)
	time.Sleep(300 * time.Millisecond)
	conn := "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n" +
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tconn_state\n" +
		"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tstring\n" +
		fmt.Sprintf("%.6f\tCSTL1\t127.0.0.1\t40100\t%s\t%d\ttcp\tsmtp,ssl\tSF\n", float64(time.Now().UnixMicro())/1e6, srv.Addr(), srv.Port())
	if err := os.WriteFile(p.Conn, []byte(conn), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alert for the STARTTLS server", 30*time.Second, func() bool { return alertFor(readAlerts(t, p.Alerts), "uid", "CSTL1") != nil })
	a := alertFor(readAlerts(t, p.Alerts), "uid", "CSTL1")
	m, _ := a["match"].(map[string]any)
	if a["starttls"] != "smtp" || a["jarm"] != pr.JARM || m["value"] != "smtp:"+pr.JARM || m["label"] != "mail-c2" {
		t.Errorf("alert: %v", a)
	}
	fp := string(mustRead(t, p.Fingerprints))
	if !strings.Contains(fp, "\tsmtp\n") || !strings.Contains(fp, "\tok\t") {
		t.Errorf("stackprint.log lacks the STARTTLS record:\n%s", fp)
	}
}

// TestProbeFormatGoscanner: `probe --format goscanner` prints goscanner's
// fingerprints.csv columns; `db import` reads them back into the ATSF id
// `probe --json` reports.
func TestProbeFormatGoscanner(t *testing.T) {
	s := mustServer(t, "gs", "127.0.0.67", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "rsa")}})
	out, errOut, err := runBin(t, "probe", "--format", "goscanner", "--kinds", "atsf", "--sni", "gs.e2e.test", s.Addr.String())
	if err != nil {
		t.Fatalf("probe --format goscanner: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ip,port,server_name,random4520,") || !strings.HasSuffix(lines[0], ",random9428,fingerprint") {
		t.Fatalf("output:\n%s", out)
	}
	cols := strings.Split(lines[1], ",")
	if len(cols) != 14 || cols[0] != "127.0.0.67" || cols[2] != "gs.e2e.test" || strings.Count(cols[13], "|") != 9 {
		t.Fatalf("row %q", lines[1])
	}
	js, _, err := runBin(t, "probe", "--json", "--kinds", "atsf", "--sni", "gs.e2e.test", s.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		ATSF struct{ Fingerprint, ID string }
	}
	if err := json.Unmarshal([]byte(js), &pr); err != nil || pr.ATSF.Fingerprint != cols[13] {
		t.Fatalf("json fingerprint %q differs from the goscanner column (%v)", pr.ATSF.Fingerprint, err)
	}
	dir := t.TempDir()
	csvPath, dbPath := dir+"/fingerprints.csv", dir+"/fp.db"
	if err := os.WriteFile(csvPath, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, e, err := runBin(t, "db", "import", "--db", dbPath, "--label", "lab", csvPath); err != nil || !strings.Contains(o, "imported 1 entries") || !strings.Contains(o, "(goscanner)") {
		t.Fatalf("db import: %v\n%s%s", err, o, e)
	}
	if o, e, err := runBin(t, "db", "list", "--db", dbPath); err != nil || !strings.Contains(o, pr.ATSF.ID) {
		t.Fatalf("db list lacks ATSF id %s: %v\n%s%s", pr.ATSF.ID, err, o, e)
	}
}
