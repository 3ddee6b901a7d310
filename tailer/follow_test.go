package tailer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// collector is a Handler that records events and lets a test wait for them.
type collector struct {
	mu   sync.Mutex
	evs  []stackprint.Event
	wake chan struct{}
}

func newCollector() *collector { return &collector{wake: make(chan struct{}, 1)} }

func (c *collector) handle(_ context.Context, ev stackprint.Event) error {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) events() []stackprint.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]stackprint.Event(nil), c.evs...)
}

// waitN waits until at least n events arrived, failing after timeout.
func (c *collector) waitN(t *testing.T, n int, timeout time.Duration) []stackprint.Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if evs := c.events(); len(evs) >= n {
			return evs
		}
		select {
		case <-c.wake:
		case <-deadline.C:
			evs := c.events()
			t.Fatalf("got %d events after %v, want %d", len(evs), timeout, n)
			return nil
		}
	}
}

// quiet asserts that no more than n events arrive within d.
func (c *collector) quiet(t *testing.T, n int, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	if got := len(c.events()); got != n {
		t.Fatalf("got %d events, want exactly %d", got, n)
	}
}

type running struct {
	t    *Tailer
	c    *collector
	stop func() error
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func start(t *testing.T, in Input, opts Options, noWatch bool) *running {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.RotateWait == 0 {
		opts.RotateWait = 100 * time.Millisecond
	}
	c := newCollector()
	tl, err := New(in, opts, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	tl.noWatch = noWatch
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(5 * time.Second):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &running{t: tl, c: c, stop: stop}
}

// jsonLine is a Zeek JSON ssl record whose uid carries n.
func jsonLine(n int) string {
	return fmt.Sprintf(`{"_path":"ssl","ts":1521911720.%06d,"uid":"C%07d","id.orig_h":"10.0.0.1","id.orig_p":%d,"id.resp_h":"10.0.0.2","id.resp_p":443,"server_name":"h%d.example"}`+"\n", n%1000000, n, 1024+n%60000, n)
}

// tsvHeader is a Zeek TSV ssl header; variant changes the column order so
// that a parser that kept the previous file's header would fail.
func tsvHeader(variant int) string {
	cols := []string{"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "server_name"}
	if variant%2 == 1 {
		cols = []string{"uid", "server_name", "id.resp_p", "id.resp_h", "id.orig_p", "id.orig_h", "ts", "ja4s"}
	}
	return "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tssl\n" +
		"#open\t2024-04-12-19-29-12\n#fields\t" + strings.Join(cols, "\t") + "\n#types\t...\n"
}

func tsvLine(variant, n int) string {
	uid := fmt.Sprintf("C%07d", n)
	port := fmt.Sprint(1024 + n%60000)
	sni := fmt.Sprintf("h%d.example", n)
	if variant%2 == 1 {
		return strings.Join([]string{uid, sni, "443", "10.0.0.2", port, "10.0.0.1", "1521911720.000001", "(empty)"}, "\t") + "\n"
	}
	return strings.Join([]string{"1521911720.000001", uid, "10.0.0.1", port, "10.0.0.2", "443", sni}, "\t") + "\n"
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func uids(evs []stackprint.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.UID
	}
	return out
}

func checkSequence(t *testing.T, evs []stackprint.Event, n int) {
	t.Helper()
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if want := fmt.Sprintf("C%07d", i); ev.UID != want {
			t.Fatalf("event %d is %s, want %s (duplicate or loss); sequence around it: %v", i, ev.UID, want,
				uids(evs[max(0, i-3):min(len(evs), i+3)]))
		}
		if want := fmt.Sprintf("h%d.example", i); ev.SNI != want {
			t.Fatalf("event %d SNI %q, want %q", i, ev.SNI, want)
		}
	}
}

func TestFollowAppendWithinOneSecond(t *testing.T) {
	for _, noWatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("noWatch=%v", noWatch), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "ssl.log")
			appendTo(t, p, jsonLine(0))
			r := start(t, Input{Name: "zeek", Path: p, Format: FormatZeek}, Options{}, noWatch) // default 250ms poll
			r.c.waitN(t, 1, time.Second)
			for i := 1; i <= 3; i++ {
				t0 := time.Now()
				appendTo(t, p, jsonLine(i))
				r.c.waitN(t, i+1, time.Second)
				if d := time.Since(t0); d > time.Second {
					t.Errorf("line %d delivered after %v", i, d)
				}
			}
			evs := r.c.events()
			checkSequence(t, evs, 4)
			if evs[3].File != p || evs[3].Offset != int64(4*len(jsonLine(0))) || evs[3].Source != "zeek" {
				t.Errorf("last event position %s@%d source %q", evs[3].File, evs[3].Offset, evs[3].Source)
			}
			if st := r.t.Stats(); st.Events != 4 || st.Lines != 4 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// Rename+create rotation, several times while the writer keeps going: every
// line exactly once, in order. Some lines go to the old file after the
// rename and before the new file exists (Zeek creates it lazily), sometimes
// long enough for the tailer to see the path missing.
//
// Before renaming generation g the test waits until the tailer has opened
// it, except in the no-wait variants, where several rotations happen
// between two looks at the path (R11) and the catch-up scan of rotated
// siblings must find the generations in between.
func TestR01_RenameCreateWhileWriting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tsv     bool
		noWatch bool
		noWait  bool
	}{
		{"zeek-tsv", true, false, false},
		{"zeek-json", false, false, false},
		{"zeek-tsv-polling-only", true, true, false},
		{"zeek-tsv-no-wait", true, false, true},
		{"zeek-json-no-wait", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "ssl.log")
			const total, perFile = 1200, 200
			const poll = 20 * time.Millisecond
			gen := 0
			line := func(n int) string {
				if tc.tsv {
					return tsvLine(gen, n)
				}
				return jsonLine(n)
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if tc.tsv {
				f.WriteString(tsvHeader(gen))
			}
			r := start(t, Input{Name: "zeek", Path: p, Format: FormatZeek}, Options{PollInterval: poll}, tc.noWatch)
			// waitOpened waits until the tailer has the current generation open.
			waitOpened := func(rotations int) {
				deadline := time.Now().Add(5 * time.Second)
				for {
					st := r.t.Stats()
					if rotations == 0 && st.Lines > 0 || rotations > 0 && st.Rotations >= uint64(rotations) {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("tailer did not reach generation %d: %+v", rotations, st)
					}
					time.Sleep(time.Millisecond)
				}
			}
			write := func(n int) {
				if _, err := f.WriteString(line(n)); err != nil {
					t.Fatal(err)
				}
			}
			rotations := 0
			for n := 0; n < total; {
				if n > 0 && n%perFile == 0 {
					if !tc.noWait {
						waitOpened(rotations)
					}
					if err := os.Rename(p, filepath.Join(dir, fmt.Sprintf("ssl.%d.log", rotations))); err != nil {
						t.Fatal(err)
					}
					rotations++
					after := rotations % 3 * 5 // 0, 5 or 10 lines to the old file after the rename
					for k := 0; k < after; k++ {
						write(n)
						n++
					}
					if rotations%2 == 0 {
						time.Sleep(3 * poll) // the new file appears late
					}
					if tc.tsv {
						f.WriteString("#close\t2024-04-12-19-34-07\n")
					}
					f.Close()
					gen++
					if f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
						t.Fatal(err)
					}
					if tc.tsv {
						f.WriteString(tsvHeader(gen))
					}
				}
				write(n)
				n++
				if n%50 == 0 {
					time.Sleep(time.Millisecond) // let the tailer interleave
				}
			}
			f.Close()
			evs := r.c.waitN(t, total, 10*time.Second)
			r.c.quiet(t, total, 5*poll)
			checkSequence(t, evs, total)
			st := r.t.Stats()
			// A generation is either opened at the path (a rotation) or, when
			// it was renamed away before the tailer looked, read from its
			// rotated name (catch-up). On a loaded machine an old file can
			// also be let go after RotateWait before its last lines came;
			// the catch-up reads them from its rotated name.
			if st.Rotations+st.CatchUpFiles < uint64(rotations) || !tc.noWait && st.Rotations != uint64(rotations) || st.ParseErrors != 0 || st.Truncations != 0 {
				t.Errorf("stats %+v, want %d rotations and no errors", st, rotations)
			}
		})
	}
}

func TestR05_TruncateInPlaceSmaller(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssl.log")
	appendTo(t, p, tsvHeader(0))
	for i := 0; i < 20; i++ {
		appendTo(t, p, tsvLine(0, i))
	}
	r := start(t, Input{Path: p, Format: FormatZeek}, Options{PollInterval: 20 * time.Millisecond}, false)
	r.c.waitN(t, 20, time.Second)
	// Zeek restarted without rotation: O_TRUNC, a new header (another column
	// order), fewer bytes than were read.
	if err := os.WriteFile(p, []byte(tsvHeader(1)+tsvLine(1, 20)+tsvLine(1, 21)), 0o644); err != nil {
		t.Fatal(err)
	}
	evs := r.c.waitN(t, 22, time.Second)
	checkSequence(t, evs, 22)
	if evs[20].Offset != int64(len(tsvHeader(1)+tsvLine(1, 20))) {
		t.Errorf("offset after truncation %d", evs[20].Offset)
	}
	appendTo(t, p, tsvLine(1, 22))
	r.c.waitN(t, 23, time.Second)
	if st := r.t.Stats(); st.Truncations != 1 || st.ParseErrors != 0 || st.Rotations != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestFollowFileCreatedLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool") // not even the directory exists yet
	p := filepath.Join(dir, "eve.json")
	r := start(t, Input{Path: p, Format: FormatEve}, Options{PollInterval: 20 * time.Millisecond, FromEnd: true}, false)
	time.Sleep(60 * time.Millisecond)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	line := `{"timestamp":"2018-07-05T15:51:50.666597-0400","flow_id":%d,"event_type":"tls","src_ip":"10.0.0.1","src_port":5,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","tls":{"sni":"x.example"}}` + "\n"
	appendTo(t, p, `{"event_type":"stats"}`+"\n"+fmt.Sprintf(line, 1)) // FromEnd does not apply: the file is new
	evs := r.c.waitN(t, 1, time.Second)
	if evs[0].FlowID != 1 || evs[0].Kind != KindEveTLS {
		t.Errorf("event %+v", evs[0])
	}
	appendTo(t, p, fmt.Sprintf(line, 2))
	if evs = r.c.waitN(t, 2, time.Second); evs[1].FlowID != 2 {
		t.Errorf("event %+v", evs[1])
	}
	if st := r.t.Stats(); st.Skipped != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFollowPartialLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssl.log")
	appendTo(t, p, "")
	r := start(t, Input{Path: p, Format: FormatZeek}, Options{PollInterval: 10 * time.Millisecond}, false)
	l0, l1 := jsonLine(0), jsonLine(1)
	appendTo(t, p, l0[:40])
	r.c.quiet(t, 0, 80*time.Millisecond)
	appendTo(t, p, l0[40:len(l0)-1]) // all but the newline
	r.c.quiet(t, 0, 80*time.Millisecond)
	if st := r.t.Stats(); st.Lines != 0 || st.ParseErrors != 0 {
		t.Fatalf("a partial line was processed: %+v", st)
	}
	appendTo(t, p, "\n"+l1[:10])
	evs := r.c.waitN(t, 1, time.Second)
	if evs[0].UID != "C0000000" || evs[0].Offset != int64(len(l0)) {
		t.Errorf("event %+v", evs[0])
	}
	appendTo(t, p, l1[10:])
	checkSequence(t, r.c.waitN(t, 2, time.Second), 2)
}

// An unfinished last line of a rotated file is processed on its own and
// never glued to the first line of the next file.
func TestR16_PartialLineAtRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ssl.log")
	l0, l1, l2 := jsonLine(0), jsonLine(1), jsonLine(2)
	appendTo(t, p, l0+strings.TrimSuffix(l1, "\n"))
	r := start(t, Input{Path: p, Format: FormatZeek}, Options{PollInterval: 10 * time.Millisecond}, false)
	r.c.waitN(t, 1, time.Second)
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, p, l2)
	evs := r.c.waitN(t, 3, time.Second)
	checkSequence(t, evs, 3)
	if evs[2].Offset != int64(len(l2)) {
		t.Errorf("offset in the new file %d", evs[2].Offset)
	}
}

func TestFollowLongLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssl.log")
	appendTo(t, p, "")
	r := start(t, Input{Path: p, Format: FormatZeek}, Options{PollInterval: 10 * time.Millisecond, MaxLineBytes: 1000}, false)
	appendTo(t, p, jsonLine(0))
	// A long line written in pieces over several polls.
	long := `{"_path":"ssl","junk":"` + strings.Repeat("x", 5000) + `"}` + "\n"
	for i := 0; i < len(long); i += 700 {
		appendTo(t, p, long[i:min(i+700, len(long))])
		time.Sleep(5 * time.Millisecond)
	}
	appendTo(t, p, jsonLine(1))
	evs := r.c.waitN(t, 2, time.Second)
	checkSequence(t, evs, 2)
	if want := int64(len(jsonLine(0)) + len(long) + len(jsonLine(1))); evs[1].Offset != want {
		t.Errorf("offset %d, want %d", evs[1].Offset, want)
	}
	if st := r.t.Stats(); st.LongLines != 1 || st.Lines != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestC09_FirstStartFromEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssl.log")
	// The file ends inside a line: FromEnd starts after that line.
	appendTo(t, p, tsvHeader(1)+tsvLine(1, 100)+tsvLine(1, 101)+"C99\tunfinished")
	r := start(t, Input{Path: p, Format: FormatZeek}, Options{PollInterval: 10 * time.Millisecond, FromEnd: true}, false)
	time.Sleep(50 * time.Millisecond)
	appendTo(t, p, "\tline\n"+tsvLine(1, 0)+tsvLine(1, 1))
	evs := r.c.waitN(t, 2, time.Second)
	r.c.quiet(t, 2, 50*time.Millisecond)
	checkSequence(t, evs, 2) // parsed with the header read at start
	if st := r.t.Stats(); st.ParseErrors != 0 {
		t.Errorf("stats %+v", st)
	}

	// FromEnd on a JSON file ending with a newline.
	p2 := filepath.Join(t.TempDir(), "ssl.log")
	appendTo(t, p2, jsonLine(100)+jsonLine(101))
	r2 := start(t, Input{Path: p2, Format: FormatZeek}, Options{PollInterval: 10 * time.Millisecond, FromEnd: true}, false)
	time.Sleep(50 * time.Millisecond)
	appendTo(t, p2, jsonLine(0))
	checkSequence(t, r2.c.waitN(t, 1, time.Second), 1)
}

// FromEnd on a file that holds only part of its header: the header is
// read on, not skipped.
func TestFollowFromEndHeaderOnly(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssl.log")
	h := tsvHeader(0)
	cut := strings.Index(h, "#fields") + 10
	appendTo(t, p, h[:cut])
	r := start(t, Input{Path: p, Format: FormatZeek}, Options{PollInterval: 10 * time.Millisecond, FromEnd: true}, false)
	time.Sleep(30 * time.Millisecond)
	appendTo(t, p, h[cut:]+tsvLine(0, 0))
	checkSequence(t, r.c.waitN(t, 1, time.Second), 1)
}

// The watched directory is removed and created again (zeekctl moves the
// spool away and makes a fresh one): the new file is found and followed.
func TestF07_WatchedDirReplaced(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "spool")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "ssl.log")
	appendTo(t, p, jsonLine(0))
	r := start(t, Input{Path: p, Format: FormatZeek}, Options{PollInterval: 50 * time.Millisecond}, false)
	r.c.waitN(t, 1, time.Second)
	if err := os.Rename(dir, filepath.Join(base, "post-terminate")); err != nil {
		t.Fatal(err)
	}
	appendTo(t, filepath.Join(base, "post-terminate", "ssl.log"), jsonLine(1)) // still drained via the open fd
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the watch be re-established on the new directory
	for i := 2; i < 5; i++ {
		t0 := time.Now()
		appendTo(t, p, jsonLine(i))
		r.c.waitN(t, i+1, time.Second)
		if d := time.Since(t0); d > time.Second {
			t.Errorf("line %d after %v", i, d)
		}
	}
	checkSequence(t, r.c.events(), 5)
	if st := r.t.Stats(); st.Rotations != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFollowHandlerErrorStops(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssl.log")
	appendTo(t, p, jsonLine(0)+jsonLine(1))
	boom := errors.New("sink full")
	calls := 0
	tl, err := New(Input{Path: p, Format: FormatZeek}, Options{PollInterval: 10 * time.Millisecond}, func(context.Context, stackprint.Event) error {
		calls++
		return boom
	})
	if err != nil {
		t.Fatal(err)
	}
	err = tl.Run(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "line 1") || calls != 1 {
		t.Errorf("Run = %v after %d calls", err, calls)
	}
	if err := tl.Run(context.Background()); err == nil {
		t.Error("second Run: no error")
	}
}

func TestFollowCancel(t *testing.T) {
	// A blocking handler (backpressure) and a missing file both give way to ctx.
	p := filepath.Join(t.TempDir(), "ssl.log")
	appendTo(t, p, jsonLine(0))
	entered := make(chan struct{})
	tl, err := New(Input{Path: p, Format: FormatZeek}, Options{}, func(ctx context.Context, _ stackprint.Event) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx) }()
	<-entered
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return")
	}

	r := start(t, Input{Path: filepath.Join(t.TempDir(), "missing.log"), Format: FormatEve}, Options{}, false)
	time.Sleep(20 * time.Millisecond)
	t0 := time.Now()
	if err := r.stop(); err != nil || time.Since(t0) > time.Second {
		t.Errorf("stop: %v after %v", err, time.Since(t0))
	}
}

func TestNewValidates(t *testing.T) {
	h := func(context.Context, stackprint.Event) error { return nil }
	for _, tc := range []struct {
		in   Input
		h    Handler
		want string
	}{
		{Input{Path: "x.log", Format: "json"}, h, `format "json"`},
		{Input{Path: "x.log", Format: ""}, h, "format"},
		{Input{Format: FormatZeek}, h, "empty path"},
		{Input{Path: "conn.log.gz", Format: FormatZeek}, h, "compressed"},
		{Input{Path: "x.log", Format: FormatEve}, nil, "nil handler"},
	} {
		if _, err := New(tc.in, Options{}, tc.h); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	tl, err := New(Input{Path: "/var/log/zeek/ssl.log", Format: FormatZeek}, Options{}, h)
	if err != nil || tl.in.Name != "ssl.log" || tl.opts.PollInterval != DefaultPollInterval || tl.opts.MaxLineBytes != DefaultMaxLineBytes {
		t.Errorf("defaults: %v %+v", err, tl)
	}
}

// TestLastEventAfterCatchingUp: the clock is read once per many events,
// but always for the first event after the reader caught up, so the
// health metric never shows an input idle while it delivers.
func TestLastEventAfterCatchingUp(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssl.log")
	for i := range 10 {
		appendTo(t, p, jsonLine(i))
	}
	r := start(t, Input{Name: "zeek", Path: p, Format: FormatZeek}, Options{}, false)
	r.c.waitN(t, 10, 5*time.Second)
	first := r.t.LastEvent()
	if first.IsZero() {
		t.Fatal("no last-event time after 10 events")
	}
	for i := 10; i < 13; i++ {
		time.Sleep(20 * time.Millisecond)
		before := time.Now()
		appendTo(t, p, jsonLine(i))
		r.c.waitN(t, i+1, 5*time.Second)
		if got := r.t.LastEvent(); got.Before(before) {
			t.Fatalf("event %d: last event %v, before it was written (%v)", i, got, before)
		}
	}
}
