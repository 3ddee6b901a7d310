package tailer

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint/internal/loggen"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/parse-golden from the parsers as they are now")

// goldenDir holds, per input, what the parsers made of each line: the
// event with every field, skip, meta, or the error message. The files were
// written by the parsers before the zero-allocation rewrite (the commit
// before it, with -update-golden); TestParseGolden holds the parsers to
// them, so a faster parser gives the same events, skips and messages.
const goldenDir = "testdata/parse-golden"

type goldenInput struct {
	name, format string
	data         []byte
}

// goldenInputs are the sample logs, bench/gen's lines and mutations of
// both (truncated, a byte dropped, a structural byte swapped in): the
// malformed lines must fail the same way too.
func goldenInputs(t *testing.T) []goldenInput {
	t.Helper()
	var ins []goldenInput
	paths, err := filepath.Glob(filepath.Join(samplesDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		base := filepath.Base(p)
		format := ""
		switch {
		case strings.HasPrefix(base, "zeek-") && !strings.HasPrefix(base, "zeek-intel"):
			format = FormatZeek
		case strings.HasPrefix(base, "suricata-eve") || strings.HasPrefix(base, "suricata-verify"):
			format = FormatEve
		default:
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, goldenInput{base, format, b})
	}
	var tsv, js, eve bytes.Buffer
	if err := loggen.Write(&tsv, &js, &eve, 300, 40); err != nil {
		t.Fatal(err)
	}
	ins = append(ins,
		goldenInput{"gen.conn.log", FormatZeek, tsv.Bytes()},
		goldenInput{"gen.conn.json", FormatZeek, js.Bytes()},
		goldenInput{"gen.eve.json", FormatEve, eve.Bytes()})
	n := len(ins)
	for _, in := range ins[:n] {
		ins = append(ins, goldenInput{in.name + ".mutated", in.format, mutate(in.data)})
	}
	return ins
}

// mutate returns data with each data line followed by three broken
// copies of it (header lines are kept as they are: the schema must stay).
func mutate(data []byte) []byte {
	rng := rand.New(rand.NewPCG(7, uint64(len(data))))
	const swaps = "\"{}[],:\\ \t0a-.#\x00\xff"
	var out []byte
	for l := range bytes.SplitSeq(bytes.TrimSuffix(data, []byte{'\n'}), []byte{'\n'}) {
		out = append(append(out, l...), '\n')
		if len(l) < 2 || l[0] == '#' {
			continue
		}
		i := rng.IntN(len(l))
		out = append(append(out, l[:i]...), '\n')
		out = append(append(append(out, l[:i]...), l[i+1:]...), '\n')
		c := append([]byte(nil), l...)
		c[rng.IntN(len(c))] = swaps[rng.IntN(len(swaps))]
		out = append(append(out, c...), '\n')
	}
	return out
}

// renderParse is one line per input line: what the parser made of it.
func renderParse(format string, data []byte) []byte {
	var p lineParser = NewZeekParser("golden")
	if format == FormatEve {
		p = NewEveParser("golden")
	}
	var out bytes.Buffer
	for l := range bytes.SplitSeq(bytes.TrimSuffix(data, []byte{'\n'}), []byte{'\n'}) {
		ev, class, err := p.parse(l)
		switch {
		case err != nil:
			fmt.Fprintf(&out, "X %v\n", err)
		case class == classEvent:
			fmt.Fprintf(&out, "E %s %s uid=%q flow=%d %s > %s sni=%q svc=%q src=%s\n",
				ev.Kind, ev.TS.Format(time.RFC3339Nano), ev.UID, ev.FlowID, ev.Orig, ev.Resp, ev.SNI, ev.Service, ev.Source)
		case class == classSkip:
			out.WriteString("S\n")
		default:
			out.WriteString("M\n")
		}
	}
	return out.Bytes()
}

func readGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return io.ReadAll(zr)
}

func TestParseGolden(t *testing.T) {
	ins := goldenInputs(t)
	if *updateGolden {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, in := range ins {
		got := renderParse(in.format, in.data)
		path := filepath.Join(goldenDir, in.name+".txt.gz")
		if *updateGolden {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(got)
			zw.Close()
			if err := os.WriteFile(path, z.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := readGzip(path)
		if err != nil {
			t.Fatalf("%s: %v (write it with -update-golden)", in.name, err)
		}
		if bytes.Equal(got, want) {
			continue
		}
		lines := bytes.Split(bytes.TrimSuffix(in.data, []byte{'\n'}), []byte{'\n'})
		g, w := bytes.Split(got, []byte{'\n'}), bytes.Split(want, []byte{'\n'})
		for i := range min(len(g), len(w)) {
			if !bytes.Equal(g[i], w[i]) {
				t.Errorf("%s line %d %.200q:\n got %s\nwant %s", in.name, i+1, lines[i], g[i], w[i])
				break
			}
		}
		if len(g) != len(w) {
			t.Errorf("%s: %d lines, golden has %d", in.name, len(g), len(w))
		}
	}
}
