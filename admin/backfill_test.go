package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/backfill"
	"github.com/stackprint/stackprint/db"
)

// gateBackfiller takes the servers of a job one by one, each once the
// test lets it (gate), and counts them: the daemon's side without probes.
type gateBackfiller struct {
	gate chan struct{} // nil: no wait
	got  atomic.Int64
}

func (g *gateBackfiller) Backfill(ctx context.Context, run string, total int, servers iter.Seq[backfill.Server], progress func(backfill.Progress)) (backfill.Summary, error) {
	var sum backfill.Summary
	for s := range servers {
		if g.gate != nil {
			select {
			case <-g.gate:
			case <-ctx.Done():
				return sum, context.Cause(ctx)
			}
		}
		g.got.Add(1)
		sum.Servers++
		sum.Events += s.Count
		progress(backfill.Progress{Done: sum.Servers, Total: total, Summary: sum})
	}
	return sum, ctx.Err()
}

func startBackfillServer(t *testing.T, b Backfiller) (*testServer, *Client) {
	t.Helper()
	dir := t.TempDir()
	d, err := db.Open(filepath.Join(dir, "stackprint.db"), db.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := &testServer{sock: filepath.Join(dir, "admin.sock"), db: d}
	s, err := Listen(ServerConfig{Socket: p.sock, DB: d, Backfill: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := s.Start(ctx)
	c, err := Dial(context.Background(), p.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		stop()
		if _, err := os.Lstat(p.sock); !os.IsNotExist(err) {
			t.Errorf("socket left behind: %v", err)
		}
		d.Close()
	})
	return p, c
}

func testServers(n, pad int) []backfill.Server {
	out := make([]backfill.Server, n)
	for i := range out {
		out[i] = backfill.Server{Count: 3, Events: []stackprint.Event{{
			UID: fmt.Sprintf("C%06d%s", i, strings.Repeat("x", pad)), Orig: netip.MustParseAddrPort("10.0.0.1:5000"),
			Resp: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(1000+i)), Backfill: true,
		}}}
	}
	return out
}

// A job takes every server of its upload and answers the summary; a
// second job waits for the first; a malformed line fails the upload with
// its line number.
func TestBackfillJob(t *testing.T) {
	g := &gateBackfiller{}
	p, c := startBackfillServer(t, g)
	var seen atomic.Int64
	sum, err := c.Backfill(context.Background(), "run-1", testServers(500, 0), func(pr backfill.Progress) { seen.Store(int64(pr.Done)) })
	if err != nil || sum.Servers != 500 || sum.Events != 1500 || g.got.Load() != 500 || seen.Load() != 500 {
		t.Fatalf("job: %+v %v (backfiller got %d, last progress %d)", sum, err, g.got.Load(), seen.Load())
	}
	jobs, err := c.BackfillJobs(context.Background())
	if err != nil || len(jobs) != 1 || jobs[0].State != JobDone || jobs[0].Run != "run-1" {
		t.Fatalf("jobs: %+v %v", jobs, err)
	}

	// A created job blocks the next one until it ends.
	hc := p.httpClient()
	post := func(path, body string) (int, string) {
		resp, err := hc.Post("http://stackprint/v1"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("/backfill", `{"run":"run-2","servers":2}`)
	var st BackfillJob
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.State != JobWaiting {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body := post("/backfill", `{"run":"run-3","servers":1}`); code != http.StatusConflict || !strings.Contains(body, st.ID) {
		t.Errorf("second job while one waits: %d %s", code, body)
	}
	line1, _ := json.Marshal(testServers(1, 0)[0])
	code, body = post("/backfill/"+st.ID+"/servers", string(line1)+"\n"+`{"events":[],"count":1}`+"\n")
	if code != http.StatusBadRequest || !strings.Contains(body, "upload line 2: server without connections") || !strings.Contains(body, `"state":"failed"`) {
		t.Errorf("bad line: %d %s", code, body)
	}
	if code, body := post("/backfill/"+st.ID+"/servers", string(line1)+"\n"); code != http.StatusConflict {
		t.Errorf("second upload to a finished job: %d %s", code, body)
	}
	if code, body := post("/backfill/nosuchjob/servers", ""); code != http.StatusNotFound {
		t.Errorf("upload to no job: %d %s", code, body)
	}
}

// The daemon reads an upload only as fast as it judges: with the judge
// stuck on the first server, the client cannot push more than what the
// socket buffers hold of a 24 MiB upload, and cancelling the job (DELETE)
// ends it.
func TestBackfillUploadBackpressure(t *testing.T) {
	g := &gateBackfiller{gate: make(chan struct{})}
	_, c := startBackfillServer(t, g)
	servers := testServers(3000, 8<<10)
	var lineBytes int
	for _, s := range servers {
		b, _ := json.Marshal(s)
		lineBytes += len(b) + 1
	}
	var (
		sum backfill.Summary
		err error
		wg  sync.WaitGroup
	)
	// Count what the client's transport reads of the body.
	var sent atomic.Int64
	wg.Go(func() {
		sum, err = c.backfillCounting(context.Background(), "bp", servers, &sent)
	})
	g.gate <- struct{}{} // the first server judged, the second stuck
	time.Sleep(500 * time.Millisecond)
	if n := sent.Load(); n > 4<<20 || n >= int64(lineBytes) {
		t.Errorf("the client sent %d of %d bytes while the daemon judged one server", n, lineBytes)
	}
	jobs, _ := c.BackfillJobs(context.Background())
	if len(jobs) != 1 || jobs[0].State != JobRunning {
		t.Fatalf("jobs: %+v", jobs)
	}
	if st, err := c.CancelBackfill(context.Background(), jobs[0].ID); err != nil || st.State != JobRunning {
		t.Fatalf("cancel: %+v %v", st, err)
	}
	wg.Wait()
	if err == nil || !strings.Contains(err.Error(), "cancelled") || sum.Servers != 1 {
		t.Errorf("cancelled job: %+v %v", sum, err)
	}
	t.Logf("sent %d of %d bytes while blocked; %v", sent.Load(), lineBytes, err)
}

// backfillCounting is Backfill with the upload's bytes counted as the
// transport reads them.
func (c *Client) backfillCounting(ctx context.Context, run string, servers []backfill.Server, sent *atomic.Int64) (backfill.Summary, error) {
	var buf bytes.Buffer
	for _, s := range servers {
		b, _ := json.Marshal(s)
		buf.Write(append(b, '\n'))
	}
	return c.backfill(ctx, run, len(servers), countedBody{&buf, sent}, nil)
}

type countedBody struct {
	r io.Reader
	n *atomic.Int64
}

func (c countedBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
