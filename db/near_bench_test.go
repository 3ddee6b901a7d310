package db

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// go test ./db/ -run '^$' -bench NearMatch -near.entries 1000000 -near.db /tmp/near1m.db
var (
	nearEntries = flag.Int("near.entries", 20000, "ATSF entries with their ten answers in the near-match benchmark DB")
	nearDBPath  = flag.String("near.db", "", "benchmark DB file, kept and reused when it exists with -near.entries entries (default: a temporary file)")
)

// synthHellos are ten per-ClientHello answers of entry i, made of the
// pieces real answers have (versions, ciphers, extension lists, alerts) so
// the strings are as long and as varied as real ones; most of them differ
// between entries, a few are shared by many (alerts), as in real data.
func synthHellos(i int) []string {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	exts := []string{"43.AwQ", "51.23", "51.29", "16.AAMCaDI", "16.AAkIaHR0cC8xLjE", "0.", "35.", "65281.", "11.AQA", "23.", "28.QAE", "1.AQ", "10.ABQAHQAXABgAGQEAAQEBAgEDAQQ"}
	ciphers := []string{"1301", "1302", "1303", "c02b", "c02f", "c030", "cca9", "cca8", "c009", "c013", "9f", "3c", "2f", "35"}
	alerts := []string{"______<40", "______<70", "______<120", "______<47", "______<50"}
	out := make([]string, ATSFHellos)
	for ch := range ATSFHellos {
		if r.IntN(4) == 0 {
			out[ch] = alerts[r.IntN(len(alerts))]
			continue
		}
		var b strings.Builder
		b.WriteString([]string{"771", "770", "769"}[r.IntN(3)])
		b.WriteString("_" + ciphers[r.IntN(len(ciphers))] + "_")
		list := func(n int) {
			if n == 0 {
				b.WriteString("-")
				return
			}
			for j := range n {
				if j > 0 {
					b.WriteByte('-')
				}
				b.WriteString(exts[r.IntN(len(exts))])
			}
		}
		list(1 + r.IntN(5))
		b.WriteString("_")
		list(r.IntN(4))
		b.WriteString("___")
		if r.IntN(3) == 0 {
			b.WriteString("-")
		}
		// A per-entry token keeps most answers distinct, as the tail of
		// real fingerprints is.
		b.WriteString("_" + strconv.FormatUint(r.Uint64()%100000, 36))
		out[ch] = b.String()
	}
	return out
}

// buildNearDB writes n ATSF entries with their answers, many per
// transaction (the import path), without fsync.
func buildNearDB(b *testing.B, path string, n int) {
	d, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	d.bolt.NoSync = true
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	// Small transactions: bbolt inserts into an unsplit in-memory node,
	// so one huge transaction of random keys is quadratic.
	const batch = 2000
	for start := 0; start < n; start += batch {
		err := d.update(func(tx *bolt.Tx) error {
			for i := start; i < min(start+batch, n); i++ {
				h := synthHellos(i)
				r := Record{Kind: KindATSF, Value: ATSFID(h), Label: fmt.Sprintf("synthetic-%d", i), Source: "bench", Confidence: ConfidenceMedium, Hellos: h}
				if err := ValidateRecord(&r); err != nil {
					return err
				}
				if _, err := put(tx, r, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := d.bolt.Sync(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkNearMatch is the cost of Match (exact and near lookups) for one
// probe against a DB of -near.entries ATSF entries: hit (a probe one
// answer away from an entry), miss (near nothing). It reports the file
// size and the process's resident memory.
func BenchmarkNearMatch(b *testing.B) {
	path := *nearDBPath
	if path == "" {
		path = b.TempDir() + "/near.db"
	}
	fresh := true
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		d, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		s, err := d.Stats()
		d.Close()
		if err != nil {
			b.Fatal(err)
		}
		fresh = s.ByKind[KindATSF] != *nearEntries
		if fresh {
			os.Remove(path)
		}
	}
	if fresh {
		t0 := time.Now()
		buildNearDB(b, path, *nearEntries)
		b.Logf("built %d entries in %s", *nearEntries, time.Since(t0).Round(time.Millisecond))
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	d, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()

	probes := func(hit bool) []stackprint.Result {
		var out []stackprint.Result
		for j := range 512 {
			i := (j * 7919) % *nearEntries
			h := synthHellos(i)
			if hit {
				h[j%ATSFHellos] = "______<112"
			} else {
				h = synthHellos(*nearEntries + j) // an entry never stored
			}
			out = append(out, resultOf(h))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		hit  bool
	}{{"hit", true}, {"miss", false}} {
		b.Run(tc.name, func(b *testing.B) {
			ps := probes(tc.hit)
			found := 0
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				ms, err := d.Match(ps[i%len(ps)])
				if err != nil {
					b.Fatal(err)
				}
				for _, m := range ms {
					if m.Near != nil && m.Near.Agree == 9 {
						found++
						break
					}
				}
				if tc.hit && found == 0 {
					b.Fatalf("probe %d: no near match", i)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			if tc.hit && found < b.N {
				b.Fatalf("%d of %d probes found their near entry", found, b.N)
			}
			if !tc.hit && found > 0 {
				b.Fatalf("%d near matches for never-stored probes", found)
			}
			b.ReportMetric(float64(st.Size())/(1<<20), "file-MiB")
			b.ReportMetric(float64(st.Size())/float64(*nearEntries), "file-B/entry")
			rss, hwm := procMemory()
			b.ReportMetric(rss, "rss-MiB")
			b.ReportMetric(hwm, "peak-rss-MiB")
		})
	}
}

// cpuTime is the user and system CPU time of this process: on a shared,
// loaded machine it says more than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procMemory reads VmRSS and VmHWM of this process in MiB (Linux).
func procMemory() (rss, hwm float64) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}
