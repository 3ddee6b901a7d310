package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/explain"
)

const (
	// apiVersion prefixes every route; a daemon and a CLI of different
	// API versions get 404 rather than a misread request.
	apiVersion = "v1"
	// maxImport bounds an import's body: larger files are imported with
	// the daemon stopped, or split.
	maxImport = 32 << 20
	// maxJSON bounds every other request body.
	maxJSON = 1 << 20
	// maxConns bounds the connections served at once (each may hold a
	// body of maxImport bytes); one more is answered 503 and closed.
	maxConns = 8
	// Timeouts of one connection: the headers, the whole request, the
	// answer (an import's retro-hunt can take a while) and keep-alive.
	readHeaderTimeout = 5 * time.Second
	readTimeout       = time.Minute
	writeTimeout      = 5 * time.Minute
	idleTimeout       = time.Minute
	// shutdownGrace lets requests in flight answer when the daemon stops.
	shutdownGrace = 5 * time.Second
	// maxUnixPath is the longest socket path Linux accepts (sun_path less NUL).
	maxUnixPath = 107
)

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
	// Rules gives explain the definitions of the rules alerts name (the
	// running rule set); nil: explain shows none.
	Rules explain.Rules
	// Watch is told when the watch list changed, so the daemon probes new
	// entries at once (watch.go); nil: nobody to tell.
	Watch WatchNotifier
	// Backfill judges the servers of backfill jobs (backfill.go); nil:
	// the routes answer 501.
	Backfill Backfiller
	Logger   *slog.Logger
}

// Server serves the admin API of a running daemon.
type Server struct {
	db     *db.DB
	store  *Local
	hunter Hunter
	watch  WatchNotifier
	log    *slog.Logger
	path   string
	ln     *net.UnixListener
	sock   os.FileInfo // the socket file we created, to remove only ours
	http   *http.Server
	once   sync.Once

	backfiller Backfiller
	jobs       jobs
	jobCtx     context.Context // ends when the daemon stops: jobs end with it
	stopJobs   context.CancelFunc
	jobWG      sync.WaitGroup // running jobs, waited for by stop
	jobMu      sync.Mutex     // jobWG.Add against stop's Wait
	stopped    bool
}

// Listen creates the socket. A daemon that cannot open it logs the error
// and runs on: the CLI then reports the locked file and that no daemon
// answered.
func Listen(cfg ServerConfig) (*Server, error) {
	s := &Server{db: cfg.DB, store: NewLocal(cfg.DB, false), hunter: cfg.Hunter, watch: cfg.Watch, log: cfg.Logger, path: cfg.Socket,
		backfiller: cfg.Backfill}
	s.store.SetRules(cfg.Rules)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// A backfill upload watches its connection (backfill.go).
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
	}
	return s, nil
}

// Start serves the socket until ctx ends or the returned stop is called;
// stop lets requests in flight answer (up to a few seconds) and removes
// the socket.
func (s *Server) Start(ctx context.Context) (stop func()) {
	s.jobCtx, s.stopJobs = context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.http.Serve(newLimitListener(s.ln, maxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin socket", "socket", s.path, "err", err)
		}
	}()
	stopWatch := context.AfterFunc(ctx, s.shutdown)
	return func() {
		stopWatch()
		s.stopJobs() // a backfill upload would hold the shutdown for its grace
		s.jobMu.Lock()
		s.stopped = true
		s.jobMu.Unlock()
		s.shutdown()
		<-done
		s.jobWG.Wait() // no job writes to the DB or the outputs once stopped
		s.removeSocket()
	}
}

func (s *Server) shutdown() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			_ = s.http.Close()
		}
	})
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

// removeSocket deletes the socket file if it is still the one we created.
func (s *Server) removeSocket() {
	if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.sock) {
		if err := os.Remove(s.path); err != nil {
			s.log.Warn("remove admin socket", "socket", s.path, "err", err)
		}
	}
}

// limitListener serves at most n connections at once. One more is
// answered 503 and closed at once rather than queued behind the others,
// so a client learns the daemon is busy instead of hanging.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n)}
}

var busyResponse = func() string {
	body := fmt.Sprintf(`{"error":"admin: %d connections already open, try again"}`, maxConns) + "\n"
	return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, busyResponse)
			c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Hello identifies the daemon answering a ping.
type Hello struct {
	PID    int    `json:"pid"`
	DB     string `json:"db"`
	Socket string `json:"socket"`
	API    string `json:"api"`
}

// Response bodies of the routes that return more than one thing.
type (
	addResponse struct {
		Record db.Record `json:"record"`
		Retro  int       `json:"retro_alerts"`
	}
	importResponse struct {
		Report db.ImportReport `json:"report"`
		Retro  int             `json:"retro_alerts"`
		Error  string          `json:"error,omitempty"`
	}
	promoteResponse struct {
		Records []db.Record `json:"records"`
		Retro   int         `json:"retro_alerts"`
	}
	errorResponse struct {
		Error string `json:"error"`
	}
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	v := "/" + apiVersion
	mux.HandleFunc("GET "+v+"/ping", s.ping)
	mux.HandleFunc("GET "+v+"/fingerprints", s.list)
	mux.HandleFunc("POST "+v+"/fingerprints", s.add)
	mux.HandleFunc("DELETE "+v+"/fingerprints/{kind}/{value}", s.remove)
	mux.HandleFunc("POST "+v+"/import", s.importFile)
	mux.HandleFunc("GET "+v+"/export", s.export)
	mux.HandleFunc("GET "+v+"/stats", s.stats)
	mux.HandleFunc("GET "+v+"/check", s.check)
	mux.HandleFunc("POST "+v+"/backup", s.backup)
	mux.HandleFunc("GET "+v+"/learn/finished", s.learnFinished)
	mux.HandleFunc("POST "+v+"/learn/results", s.learnRecord)
	mux.HandleFunc("GET "+v+"/learn/scores", s.learnScores)
	mux.HandleFunc("POST "+v+"/learn/reset", s.learnReset)
	mux.HandleFunc("POST "+v+"/learn/promote", s.learnPromote)
	mux.HandleFunc("GET "+v+"/explain", s.explain)
	s.watchRoutes(mux, v)    // watch.go
	s.backfillRoutes(mux, v) // backfill.go
	return mux
}

// reply writes v as JSON with code.
func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// fail answers an error: code, or 413 for a body over its limit.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		code = http.StatusRequestEntityTooLarge
	}
	if code >= 500 {
		s.log.Warn("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	reply(w, code, errorResponse{Error: "admin: " + err.Error()})
}

// decode reads a JSON body of at most maxJSON bytes, refusing unknown
// fields and trailing data.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return err
		}
		return fmt.Errorf("bad request body: %w", err)
	}
	if dec.More() {
		return errors.New("bad request body: data after the JSON value")
	}
	return nil
}

func (s *Server) ping(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, Hello{PID: os.Getpid(), DB: s.db.Path(), Socket: s.path, API: apiVersion})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	recs, err := s.store.List(r.Context(), r.URL.Query().Get("kind"))
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, struct {
		Records []db.Record `json:"records"`
	}{recs})
}

func (s *Server) add(w http.ResponseWriter, r *http.Request) {
	var rec db.Record
	if err := decode(w, r, &rec); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	if err := db.ValidateRecord(&rec); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	_, existed, err := s.db.Get(rec.Kind, rec.Value)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	stored, _, err := s.store.Add(r.Context(), rec)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.log.Info("admin: fingerprint added", "kind", stored.Kind, "value", stored.Value, "label", stored.Label, "confidence", stored.Confidence)
	resp := addResponse{Record: stored}
	if !existed {
		// An edit (label, confidence) is not hunted: the targets carrying
		// it were judged with it already and would be alerted twice.
		if resp.Retro, err = s.retroHunt([]db.Key{stored.Key()}); err != nil {
			s.fail(w, r, http.StatusInternalServerError, err)
			return
		}
	}
	reply(w, http.StatusOK, resp)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	k, err := db.NormaliseKey(r.PathValue("kind"), r.PathValue("value"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	found, err := s.store.Remove(r.Context(), k.Kind, k.Value)
	switch {
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, err)
	case !found:
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("no %s entry %q", k.Kind, k.Value))
	default:
		s.log.Info("admin: fingerprint removed", "kind", k.Kind, "value", k.Value)
		reply(w, http.StatusOK, struct {
			Found bool `json:"found"`
		}{true})
	}
}

func (s *Server) importFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := db.ImportOptions{Format: q.Get("format"), Source: q.Get("source"), Confidence: q.Get("confidence"),
		Category: q.Get("category"), Label: q.Get("label")}
	for _, b := range []struct {
		name string
		v    *bool
	}{{"partial", &o.Partial}, {"replace", &o.Replace}} {
		if v := q.Get(b.name); v != "" {
			x, err := strconv.ParseBool(v)
			if err != nil {
				s.fail(w, r, http.StatusBadRequest, fmt.Errorf("%s=%q: want true or false", b.name, v))
				return
			}
			*b.v = x
		}
	}
	name := q.Get("name")
	if name == "" {
		name = "request body"
	}
	// The body is read into one buffer of its announced length, so an
	// import costs its size in memory and a larger one is refused unread.
	switch {
	case r.ContentLength < 0:
		s.fail(w, r, http.StatusLengthRequired, errors.New("import needs a Content-Length (curl --data-binary @FILE sends one)"))
		return
	case r.ContentLength > maxImport:
		s.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("import of %d bytes: the admin API takes at most %d; split the file, or stop the daemon and import it directly", r.ContentLength, maxImport))
		return
	}
	data := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(http.MaxBytesReader(w, r.Body, maxImport), data); err != nil {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("read import body: %w", err))
		return
	}
	rep, _, err := s.store.Import(r.Context(), name, data, o)
	if err != nil {
		code := http.StatusInternalServerError
		if len(rep.Rejected) > 0 {
			code = http.StatusUnprocessableEntity
		}
		s.log.Warn("admin: import refused", "name", name, "err", err)
		reply(w, code, importResponse{Report: rep, Error: "admin: " + err.Error()})
		return
	}
	s.log.Info("admin: imported", "name", name, "format", rep.Format, "accepted", rep.Accepted, "rejected", len(rep.Rejected))
	resp := importResponse{Report: rep}
	if resp.Retro, err = s.retroHunt(rep.Keys); err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, resp)
}

// countHeader carries the number of items an export wrote.
const countHeader = "Stackprint-Count"

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := db.ExportOptions{Format: q.Get("format"), Kind: q.Get("kind"), MinConfidence: q.Get("min_confidence"), IntelSource: q.Get("intel_source")}
	if o.Format == "" {
		s.fail(w, r, http.StatusBadRequest, errors.New("export needs format"))
		return
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("since=%q: want an RFC 3339 time", v))
			return
		}
		o.Since = t
	}
	data, n, err := s.store.Export(r.Context(), o)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err) // the options are all an export can get wrong
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(countHeader, strconv.Itoa(n))
	_, _ = w.Write(data)
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	st, err := s.store.Stats(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, st)
}

func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	problems, err := s.store.Check(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, struct {
		Problems []string `json:"problems"`
	}{problems})
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path string `json:"path"`
	}
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	if !filepath.IsAbs(req.Path) {
		// The daemon writes the file: a relative path would depend on its
		// working directory.
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("backup needs an absolute path, got %q", req.Path))
		return
	}
	n, err := s.store.Backup(r.Context(), req.Path)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, struct {
		Size int64 `json:"size"`
	}{n})
}

func (s *Server) learnFinished(w http.ResponseWriter, r *http.Request) {
	role := r.URL.Query().Get("role")
	if role != db.RoleBlock && role != db.RoleTop {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("role=%q: want %q or %q", role, db.RoleBlock, db.RoleTop))
		return
	}
	done, err := s.store.LearnFinished(r.Context(), role)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	entries := make([]string, 0, len(done))
	for e := range done {
		entries = append(entries, e)
	}
	reply(w, http.StatusOK, struct {
		Entries []string `json:"entries"`
	}{entries})
}

func (s *Server) learnRecord(w http.ResponseWriter, r *http.Request) {
	var lr db.LearnResult
	if err := decode(w, r, &lr); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	counted, err := s.store.RecordLearn(r.Context(), lr)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, struct {
		Counted bool `json:"counted"`
	}{counted})
}

func (s *Server) learnScores(w http.ResponseWriter, r *http.Request) {
	scores, err := s.store.LearnScores(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, struct {
		Scores []db.LearnStats `json:"scores"`
	}{scores})
}

func (s *Server) learnReset(w http.ResponseWriter, r *http.Request) {
	if err := s.store.ResetLearn(r.Context()); err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.log.Info("admin: learn state reset")
	reply(w, http.StatusOK, struct{}{})
}

func (s *Server) learnPromote(w http.ResponseWriter, r *http.Request) {
	var o db.PromoteOptions
	if err := decode(w, r, &o); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	recs, _, err := s.store.Promote(r.Context(), o)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	keys := make([]db.Key, len(recs))
	for i, rec := range recs {
		keys[i] = rec.Key()
	}
	s.log.Info("admin: learned fingerprints promoted", "count", len(recs), "label", o.Label)
	resp := promoteResponse{Records: recs}
	if resp.Retro, err = s.retroHunt(keys); err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, resp)
}

// explain answers ?q=TARGET|ALERT_ID|FINGERPRINT with an explain.Report;
// a malformed or unknown query is 404 with the reason.
func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	if q == "" {
		s.fail(w, r, http.StatusBadRequest, errors.New("explain: q (a server, an alert id or a fingerprint) is required"))
		return
	}
	rep, err := s.store.Explain(r.Context(), q)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, err)
		return
	}
	reply(w, http.StatusOK, rep)
}

// retroHunt runs the daemon's retro-hunt for keys, if it has one.
func (s *Server) retroHunt(keys []db.Key) (int, error) {
	if s.hunter == nil || len(keys) == 0 {
		return 0, nil
	}
	return s.hunter.RetroHunt(keys)
}
