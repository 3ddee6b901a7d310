package tailer

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
)

// The adversarial pass's reproduction: a 500 KB server_name was copied into
// a 500 KB record. Only host names (RFC 6066) are kept; the event still
// arrives, without its SNI, and the rest is counted.
func TestInvalidSNIIsDroppedAndCounted(t *testing.T) {
	names := []struct {
		sni, want string
	}{
		{"www.example.org", "www.example.org"},
		{"WWW.Example.ORG.", "www.example.org"},
		{"_dmarc.example.org", "_dmarc.example.org"},
		{strings.Repeat("a", 63) + ".example.org", strings.Repeat("a", 63) + ".example.org"},
		{strings.Repeat("a", 500<<10), ""},             // 500 KB
		{strings.Repeat("a", 64) + ".example.org", ""}, // label over 63
		{strings.Repeat("abcdefghi.", 26) + "org", ""}, // 263 bytes
		{"bad name.example.org", ""},                   // space
		{"bücher.example", ""},                         // not ASCII (IDNs travel as xn--)
		{"a..b", ""},                                   // empty label
		{`evil"}{"x":"y`, ""},                          // JSON in the name
	}
	dir := t.TempDir()
	var eve, zeek strings.Builder
	zeek.WriteString("#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tserver_name\n#types\ttime\tstring\taddr\tport\taddr\tport\tstring\n")
	for i, n := range names {
		sni := strings.ReplaceAll(n.sni, `"`, `\"`)
		eve.WriteString(`{"timestamp":"2024-01-01T00:00:00.000000+0000","flow_id":` + strconv.Itoa(i+1) + `,"event_type":"tls","src_ip":"10.0.0.1","src_port":5,"dest_ip":"192.0.2.1","dest_port":443,"proto":"TCP","tls":{"sni":"` + sni + `"}}` + "\n")
		zeek.WriteString("1704067200.0\tC" + strconv.Itoa(i) + "\t10.0.0.1\t5\t192.0.2.1\t443\t" + n.sni + "\n")
	}
	for _, in := range []struct{ name, format, text string }{{"eve.json", FormatEve, eve.String()}, {"ssl.log", FormatZeek, zeek.String()}} {
		t.Run(in.format, func(t *testing.T) {
			p := filepath.Join(dir, in.name)
			if err := os.WriteFile(p, []byte(in.text), 0o644); err != nil {
				t.Fatal(err)
			}
			var evs []stackprint.Event
			st, err := ReadFile(context.Background(), Input{Path: p, Format: in.format}, Options{MaxLineBytes: 1 << 20}, func(_ context.Context, ev stackprint.Event) error {
				evs = append(evs, ev)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != len(names) {
				t.Fatalf("%d events, want %d (an invalid SNI must not lose the event)", len(evs), len(names))
			}
			invalid := 0
			for i, n := range names {
				if evs[i].SNI != n.want {
					t.Errorf("event %d: SNI %.60q, want %q", i, evs[i].SNI, n.want)
				}
				if n.want == "" {
					invalid++
				}
			}
			if st.InvalidSNI != uint64(invalid) {
				t.Errorf("InvalidSNI = %d, want %d", st.InvalidSNI, invalid)
			}
		})
	}
}
