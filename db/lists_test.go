package db

import (
	"strings"
	"testing"
)

func TestParseTargetList(t *testing.T) {
	feodo := `################################################################
# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)          #
################################################################
#
"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"
"2021-01-17 07:30:05","67.213.75.205","443","offline","2021-08-18","Dridex"
"2021-01-17 07:44:46","51.178.161.32","4643","online","2021-08-18","Dridex"
"2021-01-17 07:44:46","51.178.161.32","4643","online","2021-08-18","Dridex"
"2026-01-01 00:00:00","::ffff:203.0.113.10","443","online","2026-09-21","QakBot"
"2026-01-01 00:00:00","not-an-ip!","443","online","2026-09-21","QakBot"
`
	e, rej, format, err := ParseTargetList([]byte(feodo), 443)
	if err != nil || format != ListFeodo {
		t.Fatal(format, err)
	}
	if len(e) != 3 || e[0].Key != "67.213.75.205:443" || e[0].Hint != "Dridex" || e[1].Port != 4643 || e[2].Key != "203.0.113.10:443" || e[2].Hint != "QakBot" {
		t.Errorf("feodo entries = %+v", e)
	}
	if len(rej) != 1 || rej[0].Line != 10 {
		t.Errorf("feodo rejections = %+v", rej)
	}
	// The old Feodo header, as a comment.
	e, _, format, _ = ParseTargetList([]byte("# Firstseen,DstIP,DstPort,LastOnline,Malware\n2019-01-01 00:00:00,192.0.2.1,8080,2019-01-02,Emotet\n"), 443)
	if format != ListFeodo || len(e) != 1 || e[0].Key != "192.0.2.1:8080" || e[0].Hint != "Emotet" {
		t.Errorf("old feodo: %s %+v", format, e)
	}

	e, rej, format, _ = ParseTargetList([]byte("1,google.com\n2,Example.ORG.\n3,bad_host!\nx,y\n"), 8443)
	if format != ListTranco || len(e) != 2 || e[0].Key != "google.com:8443" || e[0].Hint != "rank 1" || e[1].Host != "example.org" {
		t.Errorf("tranco: %s %+v", format, e)
	}
	if len(rej) != 2 || rej[0].Line != 3 || rej[1].Line != 4 {
		t.Errorf("tranco rejections = %+v", rej)
	}

	e, rej, format, _ = ParseTargetList([]byte("# c2s\n192.0.2.7\n192.0.2.8:8443 # note\n[2001:db8::1]:443\nc2.example:4443\nhost.example\n192.0.2.9:0\n"), 443)
	if format != ListPlain || len(e) != 5 {
		t.Fatalf("plain: %s %+v %+v", format, e, rej)
	}
	want := []string{"192.0.2.7:443", "192.0.2.8:8443", "[2001:db8::1]:443", "c2.example:4443", "host.example:443"}
	for i, w := range want {
		if e[i].Key != w {
			t.Errorf("plain entry %d = %q, want %q", i, e[i].Key, w)
		}
	}
	if len(rej) != 1 || rej[0].Line != 7 || !strings.Contains(rej[0].Reason, "port") {
		t.Errorf("plain rejections = %+v", rej)
	}
}
