package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackprint/stackprint/db"
)

// testServer is an admin server over a fresh DB file, without a daemon.
type testServer struct {
	sock string
	db   *db.DB
}

func startServer(t *testing.T, dir string) *testServer {
	t.Helper()
	d, err := db.Open(filepath.Join(dir, "stackprint.db"), db.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := &testServer{sock: filepath.Join(dir, "admin.sock"), db: d}
	s, err := Listen(ServerConfig{Socket: p.sock, DB: d})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := s.Start(ctx)
	t.Cleanup(func() {
		cancel()
		stop()
		if _, err := os.Lstat(p.sock); !os.IsNotExist(err) {
			t.Errorf("socket left behind: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// httpClient speaks HTTP on the socket, as curl --unix-socket does.
func (p *testServer) httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p.sock)
		},
	}}
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const goodJARM = "07d19d12d21d21d07c07d19d07d21da5a8ab90bcc6bf8bbc6fbec4bcaa8219"

// TestAdminAPI speaks HTTP to the socket by hand: every route, and the
// status code of each kind of bad request.
func TestAdminAPI(t *testing.T) {
	p := startServer(t, t.TempDir())
	hc := p.httpClient()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://stackprint"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("GET", "/v1/ping", "")
	var h Hello
	if err := json.Unmarshal([]byte(body), &h); code != 200 || err != nil || h.PID != os.Getpid() || h.Socket != p.sock || h.API != "v1" {
		t.Errorf("ping: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/fingerprints", `{"kind":"jarm","value":"` + goodJARM + `","label":"x","confidence":"high"}`, 200, `"retro_alerts":0`},
		{"GET", "/v1/fingerprints?kind=jarm", "", 200, goodJARM},
		{"GET", "/v1/stats", "", 200, `"fingerprints":1`},
		{"GET", "/v1/check", "", 200, `"problems":null`},
		{"GET", "/v1/export?format=csv", "", 200, goodJARM},
		{"GET", "/v1/learn/scores", "", 200, `"scores"`},
		{"GET", "/v1/learn/finished?role=block", "", 200, `"entries":[]`},
		{"POST", "/v1/learn/reset", "", 200, `{}`},
		{"POST", "/v1/learn/promote", `{"label":"l","threshold":1,"min_block":2,"confidence":"low"}`, 200, `"records":null`},
		{"POST", "/v1/backup", `{"path":"` + filepath.Join(t.TempDir(), "b.db") + `"}`, 200, `"size":`},
		{"DELETE", "/v1/fingerprints/jarm/" + goodJARM, "", 200, `"found":true`},
		// What goes wrong, and its status.
		{"DELETE", "/v1/fingerprints/jarm/" + goodJARM, "", 404, "no jarm entry"},
		{"GET", "/v1/frobnicate", "", 404, "not found"},
		{"GET", "/v2/ping", "", 404, "not found"},
		{"PUT", "/v1/stats", "", 405, "Method Not Allowed"},
		{"POST", "/v1/fingerprints", `not json`, 400, "bad request body"},
		{"POST", "/v1/fingerprints", `{"kind":"jarm","x":1}`, 400, `unknown field`},
		{"POST", "/v1/fingerprints", `{"kind":"jarm","value":"00000000000000000000000000000000000000000000000000000000000000","label":"z"}`, 400, "all-zero JARM"},
		{"POST", "/v1/fingerprints", `{"kind":"jarm","value":"` + goodJARM + `","label":"x"} {}`, 400, "data after the JSON value"},
		{"DELETE", "/v1/fingerprints/md5/abc", "", 400, "kind"},
		{"GET", "/v1/export", "", 400, "export needs format"},
		{"GET", "/v1/export?format=csv&since=yesterday", "", 400, "RFC 3339"},
		{"GET", "/v1/learn/finished?role=x", "", 400, "role"},
		{"POST", "/v1/backup", `{"path":"relative.db"}`, 400, "absolute path"},
		{"POST", "/v1/import?partial=maybe", "x", 400, "partial"},
		{"POST", "/v1/import?name=bad.txt&format=jarm", goodJARM + ",ok\nnot-a-hash,bad\n", 422, `"rejected":[{"line":2`},
		{"POST", "/v1/import?name=good.txt&format=jarm", goodJARM + ",ok\n", 200, `"accepted":1`},
	} {
		code, body := do(c.method, c.path, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s → %d %s, want %d with %q", c.method, c.path, code, strings.TrimSpace(body), c.code, c.want)
		}
	}
	// The client sees the same through its methods.
	c, err := Dial(context.Background(), p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if found, err := c.Remove(context.Background(), "jarm", strings.Repeat("1", 62)); found || err != nil {
		t.Errorf("client remove of an absent entry: %v %v", found, err)
	}
	rep, _, err := c.Import(context.Background(), "bad.txt", []byte("not-a-hash,bad\n"), db.ImportOptions{Format: "jarm"})
	if err == nil || len(rep.Rejected) != 1 {
		t.Errorf("client import of a bad file: %+v %v", rep, err)
	}
	data, n, err := c.Export(context.Background(), db.ExportOptions{Format: "jsonl"})
	if err != nil || n != 1 || !strings.Contains(string(data), goodJARM) {
		t.Errorf("client export: %d %q %v", n, data, err)
	}
}

// TestAdminSocketRefusesToClobber: a stale socket is replaced, a regular
// file at the socket path is left alone (the daemon runs without socket).
func TestAdminSocketRefusesToClobber(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	// A stale socket: bound, closed without unlinking.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	p := startServer(t, dir)
	if c, err := Dial(context.Background(), p.sock); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	} else {
		c.Close()
	}
	if fi, err := os.Stat(p.sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", fi.Mode(), err)
	}
	// A live one is not taken over.
	if _, err := Listen(ServerConfig{Socket: p.sock}); err == nil || !strings.Contains(err.Error(), "another process answers") {
		t.Errorf("listen over a live socket: %v", err)
	}

	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, "admin.sock"), []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(ServerConfig{Socket: filepath.Join(dir2, "admin.sock")}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir2, "admin.sock")); string(b) != "not a socket" {
		t.Error("regular file replaced")
	}
	if _, err := Dial(context.Background(), filepath.Join(dir2, "none.sock")); !strings.Contains(fmt.Sprint(err), ErrNoDaemon.Error()) {
		t.Errorf("dial of a missing socket: %v", err)
	}
}

// repeatReader is an endless body that costs no memory.
type repeatReader struct{}

func (repeatReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 'A'
	}
	return len(b), nil
}

// countingReader counts what the client sent of a body (the transport
// may still be writing it when the answer arrives).
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n.Add(int64(k))
	return k, err
}

// The adversarial pass's admin-socket abuse: a 100 MB request was read
// whole into memory. Now a body over its limit gets 413 and is not read
// further: an import at once when its length is announced (and 411 when
// it is not), a JSON body at its limit. No more than maxConns connections are served at once.
func TestAdminRequestsAreBounded(t *testing.T) {
	p := startServer(t, t.TempDir())
	const size = 100 << 20
	for _, chunked := range []bool{false, true} {
		body := &countingReader{r: io.LimitReader(repeatReader{}, size)}
		req, err := http.NewRequest("POST", "http://stackprint/v1/import?name=big", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		if chunked {
			req.ContentLength = -1 // unknown: sent chunked
		}
		resp, err := p.httpClient().Do(req)
		if err != nil {
			// The server may close while the client still writes; the
			// answer was sent first.
			t.Logf("chunked=%v: %v", chunked, err)
			if body.n.Load() >= size {
				t.Errorf("chunked=%v: the server took all %d bytes", chunked, body.n.Load())
			}
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := http.StatusRequestEntityTooLarge
		if chunked {
			want = http.StatusLengthRequired // an import is read into a buffer of its length
		}
		if resp.StatusCode != want || !strings.Contains(string(b), "error") {
			t.Errorf("chunked=%v: %d %s, want %d", chunked, resp.StatusCode, b, want)
		}
		if body.n.Load() >= size {
			t.Errorf("chunked=%v: the server took all %d bytes", chunked, body.n.Load())
		}
		t.Logf("chunked=%v: %d, client sent %d MiB of %d", chunked, resp.StatusCode, body.n.Load()>>20, size>>20)
	}
	// An oversized JSON body gets 413 too.
	req, _ := http.NewRequest("POST", "http://stackprint/v1/fingerprints",
		io.MultiReader(strings.NewReader(`{"label":"`), io.LimitReader(repeatReader{}, 2*maxJSON)))
	if resp, err := p.httpClient().Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized JSON body: %d, want 413", resp.StatusCode)
		}
	}

	// Connections over the cap are answered 503, not queued.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range maxConns {
		c, err := net.Dial("unix", p.sock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitFor(t, "the over-the-cap connection to be refused", 10*time.Second, func() bool {
		c, err := net.Dial("unix", p.sock)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		l, _ := bufio.NewReader(c).ReadString('\n')
		return strings.Contains(l, "503")
	})
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitFor(t, "a new connection to be served after the others closed", 10*time.Second, func() bool {
		c, err := Dial(context.Background(), p.sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	// An idle connection is closed after the header timeout.
	c, err := net.Dial("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(readHeaderTimeout + 10*time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("a silent connection got an answer")
	}

	// The client refuses an import too large for the socket before sending.
	cl, err := Dial(context.Background(), p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, _, err := cl.Import(context.Background(), "big.csv", make([]byte, maxImport+1), db.ImportOptions{}); err == nil || !strings.Contains(err.Error(), "stop the daemon") {
		t.Errorf("oversized import through the socket: %v", err)
	}
}
