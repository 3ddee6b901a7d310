package rules

import (
	"io/fs"
	"testing"

	defaultrules "github.com/stackprint/stackprint/configs/rules"
)

// FuzzParseFile: any rule file is compiled or refused with located
// errors, never a panic.
func FuzzParseFile(f *testing.F) {
	names, _ := fs.Glob(defaultrules.FS, "*.yaml")
	for _, n := range names {
		b, _ := fs.ReadFile(defaultrules.FS, n)
		f.Add(b)
	}
	f.Add([]byte("version: 1\nrules:\n  - {id: a, name: A, severity: low, params: {x: 1}, when: 'params.x > 0 && in_cidr(event.resp_ip, \"10.0.0.0/8\")'}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rs, err := ParseFile("fuzz.yaml", in)
		if err == nil {
			for _, r := range rs {
				if r.when == nil || r.ID == "" || !ValidSeverity(r.Severity) {
					t.Fatalf("accepted an incomplete rule: %+v", r)
				}
			}
		}
	})
}
