package output

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackprint/stackprint/internal/zeekread"
	"github.com/stackprint/stackprint/zeeklog"
)

// FuzzZeekTSVRoundTrip writes any string as a string and a set element
// and reads it back with zeekread.ReadTSV.
func FuzzZeekTSVRoundTrip(f *testing.F) {
	for _, s := range awkward {
		f.Add(s)
	}
	schema := zeeklog.Schema{Path: "fuzz", Fields: []zeeklog.Field{{Name: "s", Type: "string"}, {Name: "set", Type: "set[string]"}}}
	f.Fuzz(func(t *testing.T, in string) {
		path := filepath.Join(t.TempDir(), "f.log")
		l, err := zeeklog.Open(path, schema, zeeklog.Options{Now: func() time.Time { return fixedOpen }})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Write([]any{in, []string{in, "x"}}); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		fh, _ := os.Open(path)
		defer fh.Close()
		z, err := zeekread.ReadTSV(fh)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if len(z.Records) != 1 || z.Records[0]["s"] != in {
			t.Fatalf("%q read back as %#v", in, z.Records)
		}
		if set := z.Records[0]["set"].([]string); len(set) != 2 || set[0] != in {
			t.Fatalf("%q in a set read back as %#v", in, set)
		}
	})
}

// FuzzReadZeekTSV: any input is parsed or refused, never a panic.
func FuzzReadZeekTSV(f *testing.F) {
	for _, name := range []string{"stackprint.log", "stackprint_alert.tsv.log", "roundtrip.tsv.log"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = zeekread.ReadTSV(bytes.NewReader(in))
		_, _ = zeekread.ReadJSON(bytes.NewReader(in), roundTripSchema())
	})
}
