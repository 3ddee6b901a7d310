package output

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/zeeklog"
)

func TestServerFeeds(t *testing.T) {
	dir := t.TempDir()
	intelPath, dsPath := filepath.Join(dir, "stackprint.intel"), filepath.Join(dir, "stackprint-bad.lst")
	intel, err := OpenServerFeed(intelPath, FeedZeekIntel, FeedOptions{DoNotice: true})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := OpenServerFeed(dsPath, FeedSuricataDataset, FeedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Both exist before any alert, so sensor configs naming them load.
	if b, _ := os.ReadFile(intelPath); string(b) != "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\tmeta.do_notice\n" {
		t.Errorf("empty intel file %q", b)
	}
	if b, err := os.ReadFile(dsPath); err != nil || len(b) != 0 {
		t.Errorf("empty dataset file %q %v", b, err)
	}

	as := fixtureAlerts()
	odd := as[0]
	odd.Event.Resp = netip.MustParseAddrPort("[::ffff:192.0.2.1]:443") // IPv4-mapped: written as IPv4
	odd.Match.Label = "tab\tnew\nline back\\slash"
	odd.Event.SNI = ""
	for _, f := range []*ServerFeed{intel, ds} {
		for i, a := range []stackprint.Alert{as[0], as[1], as[2], as[0], odd} {
			added, err := f.Add(a)
			if err != nil {
				t.Fatal(err)
			}
			// as[1] is simulated: never fed to the sensor; as[0] twice.
			if want := i == 0 || i == 2 || i == 4; added != want {
				t.Errorf("alert %d: added %v, want %v", i, added, want)
			}
		}
		if f.Len() != 3 {
			t.Errorf("%d servers, want 3", f.Len())
		}
	}
	ib, _ := os.ReadFile(intelPath)
	db, _ := os.ReadFile(dsPath)
	golden(t, "stackprint.intel", ib)
	golden(t, "stackprint-bad.lst", db)
	if strings.ContainsAny(strings.ReplaceAll(strings.ReplaceAll(string(ib), "\t", ""), "\n", ""), "\t\n\r") {
		t.Errorf("raw control characters in the intel file")
	}
	// No temp files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("directory holds %d files, want 2", len(ents))
	}
	st, _ := os.Stat(intelPath)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("intel file mode %v, want 0644 (read by Zeek)", st.Mode().Perm())
	}

	// Reopening keeps the servers, descriptions included; Suricata's own
	// expanded IPv6 form is accepted.
	intel2, err := OpenServerFeed(intelPath, FeedZeekIntel, FeedOptions{DoNotice: true})
	if err != nil {
		t.Fatal(err)
	}
	if intel2.Len() != 3 {
		t.Fatalf("reloaded %d servers", intel2.Len())
	}
	if added, _ := intel2.Add(as[2]); added {
		t.Error("a reloaded server was added again")
	}
	if err := os.WriteFile(dsPath, []byte("0004:0005:0000:0000:0000:0000:0000:0006\n# comment\n\n192.0.2.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ds2, err := OpenServerFeed(dsPath, FeedSuricataDataset, FeedOptions{})
	if err != nil || ds2.Len() != 2 {
		t.Fatalf("dataset reload: %v, %d servers", err, ds2.Len())
	}
	a := as[0]
	a.Event.Resp = netip.MustParseAddrPort("[4:5::6]:443")
	if added, _ := ds2.Add(a); added {
		t.Error("expanded and compressed IPv6 seen as different servers")
	}
	if err := os.WriteFile(dsPath, []byte("not-an-ip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenServerFeed(dsPath, FeedSuricataDataset, FeedOptions{}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad dataset accepted: %v", err)
	}
}

func TestIntelEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":       "plain",
		"":            "(empty)",
		"-":           `\x2d`,
		"(empty)":     `\x28empty)`,
		"a\tb\nc":     `a\x09b\x0ac`,
		`back\slash`:  `back\x5cslash`,
		"ünï":         "ünï",
		"bad\xffbyte": `bad\xffbyte`,
	} {
		got := zeeklog.EscapeInput(in)
		if got != want {
			t.Errorf("zeeklog.EscapeInput(%q) = %q, want %q", in, got, want)
		}
		// Zeek's input reader decodes \xHH only; that must give the input.
		if in != "" && zeeklog.Unescape(strings.ReplaceAll(got, `\\`, `\x5c`)) != in {
			t.Errorf("%q does not decode back", got)
		}
	}
}
