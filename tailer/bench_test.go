package tailer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
)

// benchLines splits a sample into header lines and data lines.
func benchLines(b *testing.B, name string) (header, data [][]byte) {
	b.Helper()
	for l := range bytes.SplitSeq(sampleBytes(b, name), []byte{'\n'}) {
		switch {
		case len(l) == 0:
		case l[0] == '#':
			if len(data) == 0 {
				header = append(header, l)
			}
		default:
			data = append(data, l)
		}
	}
	return header, data
}

// benchParse measures one line per iteration and reports lines/s.
func benchParse(b *testing.B, p interface {
	ParseLine([]byte) (stackprint.Event, bool, error)
}, header, data [][]byte, wantEvents bool) {
	for _, h := range header {
		if _, _, err := p.ParseLine(h); err != nil {
			b.Fatal(err)
		}
	}
	size := 0
	for _, l := range data {
		size += len(l) + 1
	}
	b.SetBytes(int64(size / len(data)))
	b.ReportAllocs()
	events := 0
	i := 0
	for b.Loop() {
		_, ok, err := p.ParseLine(data[i])
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			events++
		}
		if i++; i == len(data) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	if wantEvents && events == 0 && b.N >= len(data) {
		b.Fatal("no events")
	}
}

func BenchmarkZeekTSV(b *testing.B) {
	b.Run("ssl", func(b *testing.B) { // every line an event
		h, d := benchLines(b, "zeek-tsv-ssl.brim-wrccdc2018.head200.log")
		benchParse(b, NewZeekParser("bench"), h, d, true)
	})
	b.Run("conn", func(b *testing.B) { // mostly skipped
		h, d := benchLines(b, "zeek-tsv-conn.brimdata-zed.no-close.log")
		benchParse(b, NewZeekParser("bench"), h, d, true)
	})
}

func BenchmarkZeekJSON(b *testing.B) {
	b.Run("ssl-streaming", func(b *testing.B) {
		_, d := benchLines(b, "zeek-json-streaming-ssl.brim-wrccdc2018.head200.ndjson")
		benchParse(b, NewZeekParser("bench"), nil, d, true)
	})
	b.Run("ssl-maccdc", func(b *testing.B) {
		_, d := benchLines(b, "zeek-json-ssl.maccdc2012.ndjson")
		benchParse(b, NewZeekParser("bench"), nil, d, true)
	})
	b.Run("notice-streaming", func(b *testing.B) { // skipped at _path
		_, d := benchLines(b, "zeek-json-streaming-notice.brim-wrccdc2018.head50.ndjson")
		benchParse(b, NewZeekParser("bench"), nil, d, false)
	})
}

func BenchmarkEve(b *testing.B) {
	b.Run("mixed", func(b *testing.B) { // beats eve-small: ssh alert http fileinfo dns stats tls flow
		_, d := benchLines(b, "suricata-eve.beats-eve-small.json")
		benchParse(b, NewEveParser("bench"), nil, d, true)
	})
	b.Run("tls", func(b *testing.B) {
		_, d := benchLines(b, "suricata-eve.beats-eve-small.json")
		var tls [][]byte
		for _, l := range d {
			if bytes.Contains(l, []byte(`"event_type":"tls"`)) || bytes.Contains(l, []byte(`"event_type":"alert"`)) {
				tls = append(tls, l)
			}
		}
		benchParse(b, NewEveParser("bench"), nil, tls, true)
	})
}

// BenchmarkReadFile is the whole read path (bufio line splitting, parsing,
// counting, handler call) over a file of ~100k lines.
func BenchmarkReadFile(b *testing.B) {
	for _, tc := range []struct{ name, sample, format string }{
		{"zeek-tsv-ssl", "zeek-tsv-ssl.brim-wrccdc2018.head200.log", FormatZeek},
		{"zeek-json-ssl", "zeek-json-streaming-ssl.brim-wrccdc2018.head200.ndjson", FormatZeek},
		{"eve-mixed", "suricata-eve.beats-eve-small.json", FormatEve},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, d := benchLines(b, tc.sample)
			var buf bytes.Buffer
			for _, l := range h {
				buf.Write(l)
				buf.WriteByte('\n')
			}
			lines := len(h)
			for lines < 100_000 {
				for _, l := range d {
					buf.Write(l)
					buf.WriteByte('\n')
					lines++
				}
			}
			p := filepath.Join(b.TempDir(), strings.ReplaceAll(tc.name, "-", "_")+".log")
			if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
			noop := func(context.Context, stackprint.Event) error { return nil }
			for b.Loop() {
				st, err := ReadFile(context.Background(), Input{Path: p, Format: tc.format}, Options{}, noop)
				if err != nil || st.ParseErrors != 0 || st.Lines != uint64(lines) {
					b.Fatalf("%v %+v", err, st)
				}
			}
			b.ReportMetric(float64(b.N)*float64(lines)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
