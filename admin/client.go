package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/explain"
)

const (
	// callTimeout bounds one request unless its context is shorter:
	// imports with retro-hunts can take a while.
	callTimeout = 5 * time.Minute
	// maxResponse bounds what the client reads of one answer: an export
	// of the whole DB.
	maxResponse = db.MaxImportBytes + 1<<20
)

// ErrNoDaemon means nothing listens on the admin socket.
var ErrNoDaemon = errors.New("no daemon on the admin socket")

// Client talks to a running daemon. Its methods are Local's, run by the
// daemon; retro counts the retroactive alerts it raised.
type Client struct {
	path string
	hc   *http.Client
}

// Dial connects to the daemon's socket and checks it answers. It returns
// an error wrapping ErrNoDaemon when the socket is missing or stale, so
// the caller can open the file directly.
func Dial(ctx context.Context, path string) (*Client, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	c := &Client{path: path, hc: &http.Client{Transport: tr}}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var h Hello
	if err := c.call(pctx, http.MethodGet, "/ping", nil, nil, &h); err != nil {
		tr.CloseIdleConnections()
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOTSOCK):
			return nil, fmt.Errorf("%w (%s)", ErrNoDaemon, path)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("admin socket %s: permission denied: run this as the user the daemon runs as (the socket is mode 0600)", path)
		}
		return nil, err
	}
	return c, nil
}

// StatusError is an answer other than 200: the HTTP status and the
// daemon's message.
type StatusError struct {
	Status int
	Msg    string
}

func (e *StatusError) Error() string { return e.Msg }

// call sends one request to route (after the API version) and decodes a
// JSON answer into out, or returns the raw body when out is a *[]byte.
// The header of the answer is returned through hdr when not nil.
func (c *Client) call(ctx context.Context, method, route string, q url.Values, body io.Reader, out any, hdr ...*http.Header) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return c.send(ctx, method, route, q, body, out, hdr...)
}

// send is call without its time bound: a backfill upload lasts as long as
// its job.
func (c *Client) send(ctx context.Context, method, route string, q url.Values, body io.Reader, out any, hdr ...*http.Header) error {
	u := "http://stackprint/" + apiVersion + route
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	ct := "application/octet-stream"
	if jr, ok := body.(jsonReader); ok {
		ct, body = "application/json", jr.Reader // a *bytes.Reader: its length is sent
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("admin socket %s: %s %s: %w", c.path, method, route, ctx.Err())
		}
		return fmt.Errorf("admin socket %s: %s %s: %w", c.path, method, route, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("admin socket %s: %s %s: %w", c.path, method, route, err)
	}
	if len(b) > maxResponse {
		return fmt.Errorf("admin socket %s: %s %s: answer larger than %d MiB", c.path, method, route, maxResponse>>20)
	}
	if len(hdr) > 0 && hdr[0] != nil {
		*hdr[0] = resp.Header
	}
	if resp.StatusCode != http.StatusOK {
		// Keep what the route produced (an import's report lists every
		// rejected line).
		if out != nil && resp.Header.Get("Content-Type") == "application/json" {
			_ = json.Unmarshal(b, out)
		}
		var e errorResponse
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("admin socket %s: %s %s: %s", c.path, method, route, resp.Status)
		}
		return &StatusError{Status: resp.StatusCode, Msg: e.Error}
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("admin socket %s: %s %s: bad answer: %w", c.path, method, route, err)
		}
	}
	return nil
}

// jsonReader is a JSON request body.
type jsonReader struct{ *bytes.Reader }

// jsonBody encodes v as a request body.
func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonReader{bytes.NewReader(b)}, nil
}

func (c *Client) Via() string { return "the running daemon (" + c.path + ")" }
func (c *Client) Live() bool  { return true }
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

func (c *Client) Add(ctx context.Context, r db.Record) (db.Record, int, error) {
	body, err := jsonBody(r)
	if err != nil {
		return db.Record{}, 0, err
	}
	var resp addResponse
	if err := c.call(ctx, http.MethodPost, "/fingerprints", nil, body, &resp); err != nil {
		return db.Record{}, resp.Retro, err
	}
	return resp.Record, resp.Retro, nil
}

func (c *Client) Remove(ctx context.Context, kind, value string) (bool, error) {
	err := c.call(ctx, http.MethodDelete, "/fingerprints/"+url.PathEscape(kind)+"/"+url.PathEscape(value), nil, nil, nil)
	if se, ok := errors.AsType[*StatusError](err); ok && se.Status == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

func (c *Client) List(ctx context.Context, kind string) ([]db.Record, error) {
	var resp struct {
		Records []db.Record `json:"records"`
	}
	q := url.Values{}
	if kind != "" {
		q.Set("kind", kind)
	}
	err := c.call(ctx, http.MethodGet, "/fingerprints", q, nil, &resp)
	return resp.Records, err
}

func (c *Client) Import(ctx context.Context, name string, data []byte, o db.ImportOptions) (db.ImportReport, int, error) {
	if len(data) > maxImport {
		return db.ImportReport{Name: name}, 0, fmt.Errorf("import %s: %d MiB is over the %d MiB an import through the running daemon's admin socket takes: split the file, or stop the daemon and import again", name, len(data)>>20, maxImport>>20)
	}
	q := url.Values{"name": {name}}
	for k, v := range map[string]string{"format": o.Format, "source": o.Source, "confidence": o.Confidence, "category": o.Category, "label": o.Label} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Partial {
		q.Set("partial", "true")
	}
	if o.Replace {
		q.Set("replace", "true")
	}
	var resp importResponse
	err := c.call(ctx, http.MethodPost, "/import", q, bytes.NewReader(data), &resp)
	return resp.Report, resp.Retro, err
}

func (c *Client) Export(ctx context.Context, o db.ExportOptions) ([]byte, int, error) {
	q := url.Values{"format": {o.Format}}
	for k, v := range map[string]string{"kind": o.Kind, "min_confidence": o.MinConfidence, "intel_source": o.IntelSource} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.Format(time.RFC3339Nano))
	}
	var (
		data []byte
		h    http.Header
	)
	if err := c.call(ctx, http.MethodGet, "/export", q, nil, &data, &h); err != nil {
		return nil, 0, err
	}
	n, err := strconv.Atoi(h.Get(countHeader))
	if err != nil {
		return nil, 0, fmt.Errorf("admin socket %s: export: bad %s header %q", c.path, countHeader, h.Get(countHeader))
	}
	return data, n, nil
}

func (c *Client) Check(ctx context.Context) ([]string, error) {
	var resp struct {
		Problems []string `json:"problems"`
	}
	err := c.call(ctx, http.MethodGet, "/check", nil, nil, &resp)
	return resp.Problems, err
}

func (c *Client) Backup(ctx context.Context, path string) (int64, error) {
	body, err := jsonBody(map[string]string{"path": path})
	if err != nil {
		return 0, err
	}
	var resp struct {
		Size int64 `json:"size"`
	}
	err = c.call(ctx, http.MethodPost, "/backup", nil, body, &resp)
	return resp.Size, err
}

func (c *Client) Stats(ctx context.Context) (db.Stats, error) {
	var st db.Stats
	err := c.call(ctx, http.MethodGet, "/stats", nil, nil, &st)
	return st, err
}

func (c *Client) LearnFinished(ctx context.Context, role string) (map[string]bool, error) {
	var resp struct {
		Entries []string `json:"entries"`
	}
	if err := c.call(ctx, http.MethodGet, "/learn/finished", url.Values{"role": {role}}, nil, &resp); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(resp.Entries))
	for _, e := range resp.Entries {
		out[e] = true
	}
	return out, nil
}

func (c *Client) RecordLearn(ctx context.Context, lr db.LearnResult) (bool, error) {
	body, err := jsonBody(lr)
	if err != nil {
		return false, err
	}
	var resp struct {
		Counted bool `json:"counted"`
	}
	err = c.call(ctx, http.MethodPost, "/learn/results", nil, body, &resp)
	return resp.Counted, err
}

func (c *Client) LearnScores(ctx context.Context) ([]db.LearnStats, error) {
	var resp struct {
		Scores []db.LearnStats `json:"scores"`
	}
	err := c.call(ctx, http.MethodGet, "/learn/scores", nil, nil, &resp)
	return resp.Scores, err
}

func (c *Client) ResetLearn(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/learn/reset", nil, nil, nil)
}

func (c *Client) Promote(ctx context.Context, o db.PromoteOptions) ([]db.Record, int, error) {
	body, err := jsonBody(o)
	if err != nil {
		return nil, 0, err
	}
	var resp promoteResponse
	err = c.call(ctx, http.MethodPost, "/learn/promote", nil, body, &resp)
	return resp.Records, resp.Retro, err
}

// Explain asks the daemon about a server, an alert or a fingerprint.
func (c *Client) Explain(ctx context.Context, query string) (explain.Report, error) {
	var rep explain.Report
	err := c.call(ctx, http.MethodGet, "/explain", url.Values{"q": {query}}, nil, &rep)
	return rep, err
}
