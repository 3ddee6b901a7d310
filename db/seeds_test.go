package db

import (
	"os"
	"strings"
	"testing"
)

// TestSeedList imports the shipped seed list and checks its policy
// (configs/seeds/README.md): every line valid, every entry sourced, every
// default stack low, nothing high.
func TestSeedList(t *testing.T) {
	const path = "../configs/seeds/jarm-intel.csv"
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, _ := openTest(t)
	rep, err := d.ImportWith(f, path, ImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v (%+v)", path, err, rep.Rejected)
	}
	if rep.Format != FormatCSV || rep.Accepted < 20 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("seed lines with warnings (a default stack above low?): %+v", rep.Warnings)
	}
	recs, err := d.List("")
	if err != nil {
		t.Fatal(err)
	}
	defaults := 0
	for _, r := range recs {
		if r.Source == "" {
			t.Errorf("%s %s (%s): no source", r.Kind, r.Value, r.Label)
		}
		if r.Confidence == ConfidenceHigh {
			t.Errorf("%s (%s): high confidence; no public JARM alone justifies it", r.Value, r.Label)
		}
		_, isDefault := DefaultStack(r.Kind, r.Value)
		documented := strings.Contains(r.Notes, "DEFAULT STACK")
		if isDefault != documented {
			t.Errorf("%s (%s): DefaultStack %v but notes say default stack %v", r.Value, r.Label, isDefault, documented)
		}
		if isDefault {
			defaults++
			if r.Confidence != ConfidenceLow {
				t.Errorf("%s (%s) equals a default stack but has confidence %s", r.Value, r.Label, r.Confidence)
			}
		}
	}
	if defaults < 8 {
		t.Errorf("only %d default-stack entries recognised; the README lists 9", defaults)
	}
	// The Metasploit entry is stock OpenSSL 3.0 s_server (docs/JARM.md row A).
	if r, ok, _ := d.Get(KindJARM, "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"); !ok || r.Label != "Metasploit" || r.Confidence != ConfidenceLow {
		t.Errorf("Metasploit seed = %+v, %v", r, ok)
	}
}
