package output

import (
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
)

func TestFormatAlertText(t *testing.T) {
	as := fixtureAlerts()
	got := FormatAlertText(as[0])
	want := "ALERT high  rule db_match  2025-03-04T05:06:08Z\n" +
		"  why    TLS server fingerprint in the fingerprint DB\n" +
		"  conn   10.0.0.5:51234 → 203.0.113.7:443  sni evil.example  uid CHhAvVGS1DHFjwGM9\n" +
		"  jarm   " + jarmHit + "\n" +
		"  cert   sha1 " + certSHA1 + "  CN=evil.example\n" +
		"  http   Server: Microsoft-IIS/10.0\n" +
		"  match  cobalt-strike  (source salesforce/jarm, confidence high)\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Simulated, suppressed, and not about a DB entry (drift).
	d := as[1]
	d.Match = stackprint.Match{}
	got = FormatAlertText(d)
	if !strings.Contains(got, "[simulated]  (+3 suppressed)\n") || strings.Contains(got, "match") {
		t.Errorf("simulated drift alert:\n%s", got)
	}
	if got := FormatAlertText(as[3]); !strings.Contains(got, "[retro-hunt]") || !strings.Contains(got, "conn   - → 203.0.113.7:443") {
		t.Errorf("retro-hunt alert:\n%s", got)
	}

	// Suricata event: flow_id instead of uid; the SNI's TAB is escaped.
	got = FormatAlertText(as[2])
	for _, s := range []string{"[2001:db8::5]:40000 → [2001:db8::7]:8443", `sni tab\x09here.example`, "flow_id 1234567890123456789", "ünïcode <&> label  (confidence low)", "http   Server: -"} {
		if !strings.Contains(got, s) {
			t.Errorf("%q missing from\n%s", s, got)
		}
	}
}

func TestFormatAlertTextNeutralisesTerminalControls(t *testing.T) {
	a := fixtureAlerts()[0]
	a.Event.SNI = "x\x1b[2J\u202eevil"
	a.Match.Label = "bad\xffbyte"
	got := FormatAlertText(a)
	if strings.ContainsAny(got, "\x1b\u202e") || strings.Contains(got, "\xff") {
		t.Errorf("raw control bytes reach the terminal: %q", got)
	}
	for _, s := range []string{`x\x1b[2J\u202eevil`, `bad\xffbyte`} {
		if !strings.Contains(got, s) {
			t.Errorf("%q missing from %q", s, got)
		}
	}
}
