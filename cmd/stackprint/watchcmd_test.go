package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The watch commands on a DB file (no daemon): add, list, import (bad
// lines named file:line, all or nothing), accept before any probe, rm.
func TestWatchCommandsOnTheFile(t *testing.T) {
	dir := t.TempDir()
	dbf := filepath.Join(dir, "fp.db")
	out, err := runCmd(t, "watch", "add", "--db", dbf, "--label", "web-prod", "--every", "30m", "--sni", "www.example.org", "192.0.2.10:443")
	if err != nil || !strings.Contains(out, "watching 192.0.2.10:443/www.example.org (every 30m0s)") {
		t.Fatalf("add: %q %v", out, err)
	}
	if _, err := runCmd(t, "watch", "add", "--db", dbf, "--sni", "www.example.org", "192.0.2.10:443"); err == nil || !strings.Contains(err.Error(), "already watched") {
		t.Fatalf("second add: %v", err)
	}
	if _, err := runCmd(t, "watch", "add", "--db", dbf, "--every", "10ms", "192.0.2.11:443"); err == nil || !strings.Contains(err.Error(), "every 10ms: at least 1s") {
		t.Fatalf("bad every: %v", err)
	}
	list := filepath.Join(dir, "own.csv")
	bad := "target,sni,every,label\n# our servers\n192.0.2.20:443,,1h,mail\n192.0.2.21,,,\n192.0.2.22:8443,,soon,\n\n192.0.2.20:443,,,again\n"
	if err := os.WriteFile(list, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runCmd(t, "watch", "import", "--db", dbf, list)
	for _, want := range []string{list + ":4: target \"192.0.2.21\"", list + `:5: every "soon"`, list + ":7: 192.0.2.20:443 listed twice (first on line 3)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("import error %v lacks %q", err, want)
		}
	}
	good := "192.0.2.20:443,,1h,mail\n[2001:db8::5]:993,imap.example.org,,imap\n192.0.2.10:443,www.example.org,,dup\n"
	if err := os.WriteFile(list, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, "watch", "import", "--db", dbf, list); err == nil || !strings.Contains(err.Error(), list+":3: 192.0.2.10:443/www.example.org: already watched") {
		t.Fatalf("import of a watched server: %v", err)
	}
	if out, _ := runCmd(t, "watch", "list", "--db", dbf); strings.Count(out, "\n") != 2 {
		t.Fatalf("a failed import wrote entries:\n%s", out)
	}
	if out, err := runCmd(t, "watch", "import", "--db", dbf, "--replace", list); err != nil || !strings.Contains(out, "imported 3 servers") {
		t.Fatalf("import --replace: %q %v", out, err)
	}
	out, err = runCmd(t, "watch", "list", "--db", dbf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.0.2.10:443/www.example.org", "dup", "192.0.2.20:443", "[2001:db8::5]:993/imap.example.org", "new"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	if _, err := runCmd(t, "watch", "accept", "--db", dbf, "192.0.2.20:443"); err == nil || !strings.Contains(err.Error(), "no successful probe yet") {
		t.Fatalf("accept before a probe: %v", err)
	}
	if out, err := runCmd(t, "watch", "rm", "--db", dbf, "192.0.2.10:443"); err != nil || !strings.Contains(out, "no longer watching 192.0.2.10:443/www.example.org") {
		t.Fatalf("rm by address: %q %v", out, err)
	}
	if _, err := runCmd(t, "watch", "rm", "--db", dbf, "192.0.2.10:443"); err == nil || !strings.Contains(err.Error(), "not watched") {
		t.Fatalf("rm twice: %v", err)
	}
	if out, err := runCmd(t, "watch", "list", "--db", dbf, "--json"); err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"origin":"import `) {
		t.Fatalf("list --json: %q %v", out, err)
	}
}
