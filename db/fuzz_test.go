package db

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzImport checks that Import never panics, is all-or-nothing, and only
// ever stores records that are valid and already normalised.
func FuzzImport(f *testing.F) {
	f.Add("kind,value,label,source,confidence\njarm," + jarmA + ",a,s,high\n")
	f.Add("kind,value,label,source,confidence,category,notes\ncert_sha1," + strings.ToUpper(sha1A) + ",x,,,c,\"n\"\"q\"\n")
	f.Add("kind,value,label,source,confidence\njarm,abc,a,s,high\njarm," + jarmB + ",b,s,\n")
	f.Add("# c\n\ufeffKIND,Value,label,source,confidence\n\"jarm\"," + jarmB + ",\"multi\nline\",s,low\n")
	f.Add("kind,value\n")
	f.Add("\"unterminated\n")

	d, err := Open(filepath.Join(f.TempDir(), "fuzz.db"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })

	f.Fuzz(func(t *testing.T, in string) {
		before, err := d.List("")
		if err != nil {
			t.Fatal(err)
		}
		rep, err := d.Import(strings.NewReader(in), "fuzz.csv")
		after, lerr := d.List("")
		if lerr != nil {
			t.Fatal(lerr)
		}
		if err != nil {
			if rep.Accepted != 0 || len(after) != len(before) {
				t.Fatalf("failed import changed the DB: accepted %d, %d → %d records", rep.Accepted, len(before), len(after))
			}
			return
		}
		if len(rep.Rejected) != 0 {
			t.Fatalf("success with rejections: %+v", rep.Rejected)
		}
		if len(after) > len(before)+rep.Accepted {
			t.Fatalf("%d records after importing %d into %d", len(after), rep.Accepted, len(before))
		}
		for _, r := range after {
			n := r
			if err := ValidateRecord(&n); err != nil {
				t.Fatalf("stored record invalid: %+v: %v", r, err)
			}
			if n.Kind != r.Kind || n.Value != r.Value || n.Label != r.Label || n.Confidence != r.Confidence {
				t.Fatalf("stored record not normalised: %+v", r)
			}
		}
	})
}
