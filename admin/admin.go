// Package admin is the admin socket: while `stackprint run` owns the bbolt file (bbolt locks
// it exclusively), `stackprint db …` sends its changes to the daemon over a
// unix socket instead of opening the file, and they apply at once.
//
// Protocol: JSON lines. The client writes one adminRequest object per line
// and reads one adminResponse per line, in order; a connection may carry
// several requests. Every request names the protocol version ("v":1) and an
// operation ("op"); the response has "ok" and either the result fields or
// "error". Unknown fields and versions are refused. Byte payloads (import
// data, export output) are base64, as encoding/json writes []byte, so a file
// travels unchanged whatever its encoding.
//
//	→ {"v":1,"op":"add","record":{"kind":"jarm","value":"…","label":"x"}}
//	← {"ok":true,"record":{…as stored…},"retro_alerts":2}
//	→ {"v":1,"op":"frobnicate"}
//	← {"ok":false,"error":"admin: unknown op \"frobnicate\""}
//
// Operations: ping, add, rm, list, import, export, stats, check, backup, learn_finished,
// learn_record, learn_scores, learn_reset, learn_promote. add, import and
// learn_promote run a retro-hunt for the fingerprints they wrote.
//
// The socket is created under a temporary name, chmod 0600, then renamed
// into place, so it is never reachable with looser permissions under its
// real name; it is removed when the daemon stops.
package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/stackprint/stackprint/db"
)

const (
	adminProtoVersion = 1
	// adminMaxRequest bounds one request line, so a client cannot make the
	// daemon buffer more: a longer line gets an error and the connection is
	// closed after reading at most this much.
	adminMaxRequest = 32 << 20
	// adminMaxImport is the largest file an import through the socket can
	// carry (base64 in the request, plus the envelope). Larger files are
	// imported with the daemon stopped, or split.
	adminMaxImport = (adminMaxRequest - 1<<20) / 4 * 3
	// adminMaxResponse bounds one response line on the client side: an
	// export of the whole DB, base64-encoded, plus the envelope.
	adminMaxResponse = db.MaxImportBytes/3*4 + 1<<20
	// adminMaxConns bounds the connections served at once (each may hold
	// a request of adminMaxRequest bytes).
	adminMaxConns = 8
	// adminIdle closes a connection that sends nothing for this long.
	adminIdle = time.Minute
	// adminCallTimeout bounds one request on the client side unless its
	// context is shorter: imports with retro-hunts can take a while.
	adminCallTimeout = 5 * time.Minute
	// maxUnixPath is the longest socket path Linux accepts (sun_path less NUL).
	maxUnixPath = 107
)

// adminRequest is one line from the client.
type adminRequest struct {
	V       int                `json:"v"`
	Op      string             `json:"op"`
	Record  *db.Record         `json:"record,omitempty"`  // add
	Kind    string             `json:"kind,omitempty"`    // rm, list
	Value   string             `json:"value,omitempty"`   // rm
	Name    string             `json:"name,omitempty"`    // import: the file name, for messages
	Data    []byte             `json:"data,omitempty"`    // import: the file's bytes
	Import  *db.ImportOptions  `json:"import,omitempty"`  // import
	Export  *db.ExportOptions  `json:"export,omitempty"`  // export
	Role    string             `json:"role,omitempty"`    // learn_finished
	Learn   *db.LearnResult    `json:"learn,omitempty"`   // learn_record
	Promote *db.PromoteOptions `json:"promote,omitempty"` // learn_promote
	Path    string             `json:"path,omitempty"`    // backup: absolute file to write
}

// adminResponse is one line from the daemon.
type adminResponse struct {
	OK       bool             `json:"ok"`
	Error    string           `json:"error,omitempty"`
	Daemon   *adminHello      `json:"daemon,omitempty"`  // ping
	Record   *db.Record       `json:"record,omitempty"`  // add
	Records  []db.Record      `json:"records,omitempty"` // list, learn_promote
	Found    bool             `json:"found,omitempty"`   // rm
	Report   *db.ImportReport `json:"report,omitempty"`  // import
	Data     []byte           `json:"data,omitempty"`    // export
	Count    int              `json:"count,omitempty"`   // export: items written
	Stats    *db.Stats        `json:"stats,omitempty"`   // stats
	Entries  []string         `json:"entries,omitempty"` // learn_finished
	Counted  bool             `json:"counted,omitempty"` // learn_record
	Scores   []db.LearnStats  `json:"scores,omitempty"`  // learn_scores
	Retro    int              `json:"retro_alerts,omitempty"`
	Problems []string         `json:"problems,omitempty"` // check
	Size     int64            `json:"size,omitempty"`     // backup: bytes written
}

// adminHello identifies the daemon answering a ping.
type adminHello struct {
	PID    int    `json:"pid"`
	DB     string `json:"db"`
	Socket string `json:"socket"`
}

// Hunter runs a retro-hunt for fingerprints just written and returns
// the number of alerts it raised.
type Hunter interface {
	RetroHunt(keys []db.Key) (int, error)
}

// ServerConfig is what the admin server serves.
type ServerConfig struct {
	Socket string
	DB     *db.DB
	Hunter Hunter // nil: no retro-hunts
	Logger *slog.Logger
}

// Server serves the admin socket of a running daemon.
type Server struct {
	db     *db.DB
	store  *Local
	hunter Hunter
	log    *slog.Logger
	path   string
	ln     *net.UnixListener
	sock   os.FileInfo // the socket file we created, to remove only ours

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen creates the socket. A daemon that cannot open it logs the error
// and runs on: the CLI then reports the locked file and that no daemon
// answered.
func Listen(cfg ServerConfig) (*Server, error) {
	s := &Server{db: cfg.DB, store: NewLocal(cfg.DB, false), hunter: cfg.Hunter, log: cfg.Logger,
		path: cfg.Socket, conns: map[net.Conn]struct{}{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start serves the socket until ctx ends or the returned stop is called;
// stop waits for in-flight requests and removes the socket.
func (s *Server) Start(ctx context.Context) (stop func()) {
	stopWatch := context.AfterFunc(ctx, s.shutdown)
	s.wg.Go(func() { s.acceptLoop(ctx) })
	return func() {
		stopWatch()
		s.shutdown()
		s.wg.Wait()
		s.removeSocket()
	}
}

// listen binds a temporary name, restricts it to the owner and renames it
// into place. An existing socket that still answers belongs to another
// process and is left alone; a stale one is replaced; anything that is not
// a socket is never replaced.
func (s *Server) listen() error {
	if len(s.path) > maxUnixPath {
		return fmt.Errorf("db.admin_socket %q: %d bytes, unix sockets allow %d", s.path, len(s.path), maxUnixPath)
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	if fi, err := os.Lstat(s.path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return fmt.Errorf("%s exists and is not a socket; refusing to replace it", s.path)
		}
		if c, err := net.DialTimeout("unix", s.path, 500*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("%s: another process answers on it", s.path)
		}
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", filepath.Base(s.path), os.Getpid()))
	if len(tmp) > maxUnixPath {
		tmp = filepath.Join(dir, fmt.Sprintf(".adm%d", os.Getpid()))
	}
	_ = os.Remove(tmp) // a leftover of a crashed run with our pid
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return err
	}
	ln.SetUnlinkOnClose(false) // the socket is renamed; removeSocket cleans up
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return fmt.Errorf("chmod socket: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return fmt.Errorf("move socket into place: %w", err)
	}
	fi, err := os.Lstat(s.path)
	if err != nil {
		ln.Close()
		return err
	}
	s.ln, s.sock = ln, fi
	return nil
}

// shutdown stops accepting and closes every connection; in-flight
// requests finish their DB transaction but cannot answer.
func (s *Server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
}

// removeSocket deletes the socket file if it is still the one we created.
func (s *Server) removeSocket() {
	if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.sock) {
		if err := os.Remove(s.path); err != nil {
			s.log.Warn("remove admin socket", "socket", s.path, "err", err)
		}
	}
}

func (s *Server) acceptLoop(ctx context.Context) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("admin socket accept", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		if len(s.conns) >= adminMaxConns {
			s.mu.Unlock()
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_ = json.NewEncoder(c).Encode(adminResponse{Error: fmt.Sprintf("admin: %d connections already open, try again", adminMaxConns)})
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serveConn(ctx, c)
		})
	}
}

// serveConn answers requests on one connection until it closes, idles or
// sends a malformed line.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	enc := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(adminIdle))
		line, err := readLine(r, adminMaxRequest)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_ = enc.Encode(adminResponse{Error: "admin: " + err.Error()})
			}
			return
		}
		resp := s.handle(ctx, line)
		_ = c.SetWriteDeadline(time.Now().Add(adminIdle))
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

// readLine reads one \n-terminated line of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > max {
			return nil, fmt.Errorf("line longer than %d bytes", max)
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// handle decodes and runs one request.
func (s *Server) handle(ctx context.Context, line []byte) adminResponse {
	var req adminRequest
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return adminResponse{Error: "admin: bad request: " + err.Error()}
	}
	if req.V != adminProtoVersion {
		return adminResponse{Error: fmt.Sprintf("admin: protocol version %d, this daemon speaks %d (same stackprint binary for the CLI and the daemon?)", req.V, adminProtoVersion)}
	}
	resp, err := s.run(ctx, req)
	if err != nil {
		// Keep what the op produced (an import's report lists every
		// rejected line).
		s.log.Warn("admin request failed", "op", req.Op, "err", err)
		resp.OK, resp.Error = false, err.Error()
		return resp
	}
	resp.OK = true
	return resp
}

func (s *Server) run(ctx context.Context, req adminRequest) (adminResponse, error) {
	var resp adminResponse
	need := func(ok bool, what string) error {
		if !ok {
			return fmt.Errorf("admin: op %s needs %s", req.Op, what)
		}
		return nil
	}
	st := s.store
	switch req.Op {
	case "ping":
		resp.Daemon = &adminHello{PID: os.Getpid(), DB: s.db.Path(), Socket: s.path}
	case "add":
		if err := need(req.Record != nil, "record"); err != nil {
			return resp, err
		}
		_, existed, err := s.db.Get(req.Record.Kind, req.Record.Value)
		if err != nil {
			return resp, err
		}
		rec, _, err := st.Add(ctx, *req.Record)
		if err != nil {
			return resp, err
		}
		resp.Record = &rec
		s.log.Info("admin: fingerprint added", "kind", rec.Kind, "value", rec.Value, "label", rec.Label, "confidence", rec.Confidence)
		if existed {
			// An edit (label, confidence): the targets carrying it were
			// judged with it already; a retro-hunt would alert them twice.
			return resp, nil
		}
		resp.Retro, err = s.retroHunt([]db.Key{rec.Key()})
		return resp, err
	case "rm":
		found, err := st.Remove(ctx, req.Kind, req.Value)
		if err != nil {
			return resp, err
		}
		resp.Found = found
		if found {
			s.log.Info("admin: fingerprint removed", "kind", req.Kind, "value", req.Value)
		}
	case "list":
		recs, err := st.List(ctx, req.Kind)
		if err != nil {
			return resp, err
		}
		resp.Records = recs
	case "import":
		o := db.ImportOptions{}
		if req.Import != nil {
			o = *req.Import
		}
		rep, _, err := st.Import(ctx, req.Name, req.Data, o)
		resp.Report = &rep
		if err != nil {
			return resp, err
		}
		s.log.Info("admin: imported", "name", req.Name, "format", rep.Format, "accepted", rep.Accepted, "rejected", len(rep.Rejected))
		resp.Retro, err = s.retroHunt(rep.Keys)
		return resp, err
	case "export":
		if err := need(req.Export != nil, "export options"); err != nil {
			return resp, err
		}
		data, n, err := st.Export(ctx, *req.Export)
		if err != nil {
			return resp, err
		}
		resp.Data, resp.Count = data, n
	case "check":
		problems, err := st.Check(ctx)
		if err != nil {
			return resp, err
		}
		resp.Problems = problems
	case "backup":
		if err := need(filepath.IsAbs(req.Path), "an absolute path"); err != nil {
			return resp, err
		}
		n, err := st.Backup(ctx, req.Path)
		if err != nil {
			return resp, err
		}
		resp.Size = n
	case "stats":
		sts, err := st.Stats(ctx)
		if err != nil {
			return resp, err
		}
		resp.Stats = &sts
	case "learn_finished":
		done, err := st.LearnFinished(ctx, req.Role)
		if err != nil {
			return resp, err
		}
		for e := range done {
			resp.Entries = append(resp.Entries, e)
		}
	case "learn_record":
		if err := need(req.Learn != nil, "learn"); err != nil {
			return resp, err
		}
		counted, err := st.RecordLearn(ctx, *req.Learn)
		if err != nil {
			return resp, err
		}
		resp.Counted = counted
	case "learn_scores":
		scores, err := st.LearnScores(ctx)
		if err != nil {
			return resp, err
		}
		resp.Scores = scores
	case "learn_reset":
		if err := st.ResetLearn(ctx); err != nil {
			return resp, err
		}
		s.log.Info("admin: learn state reset")
	case "learn_promote":
		if err := need(req.Promote != nil, "promote options"); err != nil {
			return resp, err
		}
		recs, _, err := st.Promote(ctx, *req.Promote)
		if err != nil {
			return resp, err
		}
		resp.Records = recs
		keys := make([]db.Key, len(recs))
		for i, r := range recs {
			keys[i] = r.Key()
		}
		s.log.Info("admin: learned fingerprints promoted", "count", len(recs), "label", req.Promote.Label)
		resp.Retro, err = s.retroHunt(keys)
		return resp, err
	default:
		return resp, fmt.Errorf("admin: unknown op %q", req.Op)
	}
	return resp, nil
}

// retroHunt runs the daemon's retro-hunt for keys, if it has one.
func (s *Server) retroHunt(keys []db.Key) (int, error) {
	if s.hunter == nil {
		return 0, nil
	}
	return s.hunter.RetroHunt(keys)
}

// Client talks to a running daemon.
type Client struct {
	path string
	conn net.Conn
	r    *bufio.Reader
}

// ErrNoDaemon means nothing listens on the admin socket.
var ErrNoDaemon = errors.New("no daemon on the admin socket")

// Dial connects to the daemon's socket and checks it answers. It
// returns an error wrapping ErrNoDaemon when the socket is missing or
// stale, so the caller can open the file directly.
func Dial(ctx context.Context, path string) (*Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var dl net.Dialer
	conn, err := dl.DialContext(dctx, "unix", path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOTSOCK):
			return nil, fmt.Errorf("%w (%s)", ErrNoDaemon, path)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("admin socket %s: permission denied: run this as the user the daemon runs as (the socket is mode 0600)", path)
		}
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	c := &Client{path: path, conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	if _, err := c.call(ctx, adminRequest{Op: "ping"}); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// call sends one request and waits for its response.
func (c *Client) call(ctx context.Context, req adminRequest) (adminResponse, error) {
	req.V = adminProtoVersion
	deadline := time.Now().Add(adminCallTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return adminResponse{}, err
	}
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return adminResponse{}, c.wrap(ctx, req.Op, err)
	}
	line, err := readLine(c.r, adminMaxResponse)
	if err != nil {
		return adminResponse{}, c.wrap(ctx, req.Op, err)
	}
	var resp adminResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return adminResponse{}, fmt.Errorf("admin socket %s: %s: bad response: %w", c.path, req.Op, err)
	}
	if !resp.OK {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

func (c *Client) wrap(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("admin socket %s: %s: %w", c.path, op, ctx.Err())
	}
	return fmt.Errorf("admin socket %s: %s: %w", c.path, op, err)
}

// The store methods of the client: the same operations as Local, run by
// the daemon.

func (c *Client) Via() string { return "the running daemon (" + c.path + ")" }
func (c *Client) Live() bool  { return true }
func (c *Client) Close() error {
	return c.conn.Close()
}

func (c *Client) Add(ctx context.Context, r db.Record) (db.Record, int, error) {
	resp, err := c.call(ctx, adminRequest{Op: "add", Record: &r})
	if err != nil {
		return db.Record{}, resp.Retro, err
	}
	return *resp.Record, resp.Retro, nil
}

func (c *Client) Remove(ctx context.Context, kind, value string) (bool, error) {
	resp, err := c.call(ctx, adminRequest{Op: "rm", Kind: kind, Value: value})
	return resp.Found, err
}

func (c *Client) List(ctx context.Context, kind string) ([]db.Record, error) {
	resp, err := c.call(ctx, adminRequest{Op: "list", Kind: kind})
	return resp.Records, err
}

func (c *Client) Import(ctx context.Context, name string, data []byte, o db.ImportOptions) (db.ImportReport, int, error) {
	if len(data) > adminMaxImport {
		return db.ImportReport{Name: name}, 0, fmt.Errorf("import %s: %d MiB is over the %d MiB an import through the running daemon's admin socket takes: split the file, or stop the daemon and import again", name, len(data)>>20, adminMaxImport>>20)
	}
	resp, err := c.call(ctx, adminRequest{Op: "import", Name: name, Data: data, Import: &o})
	var rep db.ImportReport
	if resp.Report != nil {
		rep = *resp.Report
	}
	return rep, resp.Retro, err
}

func (c *Client) Export(ctx context.Context, o db.ExportOptions) ([]byte, int, error) {
	resp, err := c.call(ctx, adminRequest{Op: "export", Export: &o})
	return resp.Data, resp.Count, err
}

func (c *Client) Check(ctx context.Context) ([]string, error) {
	resp, err := c.call(ctx, adminRequest{Op: "check"})
	return resp.Problems, err
}

func (c *Client) Backup(ctx context.Context, path string) (int64, error) {
	resp, err := c.call(ctx, adminRequest{Op: "backup", Path: path})
	return resp.Size, err
}

func (c *Client) Stats(ctx context.Context) (db.Stats, error) {
	resp, err := c.call(ctx, adminRequest{Op: "stats"})
	if err != nil {
		return db.Stats{}, err
	}
	return *resp.Stats, nil
}

func (c *Client) LearnFinished(ctx context.Context, role string) (map[string]bool, error) {
	resp, err := c.call(ctx, adminRequest{Op: "learn_finished", Role: role})
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(resp.Entries))
	for _, e := range resp.Entries {
		out[e] = true
	}
	return out, nil
}

func (c *Client) RecordLearn(ctx context.Context, lr db.LearnResult) (bool, error) {
	resp, err := c.call(ctx, adminRequest{Op: "learn_record", Learn: &lr})
	return resp.Counted, err
}

func (c *Client) LearnScores(ctx context.Context) ([]db.LearnStats, error) {
	resp, err := c.call(ctx, adminRequest{Op: "learn_scores"})
	return resp.Scores, err
}

func (c *Client) ResetLearn(ctx context.Context) error {
	_, err := c.call(ctx, adminRequest{Op: "learn_reset"})
	return err
}

func (c *Client) Promote(ctx context.Context, o db.PromoteOptions) ([]db.Record, int, error) {
	resp, err := c.call(ctx, adminRequest{Op: "learn_promote", Promote: &o})
	return resp.Records, resp.Retro, err
}
