package probe

import (
	"bufio"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// jarmTestdata returns testdata/jarm at the repository root (vectors of
// docs/JARM.md §2, provenance in its README). The vectors are the
// contract, so a missing directory fails the test instead of skipping it.
func jarmTestdata(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("..", "testdata", "jarm")
	if _, err := os.Stat(filepath.Join(dir, "parser_crafted_cases.jsonl")); err != nil {
		t.Fatalf("JARM vectors not found at %s (part of the repository): %v", dir, err)
	}
	return dir
}

// jarmParserCase is one line of parser_*_cases.jsonl.
type jarmParserCase struct {
	Hex  string `json:"hex"`
	Want string `json:"want"`
}

// readJARMParserCases reads a .jsonl or .jsonl.gz file of parser cases.
func readJARMParserCases(t testing.TB, name string) []jarmParserCase {
	t.Helper()
	f, err := os.Open(filepath.Join(jarmTestdata(t), name))
	if err != nil {
		t.Fatalf("open parser cases: %v", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("gunzip %s: %v", name, err)
		}
		defer gz.Close()
		r = gz
	}
	var cases []jarmParserCase
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var c jarmParserCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s:%d: %v", name, line, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return cases
}

// jarmCapture is one <Id>_*.json capture of the reference run.
type jarmCapture struct {
	Host   string `json:"host"`
	Port   int    `json:"port"`
	JARM   string `json:"jarm"`
	Raw    string `json:"raw"`
	Probes []struct {
		ClientHello string   `json:"clienthello"`
		Response    *string  `json:"response"` // hex, "TIMEOUT", or null (connect failed)
		Result      *string  `json:"result"`
		Probe       []string `json:"probe"`
	} `json:"probes"`
}

// readJARMCaptures returns every capture keyed by file name.
func readJARMCaptures(t testing.TB) map[string]jarmCapture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(jarmTestdata(t), "[A-Z]_*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no JARM captures found: %v", err)
	}
	out := map[string]jarmCapture{}
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			t.Fatalf("read capture: %v", err)
		}
		var c jarmCapture
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("decode %s: %v", fn, err)
		}
		out[filepath.Base(fn)] = c
	}
	return out
}

// jarmCaptureFor returns the capture whose file name starts with id + "_".
func jarmCaptureFor(t testing.TB, id string) jarmCapture {
	t.Helper()
	for name, c := range readJARMCaptures(t) {
		if strings.HasPrefix(name, id+"_") {
			return c
		}
	}
	t.Fatalf("no capture for row %s", id)
	return jarmCapture{}
}

// readJARMGolden returns the ten ClientHellos of the zero-random golden file.
func readJARMGolden(t testing.TB) [10][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join(jarmTestdata(t), "probes_example.com_zero-random_grease0a0a.txt"))
	if err != nil {
		t.Fatalf("open golden probes: %v", err)
	}
	defer f.Close()
	var out [10][]byte
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "clienthello(") {
			continue
		}
		_, h, ok := strings.Cut(line, " = ")
		if !ok || n == len(out) {
			t.Fatalf("golden probes: unexpected line %.60q", line)
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("golden probe %d: %v", n+1, err)
		}
		out[n] = b
		n++
	}
	if err := sc.Err(); err != nil || n != len(out) {
		t.Fatalf("golden probes: read %d of 10 ClientHellos: %v", n, err)
	}
	return out
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %.40q: %v", s, err)
	}
	return b
}

// zeroReader yields zeros forever: the golden vectors' randomness.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
