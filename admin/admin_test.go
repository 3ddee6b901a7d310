package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
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

// TestAdminProtocol speaks the JSON-lines protocol by hand.
func TestAdminProtocol(t *testing.T) {
	p := startServer(t, t.TempDir())
	conn, err := net.Dial("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	ask := func(line string) adminResponse {
		t.Helper()
		if _, err := conn.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var resp adminResponse
		if err := json.Unmarshal(b, &resp); err != nil {
			t.Fatalf("adminResponse %q: %v", b, err)
		}
		return resp
	}
	if r := ask(`{"v":1,"op":"ping"}`); !r.OK || r.Daemon == nil || r.Daemon.PID != os.Getpid() || r.Daemon.Socket != p.sock {
		t.Errorf("ping: %+v", r)
	}
	for line, want := range map[string]string{
		`{"v":1,"op":"frobnicate"}`: `unknown op "frobnicate"`,
		`{"v":2,"op":"ping"}`:       "protocol version 2",
		`{"v":1,"op":"add"}`:        "needs record",
		`{"v":1,"op":"ping","x":1}`: `unknown field "x"`,
		`not json`:                  "bad request",
		`{"v":1,"op":"add","record":{"kind":"jarm","value":"00000000000000000000000000000000000000000000000000000000000000","label":"z"}}`: "all-zero JARM",
	} {
		if r := ask(line); r.OK || !strings.Contains(r.Error, want) {
			t.Errorf("%s → %+v, want error with %q", line, r, want)
		}
	}
	// The connection survives errors: a good request still works.
	if r := ask(`{"v":1,"op":"stats"}`); !r.OK || r.Stats == nil || r.Stats.SchemaVersion != db.SchemaVersion {
		t.Errorf("stats after errors: %+v", r)
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
}

// The adversarial pass's admin-socket abuse: a 100 MB request line was read
// whole into memory. Now the daemon stops reading at adminMaxRequest,
// answers with an error, closes the connection and serves the next one; and
// no more than adminMaxConns connections are served at once.
func TestAdminRequestsAreBounded(t *testing.T) {
	p := startServer(t, t.TempDir())
	conn, err := net.Dial("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 100 << 20
	written := make(chan int64, 1)
	go func() {
		chunk := []byte(strings.Repeat("A", 1<<20))
		var n int64
		if k, err := conn.Write([]byte(`{"v":1,"op":"import","name":"x","data":"`)); err == nil {
			n += int64(k)
			for n < size {
				k, err := conn.Write(chunk)
				n += int64(k)
				if err != nil {
					break
				}
			}
		}
		written <- n
	}()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no answer to a 100 MB line: %v", err)
	}
	var resp adminResponse
	if err := json.Unmarshal(b, &resp); err != nil || resp.OK || !strings.Contains(resp.Error, "line longer than 33554432 bytes") {
		t.Fatalf("answer %q (%v), want an error naming the limit", b, err)
	}
	select {
	case n := <-written:
		// The daemon closed the connection after the limit: the rest of
		// the 100 MB was never taken (a few socket buffers at most).
		if n >= size {
			t.Errorf("the daemon took all %d bytes of the line", n)
		}
		t.Logf("client wrote %d MiB before the daemon closed the connection", n>>20)
	case <-time.After(30 * time.Second):
		t.Fatal("the connection was not closed after the error")
	}

	// Connections over the cap are refused with a message, not queued.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range adminMaxConns {
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
		b, _ := bufio.NewReader(c).ReadBytes('\n')
		return strings.Contains(string(b), "connections already open")
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

	// The client refuses an import too large for the socket before sending.
	c, err := Dial(context.Background(), p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Import(context.Background(), "big.csv", make([]byte, adminMaxImport+1), db.ImportOptions{}); err == nil || !strings.Contains(err.Error(), "stop the daemon") {
		t.Errorf("oversized import through the socket: %v", err)
	}
}
