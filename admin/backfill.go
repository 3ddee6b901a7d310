package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/stackprint/stackprint/backfill"
)

// Backfiller judges the servers of a backfill job: the daemon, through
// its scope, scheduler, rules and outputs.
type Backfiller interface {
	Backfill(ctx context.Context, run string, total int, servers iter.Seq[backfill.Server], progress func(backfill.Progress)) (backfill.Summary, error)
}

const (
	// maxServerLine bounds one line of an upload: a server with its
	// connections (at most backfill.DefaultMaxClients).
	maxServerLine = 1 << 20
	// uploadIdle bounds the wait for the next line once the daemon asks
	// for it (a stalled client, not the daemon's own pace).
	uploadIdle = 2 * time.Minute
	// uploadStartWait is how long a created job waits for its upload.
	uploadStartWait = time.Minute
	// keptJobs is how many finished jobs GET still shows.
	keptJobs = 16
)

// Job states.
const (
	JobWaiting   = "waiting" // created, no upload yet
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// BackfillJob is a backfill job as the API shows it.
type BackfillJob struct {
	ID       string            `json:"id"`
	Run      string            `json:"run"`
	State    string            `json:"state"`
	Created  time.Time         `json:"created"`
	Progress backfill.Progress `json:"progress"`
	Error    string            `json:"error,omitempty"`
}

func (j BackfillJob) active() bool { return j.State == JobWaiting || j.State == JobRunning }

// job is a BackfillJob and what stops it.
type job struct {
	mu     sync.Mutex
	st     BackfillJob
	cancel context.CancelCauseFunc // set while running
}

func (j *job) snapshot() BackfillJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.st
}

// jobs are the backfill jobs of a daemon: at most one active at a time
// (its probes share the scheduler with live traffic; two would only
// compete), the last finished ones kept for GET.
type jobs struct {
	mu    sync.Mutex
	byID  map[string]*job
	order []string // creation order
}

var errJobStop = errors.New("backfill cancelled (DELETE)")

func (js *jobs) create(run string, total int) (BackfillJob, error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.byID == nil {
		js.byID = map[string]*job{}
	}
	for _, id := range js.order {
		if st := js.byID[id].snapshot(); st.active() {
			return st, fmt.Errorf("backfill job %s (run %s) is %s; one job runs at a time", st.ID, st.Run, st.State)
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	j := &job{st: BackfillJob{ID: hex.EncodeToString(b[:]), Run: run, State: JobWaiting, Created: time.Now().UTC(),
		Progress: backfill.Progress{Total: total}}}
	js.byID[j.st.ID] = j
	js.order = append(js.order, j.st.ID)
	for i := 0; len(js.order) > keptJobs && i < len(js.order); {
		if id := js.order[i]; !js.byID[id].snapshot().active() {
			delete(js.byID, id)
			js.order = append(js.order[:i], js.order[i+1:]...)
			continue
		}
		i++
	}
	// A job whose client never uploads does not block the next one.
	time.AfterFunc(uploadStartWait, func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.st.State == JobWaiting {
			j.st.State, j.st.Error = JobCancelled, "no upload within "+uploadStartWait.String()
		}
	})
	return j.st, nil
}

func (js *jobs) get(id string) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.byID[id]
}

func (js *jobs) list() []BackfillJob {
	js.mu.Lock()
	defer js.mu.Unlock()
	out := make([]BackfillJob, 0, len(js.order))
	for _, id := range js.order {
		out = append(out, js.byID[id].snapshot())
	}
	return out
}

func (s *Server) backfillRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("POST "+v+"/backfill", s.backfillCreate)
	mux.HandleFunc("GET "+v+"/backfill", s.backfillList)
	mux.HandleFunc("GET "+v+"/backfill/{id}", s.backfillGet)
	mux.HandleFunc("DELETE "+v+"/backfill/{id}", s.backfillCancel)
	mux.HandleFunc("POST "+v+"/backfill/{id}/servers", s.backfillUpload)
}

// backfillRequest creates a job.
type backfillRequest struct {
	Run     string `json:"run"`
	Servers int    `json:"servers"` // how many the upload will carry (progress)
}

func (s *Server) backfillCreate(w http.ResponseWriter, r *http.Request) {
	if s.backfiller == nil {
		s.fail(w, r, http.StatusNotImplemented, errors.New("this daemon runs no backfill jobs"))
		return
	}
	var req backfillRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	if req.Run == "" || req.Servers < 0 {
		s.fail(w, r, http.StatusBadRequest, errors.New("backfill needs a run name and servers >= 0"))
		return
	}
	st, err := s.jobs.create(req.Run, req.Servers)
	if err != nil {
		s.fail(w, r, http.StatusConflict, err)
		return
	}
	s.log.Info("admin: backfill job created", "id", st.ID, "run", st.Run, "servers", req.Servers)
	reply(w, http.StatusOK, st)
}

func (s *Server) backfillList(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, struct {
		Jobs []BackfillJob `json:"jobs"`
	}{s.jobs.list()})
}

func (s *Server) backfillGet(w http.ResponseWriter, r *http.Request) {
	j := s.jobs.get(r.PathValue("id"))
	if j == nil {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("no backfill job %q", r.PathValue("id")))
		return
	}
	reply(w, http.StatusOK, j.snapshot())
}

func (s *Server) backfillCancel(w http.ResponseWriter, r *http.Request) {
	j := s.jobs.get(r.PathValue("id"))
	if j == nil {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("no backfill job %q", r.PathValue("id")))
		return
	}
	j.mu.Lock()
	switch {
	case j.cancel != nil:
		j.cancel(errJobStop)
	case j.st.State == JobWaiting:
		j.st.State, j.st.Error = JobCancelled, errJobStop.Error()
	}
	st := j.st
	j.mu.Unlock()
	reply(w, http.StatusOK, st)
}

// backfillUpload judges the servers of the body (NDJSON, one
// backfill.Server a line) as they arrive: a line is read only when a
// worker is free, so a fast client is held back by the socket, and the
// daemon holds a few servers, never the upload. The job ends with the
// request: a client that disconnects cancels it (what finished stays
// finished, in the DB). The answer is the job at its end.
func (s *Server) backfillUpload(w http.ResponseWriter, r *http.Request) {
	j := s.jobs.get(r.PathValue("id"))
	if j == nil {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("no backfill job %q", r.PathValue("id")))
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stopWithDaemon := context.AfterFunc(s.jobCtx, func() { cancel(errors.New("the daemon is stopping")) })
	defer stopWithDaemon()
	s.jobMu.Lock()
	if s.stopped {
		s.jobMu.Unlock()
		s.fail(w, r, http.StatusServiceUnavailable, errors.New("the daemon is stopping"))
		return
	}
	s.jobWG.Add(1)
	s.jobMu.Unlock()
	defer s.jobWG.Done()
	j.mu.Lock()
	if j.st.State != JobWaiting {
		st := j.st
		j.mu.Unlock()
		s.fail(w, r, http.StatusConflict, fmt.Errorf("backfill job %s is %s, not waiting for its upload", st.ID, st.State))
		return
	}
	j.st.State, j.cancel = JobRunning, cancel
	run, total := j.st.Run, j.st.Progress.Total
	j.mu.Unlock()

	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		go watchHangup(ctx, c, cancel)
	}
	// The upload may take hours: no whole-request deadlines, one per
	// line instead.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	// One goroutine reads ahead by one line, so it sits in a read of the
	// socket while the workers judge: a client that disconnects (killed)
	// cancels the servers in flight at once.
	var (
		badLine error // set before lines is closed
		line    int
	)
	lines := make(chan backfill.Server)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(lines)
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 0, 64<<10), maxServerLine)
		for ctx.Err() == nil {
			_ = rc.SetReadDeadline(time.Now().Add(uploadIdle))
			if !sc.Scan() {
				if err := sc.Err(); err != nil && ctx.Err() == nil {
					badLine = fmt.Errorf("upload line %d: %w", line+1, err)
					cancel(badLine)
				}
				return
			}
			line++
			var sv backfill.Server
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			err := dec.Decode(&sv)
			if err == nil {
				err = sv.Check()
			}
			if err != nil {
				badLine = fmt.Errorf("upload line %d: %w", line, err)
				cancel(badLine)
				return
			}
			select {
			case lines <- sv:
			case <-ctx.Done():
				return
			}
		}
	}()
	servers := func(yield func(backfill.Server) bool) {
		for sv := range lines {
			if !yield(sv) {
				return
			}
		}
	}
	s.log.Info("admin: backfill started", "id", r.PathValue("id"), "run", run, "servers", total)
	sum, err := s.backfiller.Backfill(ctx, run, total, servers, func(p backfill.Progress) {
		j.mu.Lock()
		j.st.Progress = p
		j.mu.Unlock()
	})
	cancelled := ctx.Err() != nil // DELETE, the client gone, the daemon stopping
	cancel(nil)
	_ = rc.SetReadDeadline(time.Now()) // a reader waiting for more: not any more
	<-readDone                         // badLine is set
	if badLine != nil {
		err = badLine
	}
	j.mu.Lock()
	j.cancel = nil
	j.st.Progress.Summary = sum
	switch {
	case err == nil:
		j.st.State = JobDone
	case badLine == nil && cancelled:
		j.st.State, j.st.Error = JobCancelled, err.Error()
	default:
		j.st.State, j.st.Error = JobFailed, err.Error()
	}
	st := j.st
	j.mu.Unlock()
	s.log.Info("admin: backfill ended", "id", st.ID, "run", run, "state", st.State, "servers", sum.Servers,
		"resumed", sum.Resumed, "cached", sum.Cached, "probed", sum.Probed, "alerts", sum.Alerts, "err", st.Error)
	_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	code := http.StatusOK
	switch {
	case badLine != nil:
		code = http.StatusBadRequest
	case st.State == JobFailed:
		code = http.StatusInternalServerError
	}
	reply(w, code, st)
}

// connKey keys the connection of a request in its context.
type connKey struct{}

// watchHangup cancels the job when its client goes away, while the
// daemon is still judging what the client had sent.
func watchHangup(ctx context.Context, c net.Conn, cancel context.CancelCauseFunc) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if peerGone(c) {
				cancel(errors.New("the client disconnected"))
				return
			}
		}
	}
}

// Backfill runs a backfill job on the daemon: it creates the job, streams
// servers to it (the socket holds the stream back while the daemon is
// busy) and returns the job's summary. progress, when not nil, is called
// with the job's progress about twice a second. Cancelling ctx
// disconnects, which cancels the job; the servers it finished stay
// finished for the next run of the same name.
func (c *Client) Backfill(ctx context.Context, run string, servers []backfill.Server, progress func(backfill.Progress)) (backfill.Summary, error) {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer pr.CloseWithError(errors.New("upload ended"))
	wg.Go(func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		for _, s := range servers {
			if err := enc.Encode(s); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(bw.Flush())
	})
	return c.backfill(ctx, run, len(servers), pr, progress)
}

// backfill creates a job for total servers and uploads body (NDJSON
// lines of backfill.Server) to it.
func (c *Client) backfill(ctx context.Context, run string, total int, body io.Reader, progress func(backfill.Progress)) (backfill.Summary, error) {
	req, err := jsonBody(backfillRequest{Run: run, Servers: total})
	if err != nil {
		return backfill.Summary{}, err
	}
	var st BackfillJob
	if err := c.call(ctx, http.MethodPost, "/backfill", nil, req, &st); err != nil {
		if se, ok := errors.AsType[*StatusError](err); ok && se.Status == http.StatusNotFound {
			return backfill.Summary{}, fmt.Errorf("the running daemon (%s) takes no backfill jobs: it is an older stackprint; upgrade it, or stop it for the backfill", c.path)
		}
		return backfill.Summary{}, err
	}
	route := "/backfill/" + url.PathEscape(st.ID)
	last := backfill.Progress{Total: total}
	var lastMu sync.Mutex
	pctx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			var cur BackfillJob
			if c.call(pctx, http.MethodGet, route, nil, nil, &cur) != nil {
				continue
			}
			lastMu.Lock()
			last = cur.Progress
			lastMu.Unlock()
			if progress != nil && cur.Progress.Done > 0 {
				progress(cur.Progress)
			}
		}
	})
	var end BackfillJob
	err = c.send(ctx, http.MethodPost, route+"/servers", nil, body, &end)
	stopPoll()
	wg.Wait()
	if end.ID == "" && ctx.Err() == nil {
		// No answer: a daemon that stopped reading (the job was cancelled
		// or failed) breaks the upload; ask it how the job ended.
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var cur BackfillJob
		if c.call(gctx, http.MethodGet, route, nil, nil, &cur) == nil && cur.State != JobRunning {
			end = cur
		}
		cancel()
	}
	if end.ID == "" {
		// The daemon is gone (killed) or ctx ended: the last progress seen.
		lastMu.Lock()
		end.Progress = last
		lastMu.Unlock()
		return end.Progress.Summary, err
	}
	if progress != nil {
		progress(end.Progress)
	}
	if end.State != JobDone {
		return end.Progress.Summary, fmt.Errorf("backfill job %s %s: %s", end.ID, end.State, end.Error)
	}
	return end.Progress.Summary, nil
}

// BackfillJobs lists the daemon's backfill jobs, the running one and the
// last finished ones.
func (c *Client) BackfillJobs(ctx context.Context) ([]BackfillJob, error) {
	var resp struct {
		Jobs []BackfillJob `json:"jobs"`
	}
	err := c.call(ctx, http.MethodGet, "/backfill", nil, nil, &resp)
	return resp.Jobs, err
}

// CancelBackfill cancels a job (what finished stays finished).
func (c *Client) CancelBackfill(ctx context.Context, id string) (BackfillJob, error) {
	var st BackfillJob
	err := c.call(ctx, http.MethodDelete, "/backfill/"+url.PathEscape(id), nil, nil, &st)
	return st, err
}
