package tailer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/internal/loggen"
)

// BenchmarkIngest is the per-line cost of what `stackprint scan --no-probe`
// and the daemon's tailer do with a line: read it from the file and split it off,
// parse it, and for a TLS event look its target up in the dedup index (a
// miss: scope check and insert, evicting at capacity). The logs are
// bench/gen's (internal/loggen): 100,000 connections, 7 in 10 TLS, to
// 1,000 recurring servers (hits) or to a new server each time (misses and
// evictions, the index holding 10,000). It reports ns/line and
// allocs/line.
func BenchmarkIngest(b *testing.B) {
	const lines = 100_000
	dir := b.TempDir()
	for _, w := range []struct {
		name    string
		servers int
	}{{"recurring", 1000}, {"distinct", lines}} {
		var tsv, js, eve bytes.Buffer
		if err := loggen.Write(&tsv, &js, &eve, lines, w.servers); err != nil {
			b.Fatal(err)
		}
		for _, f := range []struct {
			name, format string
			data         []byte
		}{{"tsv", FormatZeek, tsv.Bytes()}, {"json", FormatZeek, js.Bytes()}, {"eve", FormatEve, eve.Bytes()}} {
			path := filepath.Join(dir, w.name+"."+f.name)
			if err := os.WriteFile(path, f.data, 0o644); err != nil {
				b.Fatal(err)
			}
			b.Run(f.name+"/"+w.name, func(b *testing.B) {
				benchIngestFile(b, path, f.format, lines)
			})
		}
	}
}

func benchIngestFile(b *testing.B, path, format string, lines int) {
	scope := enrich.NewScope(nil, nil, nil)
	in := Input{Path: path, Format: format}
	b.SetBytes(fileSize(b, path))
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	for b.Loop() {
		dr := enrich.NewDryRun(scope, 10_000, time.Hour, time.Now())
		st, err := ReadFile(context.Background(), in, Options{}, dr.Handle)
		if err != nil {
			b.Fatal(err)
		}
		dr.Flush()
		if st.ParseErrors != 0 || st.Events != uint64(lines*7/10) {
			b.Fatalf("%+v", st)
		}
	}
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	n := float64(b.N) * float64(lines)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/line")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/line")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/n, "allocs/line")
}

// cpuTime is the process's user and system CPU time: on a loaded machine
// the per-line CPU cost says more than the wall clock (run with
// GOMAXPROCS=1 for the cost on one core).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
