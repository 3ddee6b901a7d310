package admin

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/watch"
)

type countChanges struct{ n atomic.Int32 }

func (c *countChanges) Changed() { c.n.Add(1) }

// The watch routes over the socket: add (409 when watched, 400 for a bad
// entry), list, accept before any probe (409), rm (then 404); every change
// tells the daemon's runner.
func TestWatchRoutes(t *testing.T) {
	dir := t.TempDir()
	d, err := db.Open(filepath.Join(dir, "stackprint.db"), db.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	changes := &countChanges{}
	sock := filepath.Join(dir, "admin.sock")
	s, err := Listen(ServerConfig{Socket: sock, DB: d, Watch: changes})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := s.Start(ctx)
	defer func() { cancel(); stop() }()
	c, err := Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e := watch.Entry{Addr: netip.MustParseAddrPort("192.0.2.10:443"), SNI: "www.example.org", Label: "web", Every: time.Minute}
	added, err := c.WatchAdd(ctx, []watch.Entry{e}, false)
	if err != nil || len(added) != 1 || added[0].Key() != "192.0.2.10:443/www.example.org" || changes.n.Load() != 1 {
		t.Fatalf("add: %v %v (%d changes)", added, err, changes.n.Load())
	}
	if _, err := c.WatchAdd(ctx, []watch.Entry{e}, false); !statusIs(err, http.StatusConflict) {
		t.Fatalf("second add: %v", err)
	}
	if _, err := c.WatchAdd(ctx, []watch.Entry{{Addr: netip.MustParseAddrPort("192.0.2.11:443"), Every: time.Millisecond}}, false); !statusIs(err, http.StatusBadRequest) {
		t.Fatalf("bad entry: %v", err)
	}
	list, err := c.WatchList(ctx)
	if err != nil || len(list) != 1 || list[0].Label != "web" {
		t.Fatalf("list: %v %v", list, err)
	}
	if _, err := c.WatchAccept(ctx, e.Key()); !statusIs(err, http.StatusConflict) {
		t.Fatalf("accept before a probe: %v", err)
	}
	if found, err := c.WatchRemove(ctx, e.Key()); !found || err != nil || changes.n.Load() != 2 {
		t.Fatalf("rm: %v %v", found, err)
	}
	if found, err := c.WatchRemove(ctx, e.Key()); found || err != nil {
		t.Fatalf("rm twice: %v %v", found, err)
	}
	if _, err := c.WatchAccept(ctx, e.Key()); !statusIs(err, http.StatusNotFound) {
		t.Fatalf("accept of an unwatched target: %v", err)
	}
}

func statusIs(err error, code int) bool {
	se, ok := errors.AsType[*StatusError](err)
	return ok && se.Status == code
}
