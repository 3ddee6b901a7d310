package stackprint

import (
	"net/netip"
	"testing"
)

func TestCanonicalSNI(t *testing.T) {
	tests := map[string]string{
		"Example.COM.":  "example.com",
		"a.example..":   "a.example",
		"..":            "",
		" www.a.test ":  "www.a.test",
		"192.0.2.1":     "",
		"[2001:db8::1]": "",
		"2001:db8::1":   "",
		"-":             "",
		"(empty)":       "",
		"":              "",
	}
	for in, want := range tests {
		if got := CanonicalSNI(in); got != want {
			t.Errorf("CanonicalSNI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAlertIDDeterministic(t *testing.T) {
	ev := Event{UID: "CHhAvVGS1DHFjwGM9", Orig: netip.MustParseAddrPort("10.0.0.5:51234"), Resp: netip.MustParseAddrPort("203.0.113.7:443"), SNI: "evil.example"}
	a := AlertID("db_match", ev, "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d")
	if a != AlertID("db_match", ev, "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d") || len(a) != 32 {
		t.Fatalf("alert id not deterministic or wrong length: %q", a)
	}
	other := ev
	other.UID = "Cother"
	for name, b := range map[string]string{
		"rule":        AlertID("other_rule", ev, "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"),
		"connection":  AlertID("db_match", other, "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"),
		"fingerprint": AlertID("db_match", ev, "3fd3fd0003fd3fd0003fd3fd3fd3fdc354372cf4e0f164e5808b722db3fafd"),
	} {
		if b == a {
			t.Errorf("alert id ignores the %s", name)
		}
	}
	flow := Event{FlowID: 1234567890123456789}
	if flow.ConnID() != "1234567890123456789" {
		t.Errorf("ConnID of a Suricata flow = %q", flow.ConnID())
	}
}

func TestStartTLSFromService(t *testing.T) {
	for _, c := range []struct {
		svc  string
		port uint16
		want string
	}{
		{"smtp", 25, StartTLSSMTP}, {"SMTP,ssl", 587, StartTLSSMTP}, {"ssl", 465, ""}, {"", 25, ""},
		{"imap", 143, StartTLSIMAP}, {"pop3", 110, StartTLSPOP3}, {"ftp", 21, StartTLSFTP},
		{"xmpp", 5222, StartTLSXMPPClient}, {"xmpp", 5269, StartTLSXMPPServer}, {"ldap_tcp", 389, StartTLSLDAP},
		{"postgresql", 5432, StartTLSPostgres}, {"pgsql", 5432, StartTLSPostgres}, {"http", 80, ""},
	} {
		if got := StartTLSFromService(c.svc, c.port); got != c.want || (got != "" && !IsStartTLSProtocol(got)) {
			t.Errorf("StartTLSFromService(%q, %d) = %q, want %q", c.svc, c.port, got, c.want)
		}
	}
	ev := Event{Resp: netip.MustParseAddrPort("192.0.2.1:587"), Service: "smtp"}
	if tg := ev.Target(); tg.StartTLS != StartTLSSMTP {
		t.Errorf("Event.Target() StartTLS %q", tg.StartTLS)
	}
}
