package tailer

// Follower cases of docs/TAILER-CASES.md (P10, P11, J8, S9 and the R, C
// and F groups): one test per case id, real files, renames and
// gzip in t.TempDir().

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/stackprint/stackprint"
)

// gated is a collector whose handler blocks until open is called (a slow
// sink), after the first `pass` events.
type gated struct {
	*collector
	pass    int
	mu      sync.Mutex
	n       int
	gate    chan struct{}
	blocked chan struct{}
}

func newGated(pass int) *gated {
	return &gated{collector: newCollector(), pass: pass, gate: make(chan struct{}), blocked: make(chan struct{})}
}

func (g *gated) handle(ctx context.Context, ev stackprint.Event) error {
	g.mu.Lock()
	g.n++
	n := g.n
	g.mu.Unlock()
	if n == g.pass+1 {
		close(g.blocked)
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.collector.handle(ctx, ev)
}

func (g *gated) open() { close(g.gate) }

// run starts a tailer with handler h; it is stopped at cleanup.
func run(t *testing.T, in Input, opts Options, h Handler) *Tailer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.RotateWait == 0 {
		opts.RotateWait = 100 * time.Millisecond
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	tl, err := New(in, opts, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return tl
}

// lines returns jsonLine(from) … jsonLine(to-1).
func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(jsonLine(i))
	}
	return b.String()
}

func tsvLines(variant, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(tsvLine(variant, i))
	}
	return b.String()
}

// checkRange asserts that evs are exactly the events from … to-1, in order.
func checkRange(t *testing.T, evs []stackprint.Event, from, to int) {
	t.Helper()
	if len(evs) != to-from {
		t.Fatalf("%d events, want %d (%d…%d): %v", len(evs), to-from, from, to-1, uids(evs))
	}
	for i, ev := range evs {
		if want := fmt.Sprintf("C%07d", from+i); ev.UID != want {
			t.Fatalf("event %d is %s, want %s: %v", i, ev.UID, want, uids(evs))
		}
	}
}

// checkSet asserts that evs hold each of from … to-1 exactly once.
func checkSet(t *testing.T, evs []stackprint.Event, from, to int) {
	t.Helper()
	seen := map[string]int{}
	for _, ev := range evs {
		seen[ev.UID]++
	}
	for i := from; i < to; i++ {
		if n := seen[fmt.Sprintf("C%07d", i)]; n != 1 {
			t.Errorf("C%07d seen %d times", i, n)
		}
	}
	if len(evs) != to-from {
		t.Errorf("%d events, want %d", len(evs), to-from)
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func gzipFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, buf.String())
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	_, ino := devIno(fi)
	return ino
}

// lastPos is the resume position after the last event.
func lastPos(t *testing.T, evs []stackprint.Event) Position {
	t.Helper()
	p, err := PositionOf(evs[len(evs)-1])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- P, J, S cases that need the follower ----

func TestP10_CloseEndsRotatedFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, tsvHeader(0)+tsvLines(0, 0, 5))
	c := newCollector()
	run(t, Input{Path: p, Format: FormatZeek}, Options{RotateWait: time.Hour}, c.handle)
	c.waitN(t, 5, 5*time.Second)
	appendTo(t, p, "#close\t2024-04-12-20-00-00\n")
	mustRename(t, p, p+".1")
	writeFile(t, p, tsvHeader(1)+tsvLines(1, 5, 8))
	// RotateWait is an hour: only #close lets the old file go.
	checkRange(t, c.waitN(t, 8, 5*time.Second), 0, 8)
}

func TestP11_NoCloseKeepsTailing(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "conn.log")
	raw := sampleBytes(t, "zeek-tsv-conn.brimdata-zed.no-close.log")
	writeFile(t, p, string(raw))
	c := newCollector()
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 2, 5*time.Second)
	// One more ssl connection under the sample's header (21 columns).
	appendTo(t, p, strings.Join([]string{"1521911721.000000", "CNEW", "10.0.0.1", "5", "10.0.0.2", "443", "tcp", "ssl", "1.0", "1", "1", "SF", "-", "-", "0", "ShADadFf", "1", "1", "1", "1", "-"}, "\t")+"\n")
	evs := c.waitN(t, 3, 5*time.Second)
	if evs[2].UID != "CNEW" || tl.Stats().ParseErrors != 0 {
		t.Errorf("%+v %+v", evs[2], tl.Stats())
	}
}

func TestJ08_FormatChangesAtRotation(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, tsvHeader(0)+tsvLines(0, 0, 3)+"#close\t2024-04-12-20-00-00\n")
	c := newCollector()
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 3, 5*time.Second)
	mustRename(t, p, p+".1")
	writeFile(t, p, lines(3, 6)) // Zeek restarted with JSON logs
	checkRange(t, c.waitN(t, 6, 5*time.Second), 0, 6)
	if st := tl.Stats(); st.ParseErrors != 0 {
		t.Errorf("%+v", st)
	}
}

func TestS09_ThreadedEve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := 1; i <= 3; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("eve.%d.json", i)), lines(i*100, i*100+2))
	}
	c := newCollector()
	run(t, Input{Path: filepath.Join(dir, "eve.*.json"), Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 6, 5*time.Second)
	for i := 1; i <= 3; i++ {
		appendTo(t, filepath.Join(dir, fmt.Sprintf("eve.%d.json", i)), lines(i*100+2, i*100+4))
	}
	evs := c.waitN(t, 12, 5*time.Second)
	c.quiet(t, 12, 100*time.Millisecond)
	var want []stackprint.Event
	for _, ev := range evs {
		if ev.UID >= "C0000100" && ev.UID < "C0000104" || ev.UID >= "C0000200" && ev.UID < "C0000204" || ev.UID >= "C0000300" && ev.UID < "C0000304" {
			want = append(want, ev)
		}
	}
	if len(want) != 12 {
		t.Errorf("events %v", uids(evs))
	}
	files := map[string]bool{}
	for _, ev := range evs {
		files[ev.File] = true
	}
	if len(files) != 3 {
		t.Errorf("Event.File of a glob input is the matched file: %v", files)
	}
}

// ---- R: rotation ----

func TestR02_LazyCreation(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, lines(0, 5))
	c := newCollector()
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 5, 5*time.Second)
	mustRename(t, p, filepath.Join(filepath.Dir(p), "ssl.2024-04-12-19-29-12.log"))
	time.Sleep(400 * time.Millisecond) // well past RotateWait: the old file is finished
	writeFile(t, p, lines(5, 10))
	checkRange(t, c.waitN(t, 10, 5*time.Second), 0, 10)
	if st := tl.Stats(); st.Rotations != 1 || st.ParseErrors != 0 || st.CatchUpFiles != 0 {
		t.Errorf("%+v", st)
	}
}

func TestR03_RenameGzipDeleteQuickly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "conn.log")
	const n = 3000 // more than the read buffer holds
	writeFile(t, p, lines(0, n))
	g := newGated(1)
	run(t, Input{Path: p, Format: FormatZeek}, Options{}, g.handle)
	<-g.blocked // the tailer has the file open and is stuck in the sink
	rotated := filepath.Join(dir, "conn.2024-04-12-19-29-12.log")
	mustRename(t, p, rotated)
	gzipFile(t, rotated, filepath.Join(dir, "logs", "2024-04-12", "conn.19:29:12-20:00:00.log.gz"))
	if err := os.Remove(rotated); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, lines(n, n+10))
	g.open()
	checkRange(t, g.waitN(t, n+10, 10*time.Second), 0, n+10)
}

func TestR04_InodeReuse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "ssl.log")
	writeFile(t, p, lines(0, 10))
	c := newCollector()
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 10, 5*time.Second)
	old := inode(t, p)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // the deleted file is released (F10), freeing the inode
	reused := false
	for i := 0; i < 50 && !reused; i++ {
		tmp := filepath.Join(dir, fmt.Sprintf("tmp%d", i))
		writeFile(t, tmp, "")
		if inode(t, tmp) == old {
			mustRename(t, tmp, p)
			reused = true
		}
	}
	if !reused {
		t.Log("the file system did not reuse the inode; the new file has another one")
		writeFile(t, p, "")
	}
	appendTo(t, p, lines(10, 13)) // shorter than the old file: no resume at the old offset
	checkRange(t, c.waitN(t, 13, 5*time.Second), 0, 13)
	c.quiet(t, 13, 100*time.Millisecond)
	if st := tl.Stats(); st.ParseErrors != 0 {
		t.Errorf("%+v", st)
	}

	// The same through Resume: a position with the new file's device and
	// inode but the old fingerprint is not resumed.
	pos := lastPos(t, c.events()[:10])
	fi, _ := os.Stat(p)
	pos.Dev, pos.Ino = devIno(fi)
	c2 := newCollector()
	tl2 := run(t, Input{Path: p, Format: FormatZeek}, Options{Resume: []Position{pos}}, c2.handle)
	checkRange(t, c2.waitN(t, 3, 5*time.Second), 10, 13)
	if st := tl2.Stats(); st.ResumeFallbacks != 1 {
		t.Errorf("%+v", st)
	}
}

func TestR05_TruncateAndRegrowPastOffset(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, tsvHeader(0)+tsvLines(0, 0, 5))
	c := newCollector()
	// Polling only, slowly: the file is truncated and regrown between looks.
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{PollInterval: 300 * time.Millisecond, Watcher: newPollingWatcher(testLogger(t))}, c.handle)
	c.waitN(t, 5, 5*time.Second)
	// Zeek restarted: O_TRUNC, a new header, more bytes than were read.
	writeFile(t, p, tsvHeader(1)+tsvLines(1, 5, 20))
	checkRange(t, c.waitN(t, 20, 5*time.Second), 0, 20)
	if st := tl.Stats(); st.Truncations != 1 || st.ParseErrors != 0 {
		t.Errorf("%+v", st)
	}
}

func TestR06_CopyTruncate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "eve.json")
	const n = 3000
	writeFile(t, p, lines(0, n))
	g := newGated(1)
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{}, g.handle)
	<-g.blocked
	// logrotate copytruncate: copy, then truncate; the writer goes on.
	b, _ := os.ReadFile(p)
	writeFile(t, p+".1", string(b))
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, p, lines(n, n+20))
	g.open()
	checkRange(t, g.waitN(t, n+20, 10*time.Second), 0, n+20)
	// A later rotation does not read the copy again.
	mustRename(t, p, p+".2")
	writeFile(t, p, lines(n+20, n+25))
	checkRange(t, g.waitN(t, n+25, 5*time.Second), 0, n+25)
	g.quiet(t, n+25, 100*time.Millisecond)
	if st := tl.Stats(); st.Truncations != 1 || st.CatchUpFiles != 1 {
		t.Errorf("%+v", st)
	}
}

// TestR07_CopyTruncateNonAppendWriter: copytruncate, and a writer that
// keeps its offset, so its next write leaves a hole of NULs before it. The
// truncation and the write happen at two fixed points of the follower's
// loop (its test hook), so each interleaving is run every time instead of
// when the machine's load happens to produce it:
//   - "idle": while the tailer waits, before it checks the file;
//   - "between check and read": after the check of the first bytes passed
//     and before the read. The read then returns the new lines past the
//     old offset as if appended; they were delivered, and delivered again
//     after the restart (16 events, not 13).
func TestR07_CopyTruncateNonAppendWriter(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"idle", "between check and read"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "eve.json")
			writeFile(t, p, lines(0, 10))
			size := int64(len(lines(0, 10)))
			copytruncate := func() {
				f, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Close()
				if err := f.Truncate(0); err != nil {
					t.Error(err)
				}
				if _, err := f.WriteAt([]byte(lines(10, 13)), size); err != nil {
					t.Error(err)
				}
			}
			c := newCollector()
			tl, err := New(Input{Path: p, Format: FormatZeek}, Options{Logger: testLogger(t), RotateWait: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond}, c.handle)
			if err != nil {
				t.Fatal(err)
			}
			var armed atomic.Bool
			hooked := make(chan struct{})
			tl.testHook = func(where string) {
				if where == "before drain" && armed.CompareAndSwap(true, false) {
					copytruncate()
					close(hooked)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- tl.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			c.waitN(t, 10, 5*time.Second)
			if at == "idle" {
				copytruncate()
			} else {
				armed.Store(true)
				select {
				case <-hooked:
				case <-time.After(5 * time.Second):
					t.Fatal("the follower did not reach its read")
				}
			}
			checkRange(t, c.waitN(t, 13, 5*time.Second), 0, 13)
			c.quiet(t, 13, 200*time.Millisecond)
			if st := tl.Stats(); st.ParseErrors != 0 || st.LongLines != 0 || st.NULBytes != uint64(size) || st.Truncations != 1 {
				t.Errorf("%+v (want %d NUL bytes, 1 truncation)", st, size)
			}
		})
	}
}

func TestR08_SighupCreate(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "eve.json")
	writeFile(t, p, lines(0, 5))
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := newCollector()
	run(t, Input{Path: p, Format: FormatZeek}, Options{RotateWait: 300 * time.Millisecond}, c.handle)
	c.waitN(t, 5, 5*time.Second)
	mustRename(t, p, p+".1") // logrotate; Suricata has not reopened yet
	w.WriteString(lines(5, 8))
	writeFile(t, p, "") // logrotate create
	w.WriteString(lines(8, 10))
	time.Sleep(50 * time.Millisecond)
	w.WriteString(lines(10, 11))  // still flushing to the old file
	appendTo(t, p, lines(11, 15)) // SIGHUP handled: the new file
	checkRange(t, c.waitN(t, 15, 5*time.Second), 0, 15)
}

func TestR09_TimeNamedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f1 := filepath.Join(dir, "eve-2024-01-01-10:00.json")
	f2 := filepath.Join(dir, "eve-2024-01-01-10:01.json")
	writeFile(t, f1, lines(0, 5))
	c := newCollector()
	run(t, Input{Path: filepath.Join(dir, "eve-*.json"), Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 5, 5*time.Second)
	writeFile(t, f2, lines(5, 10)) // no rename: a new name
	c.waitN(t, 10, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // f1 quiet: its fd is released
	appendTo(t, f1, lines(10, 11))     // a late line to the old file is still read
	appendTo(t, f2, lines(11, 13))
	evs := c.waitN(t, 13, 5*time.Second)
	c.quiet(t, 13, 100*time.Millisecond)
	checkSet(t, evs, 0, 13)
	// The old file is closed again, then expired by the sensor.
	time.Sleep(300 * time.Millisecond)
	os.Remove(f1)
	time.Sleep(100 * time.Millisecond)
	appendTo(t, f2, lines(13, 14))
	checkSet(t, c.waitN(t, 14, 5*time.Second), 0, 14)
	if fds := fdsUnder(t, dir); len(fds) != 1 || fds[0] != f2 {
		t.Errorf("open files %v", fds)
	}
}

func TestR10_NumericShiftChain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := func(i int) string {
		if i == 0 {
			return filepath.Join(dir, "json_streaming_conn.log")
		}
		return filepath.Join(dir, fmt.Sprintf("json_streaming_conn.%d.log", i))
	}
	writeFile(t, name(0), lines(0, 10))
	c := newCollector()
	run(t, Input{Path: filepath.Join(dir, "json_streaming_conn*.log"), Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 10, 5*time.Second)
	for gen := 1; gen <= 3; gen++ {
		for i := 3; i >= 0; i-- {
			if _, err := os.Stat(name(i)); err == nil {
				mustRename(t, name(i), name(i+1))
			}
		}
		writeFile(t, name(0), lines(gen*10, gen*10+10))
		c.waitN(t, gen*10+10, 5*time.Second)
	}
	c.quiet(t, 40, 300*time.Millisecond)
	checkSet(t, c.events(), 0, 40)
}

func TestR11_TwoRotationsBetweenReads(t *testing.T) {
	t.Parallel()
	for _, archived := range []bool{false, true} {
		t.Run(fmt.Sprintf("middle-archived=%v", archived), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, "ssl.log")
			writeFile(t, p, lines(0, 10))
			g := newGated(1)
			in := Input{Path: p, Format: FormatZeek, Archives: []string{filepath.Join(dir, "logs", "*", "ssl.*.log.gz")}}
			tl := run(t, in, Options{}, g.handle)
			<-g.blocked
			mustRename(t, p, filepath.Join(dir, "ssl.2024-04-12-19-00-00.log"))
			writeFile(t, p, lines(10, 20))
			gen2 := filepath.Join(dir, "ssl.2024-04-12-20-00-00.log")
			mustRename(t, p, gen2)
			if archived {
				gzipFile(t, gen2, filepath.Join(dir, "logs", "2024-04-12", "ssl.20:00:00-21:00:00.log.gz"))
				os.Remove(gen2)
			}
			writeFile(t, p, lines(20, 30))
			g.open()
			checkRange(t, g.waitN(t, 30, 5*time.Second), 0, 30)
			g.quiet(t, 30, 100*time.Millisecond)
			if st := tl.Stats(); st.CatchUpFiles != 1 {
				t.Errorf("%+v", st)
			}
		})
	}
}

func TestR12_ZeekctlStopStart(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	spool := filepath.Join(base, "spool", "zeek")
	os.MkdirAll(spool, 0o755)
	os.MkdirAll(filepath.Join(base, "logs"), 0o755)
	if err := os.Symlink("../spool/zeek", filepath.Join(base, "logs", "current")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(spool, "ssl.log"), tsvHeader(0)+tsvLines(0, 0, 5))
	c := newCollector()
	run(t, Input{Path: filepath.Join(base, "logs", "current", "ssl.log"), Format: FormatZeek}, Options{RotateWait: time.Hour}, c.handle)
	c.waitN(t, 5, 5*time.Second)
	appendTo(t, filepath.Join(spool, "ssl.log"), tsvLines(0, 5, 7)+"#close\t2024-04-12-20-00-00\n") // zeekctl stop
	os.MkdirAll(filepath.Join(base, "spool", "tmp"), 0o755)
	mustRename(t, spool, filepath.Join(base, "spool", "tmp", "post-terminate-standalone-2024-04-12-20-00-00-1234"))
	os.Mkdir(spool, 0o755)
	time.Sleep(50 * time.Millisecond)
	writeFile(t, filepath.Join(spool, "ssl.log"), tsvHeader(1)+tsvLines(1, 7, 10)) // zeekctl start
	checkRange(t, c.waitN(t, 10, 5*time.Second), 0, 10)
}

func TestR13_MultipleLoggers(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	w := NewDirWatcher(testLogger(t))
	defer w.Close()
	c := newCollector()
	for i := 1; i <= 2; i++ {
		dir := filepath.Join(base, "spool", fmt.Sprintf("logger-%d", i))
		os.MkdirAll(dir, 0o755)
		writeFile(t, filepath.Join(dir, "ssl.log"), lines(i*100, i*100+3))
		run(t, Input{Name: fmt.Sprintf("logger-%d", i), Path: filepath.Join(dir, "ssl.log"), Format: FormatZeek}, Options{Watcher: w}, c.handle)
	}
	c.waitN(t, 6, 5*time.Second)
	w.mu.Lock()
	watched := len(w.dirs)
	w.mu.Unlock()
	if watched != 2 {
		t.Errorf("%d directories watched by the shared watcher, want 2", watched)
	}
}

func TestR14_GzipInFlight(t *testing.T) {
	t.Parallel()
	if _, err := New(Input{Path: "/spool/conn.log.gz", Format: FormatZeek}, Options{}, newCollector().handle); err == nil || !strings.Contains(err.Error(), "compressed") {
		t.Errorf("New(conn.log.gz) = %v", err)
	}
	p := filepath.Join(t.TempDir(), "conn.log")
	gzipFile(t, samplePath(t, "zeek-tsv-ssl.brim-wrccdc2018.head200.log"), p) // gzip content, plain name
	var logs bytes.Buffer
	var mu sync.Mutex
	c := newCollector()
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))}, c.handle)
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if st := tl.Stats(); st.Lines != 0 || !strings.Contains(out, "gzip-compressed") {
		t.Errorf("%+v; logs %s", st, out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestR15_LeftoverShadowFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "ssl.log")
	writeFile(t, filepath.Join(dir, ".shadow.ssl.log"), "leftover\n")
	writeFile(t, filepath.Join(dir, "ssl.2024-04-12-18-00-00.log"), lines(900, 905)) // an old generation
	writeFile(t, p, lines(0, 5))
	c := newCollector()
	run(t, Input{Path: p, Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 5, 5*time.Second)
	mustRename(t, p, filepath.Join(dir, "ssl.2024-04-12-19-00-00.log")) // leftover rotation at startup
	writeFile(t, p, lines(5, 8))
	checkRange(t, c.waitN(t, 8, 5*time.Second), 0, 8)
	c.quiet(t, 8, 100*time.Millisecond)
	if isRotatedName("ssl.log", ".shadow.ssl.log") || !isRotatedName("ssl.log", "ssl.2024-04-12-19-00-00.log") {
		t.Error("isRotatedName")
	}
}

// ---- C: checkpoint and restart ----

// session runs a tailer until want events arrived, then stops it.
func session(t *testing.T, in Input, opts Options, want int) ([]stackprint.Event, Stats) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	opts.PollInterval, opts.RotateWait = 20*time.Millisecond, 100*time.Millisecond
	c := newCollector()
	tl, err := New(in, opts, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx) }()
	c.waitN(t, want, 5*time.Second)
	c.quiet(t, want, 100*time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return c.events(), tl.Stats()
}

func TestC01_GracefulRestart(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"tsv", "json"} {
		t.Run(format, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "ssl.log")
			first, more := lines(0, 10), lines(10, 15)
			if format == "tsv" {
				first, more = tsvHeader(1)+tsvLines(1, 0, 10), tsvLines(1, 10, 15)
			}
			writeFile(t, p, first)
			evs, _ := session(t, Input{Path: p, Format: FormatZeek}, Options{}, 10)
			pos := lastPos(t, evs)
			appendTo(t, p, more)
			evs, st := session(t, Input{Path: p, Format: FormatZeek}, Options{Resume: []Position{pos}}, 5)
			checkRange(t, evs, 10, 15)
			if st.ResumeFallbacks != 0 || st.ParseErrors != 0 {
				t.Errorf("%+v", st)
			}
		})
	}
}

// C2 and C3 are about when the daemon commits (tested in cmd/stackprint
// crash test); here: resuming from an older committed position replays
// exactly the lines after it, the same events again.
func TestC02_C03_ReplayFromOlderPosition(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, tsvHeader(0)+tsvLines(0, 0, 10))
	evs, _ := session(t, Input{Path: p, Format: FormatZeek}, Options{}, 10)
	pos, _ := PositionOf(evs[5]) // committed after event 5; 6…9 were in flight
	again, _ := session(t, Input{Path: p, Format: FormatZeek}, Options{Resume: []Position{pos}}, 4)
	checkRange(t, again, 6, 10)
	for i, ev := range again {
		if o := evs[6+i]; ev.UID != o.UID || ev.Offset != o.Offset || ev.Ident != o.Ident || ev.Target() != o.Target() {
			t.Errorf("replayed %+v, first %+v", ev, o)
		}
	}
}

func TestC04_CorruptCheckpoint(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, tsvHeader(0)+tsvLines(0, 0, 5))
	evs, _ := session(t, Input{Path: p, Format: FormatZeek}, Options{}, 5)
	good := lastPos(t, evs)
	mid := good
	mid.Offset -= 3 // not a line boundary
	for name, pos := range map[string]Position{
		"zero":            {},
		"garbage fp":      {Path: p, Fingerprint: strings.Repeat("zz", 32), FPLen: 10, Offset: 50},
		"fplen past size": {Path: p, Fingerprint: good.Fingerprint, FPLen: 4096, Offset: 10},
		"fplen negative":  {Path: p, Fingerprint: good.Fingerprint, FPLen: -1, Offset: 10},
		"offset negative": {Path: p, Fingerprint: good.Fingerprint, FPLen: good.FPLen, Offset: -5},
		"offset past end": {Path: p, Fingerprint: good.Fingerprint, FPLen: good.FPLen, Offset: good.Offset + 1000},
		"mid line":        mid,
	} {
		t.Run(name, func(t *testing.T) {
			evs, st := session(t, Input{Path: p, Format: FormatZeek}, Options{Resume: []Position{pos}}, 5)
			checkRange(t, evs, 0, 5)
			if st.ResumeFallbacks != 1 || st.ParseErrors != 0 {
				t.Errorf("%+v", st)
			}
		})
	}
	if _, err := PositionOf(stackprint.Event{Ident: "v1:1:2:x"}); err == nil {
		t.Error("PositionOf accepted a broken ident")
	}
}

// archiveGen renames the path away, archives it as zeekctl does (gzip into
// logs/DATE, delete), with the given modification time.
func archiveGen(t *testing.T, dir, p, name string, mod time.Time) {
	t.Helper()
	rotated := filepath.Join(dir, "ssl.rotating.2024.log")
	mustRename(t, p, rotated)
	gz := filepath.Join(dir, "logs", "2024-04-12", name)
	gzipFile(t, rotated, gz)
	os.Remove(rotated)
	if err := os.Chtimes(gz, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func TestC05_C06_RotatedWhileDown(t *testing.T) {
	t.Parallel()
	for _, gens := range []int{1, 3} {
		t.Run(fmt.Sprintf("rotations=%d", gens), func(t *testing.T) {
			dir := t.TempDir()
			spool := filepath.Join(dir, "spool")
			os.Mkdir(spool, 0o755)
			p := filepath.Join(spool, "ssl.log")
			in := Input{Path: p, Format: FormatZeek, Archives: []string{filepath.Join(dir, "logs", "*", "ssl.*.log.gz")}}
			writeFile(t, p, tsvHeader(0)+tsvLines(0, 0, 10))
			evs, _ := session(t, in, Options{}, 10)
			pos, _ := PositionOf(evs[4]) // the daemon had committed 5 lines
			// Down: the generation is finished, archived, and more follow.
			appendTo(t, p, tsvLines(0, 10, 12)+"#close\t2024-04-12-20-00-00\n")
			next := 12
			base := time.Now().Add(-time.Hour)
			archiveGen(t, dir, p, "ssl.19:00:00-20:00:00.log.gz", base)
			for g := 1; g < gens; g++ {
				writeFile(t, p, tsvHeader(g)+tsvLines(g, next, next+3)+"#close\t2024-04-12-21-00-00\n")
				next += 3
				archiveGen(t, dir, p, fmt.Sprintf("ssl.%02d:00:00-%02d:00:00.log.gz", 19+g, 20+g), base.Add(time.Duration(g)*time.Minute))
			}
			writeFile(t, p, tsvHeader(gens)+tsvLines(gens, next, next+4))
			next += 4
			evs, st := session(t, in, Options{Resume: []Position{pos}}, next-5)
			checkRange(t, evs, 5, next)
			if st.CatchUpFiles != uint64(gens) || st.ResumeFallbacks != 0 || st.ParseErrors != 0 {
				t.Errorf("%+v", st)
			}
			if pa, _ := PositionOf(evs[0]); !pa.Archive || pa.Offset != evs[0].Offset {
				t.Errorf("a line from the archive: %+v", pa)
			}
			if pz, _ := PositionOf(evs[len(evs)-1]); pz.Archive {
				t.Errorf("a line from the live file: %+v", pz)
			}
		})
	}
}

func TestC07_TruncatedAndRegrownWhileDown(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, lines(0, 3))
	evs, _ := session(t, Input{Path: p, Format: FormatZeek}, Options{}, 3)
	pos := lastPos(t, evs)
	writeFile(t, p, lines(3, 6)) // same size class, other content
	if fi, _ := os.Stat(p); fi.Size() < pos.Offset {
		t.Fatalf("regrown file (%d) should reach the old offset (%d)", fi.Size(), pos.Offset)
	}
	evs, st := session(t, Input{Path: p, Format: FormatZeek}, Options{Resume: []Position{pos}}, 3)
	checkRange(t, evs, 3, 6)
	if st.ResumeFallbacks != 1 {
		t.Errorf("%+v", st)
	}
}

func TestC08_TransientDisappearance(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "mnt")
	os.Mkdir(dir, 0o755)
	p := filepath.Join(dir, "ssl.log")
	writeFile(t, p, lines(0, 10))
	c := newCollector()
	run(t, Input{Path: p, Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 10, 5*time.Second)
	mustRename(t, dir, filepath.Join(base, "away")) // the share went away
	time.Sleep(400 * time.Millisecond)              // longer than RotateWait: the file is let go
	mustRename(t, filepath.Join(base, "away"), dir)
	appendTo(t, p, lines(10, 12))
	checkRange(t, c.waitN(t, 12, 5*time.Second), 0, 12)
	c.quiet(t, 12, 200*time.Millisecond)
}

func TestC10_StateKeyStability(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	spool := filepath.Join(base, "spool")
	os.Mkdir(spool, 0o755)
	os.Symlink("spool", filepath.Join(base, "current"))
	writeFile(t, filepath.Join(spool, "ssl.log"), lines(0, 5))
	evs, _ := session(t, Input{Path: filepath.Join(spool, "ssl.log"), Format: FormatZeek}, Options{}, 5)
	pos := lastPos(t, evs)
	appendTo(t, filepath.Join(spool, "ssl.log"), lines(5, 7))
	// The configuration now names the file through the symlink.
	evs, st := session(t, Input{Path: filepath.Join(base, "current", "ssl.log"), Format: FormatZeek}, Options{Resume: []Position{pos}}, 2)
	checkRange(t, evs, 5, 7)
	if st.ResumeFallbacks != 0 {
		t.Errorf("%+v", st)
	}
}

func TestC11_StateBounded(t *testing.T) {
	t.Parallel()
	f := &follower{known: map[devInoKey]*knownFile{}, now: time.Now}
	for i := 0; i < 3*maxKnown; i++ {
		f.remember(&openFile{dev: 1, ino: uint64(i), fp: newFingerprint([]byte(fmt.Sprintf("line %d\n", i))), lr: &lineReader{}})
	}
	if len(f.known) > maxKnown {
		t.Errorf("%d files remembered, bound %d", len(f.known), maxKnown)
	}
}

// ---- F: file system events ----

func TestF01_AtomicReplace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "ssl.log")
	writeFile(t, p, lines(0, 3))
	c := newCollector()
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 3, 5*time.Second)
	writeFile(t, filepath.Join(dir, "tmp"), lines(3, 6))
	mustRename(t, filepath.Join(dir, "tmp"), p)
	checkRange(t, c.waitN(t, 6, 5*time.Second), 0, 6)
	if st := tl.Stats(); st.Rotations != 1 {
		t.Errorf("%+v", st)
	}
}

func TestF02_EventCoalescing(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, "")
	var mu sync.Mutex
	n := 0
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{}, func(context.Context, stackprint.Event) error {
		mu.Lock()
		n++
		mu.Unlock()
		return nil
	})
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	const total = 100_000
	line := `{"_path":"ssl","ts":1.5,"id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":443}` + "\n"
	batch := strings.Repeat(line, 100)
	for i := 0; i < total/100; i++ {
		f.WriteString(batch)
	}
	f.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := n
		mu.Unlock()
		if got == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d lines", got, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := tl.Stats(); st.Lines != total {
		t.Errorf("%+v", st)
	}
}

func TestF03_EventOverflowRescan(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, lines(0, 1))
	w := newPollingWatcher(testLogger(t))
	w.add = func(string) error { return nil } // "watched", but no event will ever come
	c := newCollector()
	run(t, Input{Path: p, Format: FormatZeek}, Options{Watcher: w, PollInterval: time.Hour}, c.handle)
	c.waitN(t, 1, 5*time.Second)
	appendTo(t, p, lines(1, 5))
	// The write events were lost. The tailer may still have been reading
	// its file when the lines landed (a loaded machine), so only a tailer
	// that has gone idle proves the point; either way the overflow must
	// bring every line.
	time.Sleep(100 * time.Millisecond)
	if n := len(c.events()); n != 1 {
		t.Logf("lines arrived before the overflow (%d events): the tailer was still reading", n)
	}
	w.error(fsnotify.ErrEventOverflow)
	checkRange(t, c.waitN(t, 5, 5*time.Second), 0, 5)
}

func TestF04_InotifyLimitFallsBackToPolling(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, "")
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	w := newPollingWatcher(log)
	w.add = func(string) error { return fmt.Errorf("inotify_add_watch: %w", syscall.ENOSPC) }
	c := newCollector()
	run(t, Input{Path: p, Format: FormatZeek}, Options{Watcher: w, Logger: log}, c.handle)
	appendTo(t, p, lines(0, 3))
	checkRange(t, c.waitN(t, 3, 5*time.Second), 0, 3)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "polling") || !strings.Contains(logs.String(), "no space left on device") {
		t.Errorf("no polling warning: %s", logs.String())
	}
}

func TestF05_RemoveHiddenByOpenFD(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, lines(0, 3))
	w, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	defer w.Close()
	c := newCollector()
	run(t, Input{Path: p, Format: FormatZeek}, Options{RotateWait: 300 * time.Millisecond}, c.handle)
	c.waitN(t, 3, 5*time.Second)
	os.Remove(p)                 // inotify says Chmod (our fd keeps the inode)
	w.WriteString(lines(3, 5))   // the writer still appends to the deleted file
	writeFile(t, p, lines(5, 7)) // a new file
	checkRange(t, c.waitN(t, 7, 5*time.Second), 0, 7)
}

func TestF06_NoEventsAndRemount(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, lines(0, 3))
	w := newPollingWatcher(testLogger(t)) // NFS: no events at all
	c := newCollector()
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{Watcher: w, PollInterval: 50 * time.Millisecond}, c.handle)
	c.waitN(t, 3, 5*time.Second)
	t0 := time.Now()
	appendTo(t, p, lines(3, 4))
	c.waitN(t, 4, 5*time.Second)
	if d := time.Since(t0); d > time.Second {
		t.Errorf("polling took %v", d)
	}
	_ = tl
	// After a remount the device id differs: the fingerprint decides.
	pos := lastPos(t, c.events())
	pos.Dev += 1000
	appendTo(t, p, lines(4, 6))
	evs, st := session(t, Input{Path: p, Format: FormatZeek}, Options{Resume: []Position{pos}}, 2)
	checkRange(t, evs, 4, 6)
	if st.ResumeFallbacks != 0 {
		t.Errorf("%+v", st)
	}
}

func TestF08_CurrentSymlinkRetargeted(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	a, b := filepath.Join(base, "spool-a"), filepath.Join(base, "spool-b")
	os.Mkdir(a, 0o755)
	os.Mkdir(b, 0o755)
	cur := filepath.Join(base, "current")
	os.Symlink("spool-a", cur)
	writeFile(t, filepath.Join(a, "ssl.log"), lines(0, 3))
	c := newCollector()
	run(t, Input{Path: filepath.Join(cur, "ssl.log"), Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 3, 5*time.Second)
	writeFile(t, filepath.Join(b, "ssl.log"), lines(5, 8))
	os.Symlink("spool-b", cur+".tmp")
	mustRename(t, cur+".tmp", cur)                        // atomic retarget
	appendTo(t, filepath.Join(a, "ssl.log"), lines(3, 5)) // the old target is drained
	checkRange(t, c.waitN(t, 8, 5*time.Second), 0, 8)
	appendTo(t, filepath.Join(b, "ssl.log"), lines(8, 9)) // the new directory is the one watched
	checkRange(t, c.waitN(t, 9, 5*time.Second), 0, 9)
}

// fdsUnder lists this process's open files under dir.
func fdsUnder(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(l, dir) {
			out = append(out, l)
		}
	}
	return out
}

func TestF09_NoiseInTheDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := 0; i < 40; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("log%02d.log", i)), lines(1000+i, 1001+i))
	}
	p := filepath.Join(dir, "ssl.log")
	writeFile(t, p, lines(0, 2))
	c := newCollector()
	run(t, Input{Path: p, Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 2, 5*time.Second)
	for i := 0; i < 40; i++ {
		appendTo(t, filepath.Join(dir, fmt.Sprintf("log%02d.log", i)), lines(2000+i, 2001+i))
	}
	appendTo(t, p, lines(2, 3))
	checkRange(t, c.waitN(t, 3, 5*time.Second), 0, 3)
	c.quiet(t, 3, 100*time.Millisecond)
	if fds := fdsUnder(t, dir); len(fds) != 1 || fds[0] != p {
		t.Errorf("open files under the directory: %v", fds)
	}
}

func TestF10_DeletedFileReleased(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "ssl.log")
	writeFile(t, p, lines(0, 3))
	c := newCollector()
	run(t, Input{Path: p, Format: FormatZeek}, Options{}, c.handle)
	c.waitN(t, 3, 5*time.Second)
	if len(fdsUnder(t, dir)) != 1 {
		t.Fatalf("fds %v", fdsUnder(t, dir))
	}
	os.Remove(p)
	deadline := time.Now().Add(5 * time.Second)
	for len(fdsUnder(t, dir)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("deleted file still open: %v", fdsUnder(t, dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestF11_Backpressure(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ssl.log")
	writeFile(t, p, lines(0, 10))
	g := newGated(3)
	tl := run(t, Input{Path: p, Format: FormatZeek}, Options{}, g.handle)
	<-g.blocked
	time.Sleep(100 * time.Millisecond)
	if st := tl.Stats(); st.Lines != 4 {
		t.Errorf("lines processed while the sink is stuck: %+v", st)
	}
	g.open()
	checkRange(t, g.waitN(t, 10, 5*time.Second), 0, 10)

	// A failing sink stops the tailer at the failing line: nothing after
	// it is handed on, so no later position exists to commit.
	boom := errors.New("disk full")
	var got []stackprint.Event
	tl2, _ := New(Input{Path: p, Format: FormatZeek}, Options{}, func(_ context.Context, ev stackprint.Event) error {
		if len(got) == 4 {
			return boom
		}
		got = append(got, ev)
		return nil
	})
	if err := tl2.Run(context.Background()); !errors.Is(err, boom) || len(got) != 4 {
		t.Errorf("Run = %v after %d events", err, len(got))
	}
}

// Progress reports positions past lines that are not events, so that a
// restart does not read a long run of skipped lines again.
func TestProgressAfterSkippedLines(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "conn.log")
	hdr := "#separator \\x09\n#path\tconn\n#open\t2024-04-12-19-29-12\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tconn_state\n"
	row := func(uid, svc string) string {
		return tsv("1.5", uid, "10.0.0.1", "1", "10.0.0.2", "443", "tcp", svc, "SF") + "\n"
	}
	content := hdr + row("C1", "ssl")
	for i := 0; i < 50; i++ {
		content += row(fmt.Sprintf("D%d", i), "dns")
	}
	writeFile(t, p, content)
	var mu sync.Mutex
	var last Position
	progress := func(pos Position) {
		mu.Lock()
		last = pos
		mu.Unlock()
	}
	evs, _ := session(t, Input{Path: p, Format: FormatZeek}, Options{Progress: progress}, 1)
	mu.Lock()
	pos := last
	mu.Unlock()
	if pos.Offset != int64(len(content)) || pos.Path != p || pos.Fingerprint == "" {
		t.Fatalf("progress %+v, want the end %d", pos, len(content))
	}
	if ep := lastPos(t, evs); ep.Offset >= pos.Offset || ep.Fingerprint != pos.Fingerprint {
		t.Errorf("event position %+v vs progress %+v", ep, pos)
	}
	appendTo(t, p, row("C2", "ssl"))
	evs, st := session(t, Input{Path: p, Format: FormatZeek}, Options{Resume: []Position{pos}}, 1)
	if evs[0].UID != "C2" || st.Lines != 1 || st.ResumeFallbacks != 0 {
		t.Errorf("after resume: %v %+v", uids(evs), st)
	}
}

// A glob input resumes each file from its own position.
func TestGlobResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "eve.1.json"), filepath.Join(dir, "eve.2.json")
	writeFile(t, a, lines(0, 3))
	writeFile(t, b, lines(100, 103))
	in := Input{Path: filepath.Join(dir, "eve.*.json"), Format: FormatZeek}
	evs, _ := session(t, in, Options{}, 6)
	var pos []Position
	for _, f := range []string{a, b} {
		var mine []stackprint.Event
		for _, ev := range evs {
			if ev.File == f {
				mine = append(mine, ev)
			}
		}
		pos = append(pos, lastPos(t, mine))
	}
	appendTo(t, a, lines(3, 4))
	appendTo(t, b, lines(103, 105))
	evs, st := session(t, in, Options{Resume: pos}, 3)
	checkSet(t, evs[:1], 3, 4)
	var rest []stackprint.Event
	for _, ev := range evs {
		if ev.File == b {
			rest = append(rest, ev)
		}
	}
	checkRange(t, rest, 103, 105)
	if st.ResumeFallbacks != 0 {
		t.Errorf("%+v", st)
	}
}

// R11 with the newest file not created yet (Zeek creates it on the next
// write): the middle generation is read without waiting for it.
func TestR11_MiddleGenerationBeforeNewFileExists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "ssl.log")
	writeFile(t, p, lines(0, 10))
	g := newGated(1)
	run(t, Input{Path: p, Format: FormatZeek}, Options{}, g.handle)
	<-g.blocked
	mustRename(t, p, filepath.Join(dir, "ssl.2024-04-12-19-00-00.log"))
	writeFile(t, p, lines(10, 20))
	mustRename(t, p, filepath.Join(dir, "ssl.2024-04-12-20-00-00.log"))
	g.open()
	checkRange(t, g.waitN(t, 20, 5*time.Second), 0, 20)
	writeFile(t, p, lines(20, 25))
	checkRange(t, g.waitN(t, 25, 5*time.Second), 0, 25)
	g.quiet(t, 25, 100*time.Millisecond)
}

// A short archived generation (a header only: no complete fingerprint) is
// read once, not again at every look.
func TestC05_ShortArchiveReadOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "ssl.log")
	writeFile(t, p, tsvHeader(0)+tsvLines(0, 0, 3))
	in := Input{Path: p, Format: FormatZeek, Archives: []string{filepath.Join(dir, "logs", "*", "*.gz")}}
	g := newGated(1)
	tl := run(t, in, Options{}, g.handle)
	<-g.blocked
	appendTo(t, p, "#close\t2024-04-12-20-00-00\n")
	mustRename(t, p, filepath.Join(dir, "gen1"))
	writeFile(t, p, tsvHeader(1)) // a quiet hour: header only
	mustRename(t, p, filepath.Join(dir, "gen2"))
	gzipFile(t, filepath.Join(dir, "gen2"), filepath.Join(dir, "logs", "2024-04-12", "ssl.20:00:00-21:00:00.log.gz"))
	os.Remove(filepath.Join(dir, "gen2"))
	writeFile(t, p, tsvHeader(0)+tsvLines(0, 3, 5))
	g.open()
	checkRange(t, g.waitN(t, 5, 5*time.Second), 0, 5)
	g.quiet(t, 5, 200*time.Millisecond)
	if st := tl.Stats(); st.CatchUpFiles != 1 {
		t.Errorf("%+v", st)
	}
}

// C2 and C6 before the first checkpoint: a daemon killed before it
// committed any position, the file rotated three times while it was down.
// Without a stored start position the next start is a first start, which
// takes the rotated generations as history and skips them (the loss seen
// in the daemon's SIGKILL test under load); with the position given to
// Options.Started it resumes at the start of the first generation and
// reads every generation, in order.
func TestC02_C06_KilledBeforeFirstCheckpoint(t *testing.T) {
	t.Parallel()
	for _, empty := range []bool{false, true} {
		t.Run(fmt.Sprintf("created-empty=%v", empty), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, "ssl.log")
			in := Input{Path: p, Format: FormatZeek}
			var mu sync.Mutex
			var starts []Position
			var order []string
			c := newCollector()
			h := func(ctx context.Context, ev stackprint.Event) error {
				mu.Lock()
				order = append(order, "event")
				mu.Unlock()
				return c.handle(ctx, ev)
			}
			opts := Options{Logger: testLogger(t), PollInterval: 20 * time.Millisecond, RotateWait: 100 * time.Millisecond,
				Started: func(pos Position) error {
					mu.Lock()
					defer mu.Unlock()
					starts = append(starts, pos)
					order = append(order, "started")
					return nil
				}}
			if empty {
				writeFile(t, p, "") // created lazily: no fingerprint when first opened
			} else {
				writeFile(t, p, tsvHeader(0)+tsvLines(0, 0, 5))
			}
			tl, err := New(in, opts, h)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- tl.Run(ctx) }()
			if empty {
				time.Sleep(100 * time.Millisecond) // opened while empty (either way the result must hold)
				appendTo(t, p, tsvHeader(0)+tsvLines(0, 0, 5))
			}
			checkRange(t, c.waitN(t, 5, 5*time.Second), 0, 5)
			cancel() // "killed": nothing but the start position was committed
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			if len(starts) != 1 || starts[0].Offset != 0 || starts[0].Path != p || starts[0].FPLen == 0 || order[0] != "started" {
				t.Fatalf("start positions %+v (order %v), want one at offset 0 of %s with a fingerprint, before the first event", starts, order, p)
			}
			mu.Unlock()
			// Down: more lines, then three rotations.
			appendTo(t, p, tsvLines(0, 5, 8))
			next := 8
			base := time.Now().Add(-time.Hour)
			for g := 1; g <= 3; g++ {
				rotated := fmt.Sprintf("%s.%d", p, g)
				mustRename(t, p, rotated)
				mod := base.Add(time.Duration(g) * time.Minute)
				if err := os.Chtimes(rotated, mod, mod); err != nil {
					t.Fatal(err)
				}
				writeFile(t, p, tsvHeader(g)+tsvLines(g, next, next+3))
				next += 3
			}
			evs, st := session(t, in, Options{Resume: starts}, next)
			checkRange(t, evs, 0, next)
			if st.CatchUpFiles != 3 || st.ResumeFallbacks != 0 || st.ParseErrors != 0 {
				t.Errorf("%+v", st)
			}
		})
	}
}

// C5 with the rotation between the check of the path's fingerprint and
// its open: the file opened is the new generation, not the position's;
// the position is then found in the rotated file and read from there,
// instead of the new file being read from 0 and the rest of the old one
// taken as history.
func TestC05_RotatedWhileResuming(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "ssl.log")
	in := Input{Path: p, Format: FormatZeek}
	writeFile(t, p, tsvHeader(0)+tsvLines(0, 0, 10))
	evs, _ := session(t, in, Options{}, 10)
	pos, _ := PositionOf(evs[4]) // committed 5 lines
	c := newCollector()
	tl, err := New(in, Options{Logger: testLogger(t), RotateWait: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		Resume: []Position{pos}}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	hooked := false
	tl.testHook = func(where string) {
		if where == "resume: path checked" && !hooked {
			hooked = true
			mustRename(t, p, p+".1")
			writeFile(t, p, tsvHeader(1)+tsvLines(1, 10, 13)+tsvLines(1, 13, 40)) // long enough to seek into
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx) }()
	got := c.waitN(t, 35, 5*time.Second)
	c.quiet(t, 35, 100*time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !hooked {
		t.Fatal("the rotation was not made while resuming")
	}
	checkRange(t, got, 5, 40)
}
