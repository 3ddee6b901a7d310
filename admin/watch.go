package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/stackprint/stackprint/watch"
)

// WatchNotifier is told that the watch list changed (the daemon's
// watch.Runner).
type WatchNotifier interface {
	Changed()
}

// runWatch serves the watch_* operations.
func (s *Server) runWatch(ctx context.Context, req adminRequest) (adminResponse, error) {
	var resp adminResponse
	var err error
	changed := false
	switch req.Op {
	case "watch_add":
		if len(req.Watch) == 0 {
			return resp, fmt.Errorf("admin: op %s needs watch entries", req.Op)
		}
		resp.Watch, err = s.store.WatchAdd(ctx, req.Watch, req.Replace)
		changed = err == nil
		if changed {
			s.log.Info("admin: watch list entries added", "count", len(resp.Watch), "replace", req.Replace)
		}
	case "watch_list":
		resp.Watch, err = s.store.WatchList(ctx)
	case "watch_rm":
		resp.Found, err = s.store.WatchRemove(ctx, req.Key)
		changed = resp.Found
		if changed {
			s.log.Info("admin: no longer watching", "target", req.Key)
		}
	case "watch_accept":
		var e watch.Entry
		e, err = s.store.WatchAccept(ctx, req.Key)
		if err == nil {
			resp.Watch = []watch.Entry{e}
			changed = true
			s.log.Info("admin: watch baseline accepted", "target", req.Key, "jarm", e.Baseline.JARM)
		}
	default:
		return resp, fmt.Errorf("admin: unknown op %q", req.Op)
	}
	if changed && s.watch != nil {
		s.watch.Changed()
	}
	return resp, err
}

// WatchAdd stores entries, all or none (db.DB.WatchAdd).
func (s *Local) WatchAdd(_ context.Context, entries []watch.Entry, replace bool) ([]watch.Entry, error) {
	return s.db.WatchAdd(entries, replace)
}

// WatchList returns the watch list.
func (s *Local) WatchList(context.Context) ([]watch.Entry, error) { return s.db.WatchList() }

// WatchRemove stops watching key; it reports whether it was watched.
func (s *Local) WatchRemove(_ context.Context, key string) (bool, error) {
	return s.db.WatchRemove(key)
}

// WatchAccept makes the last successful probe of key its baseline.
func (s *Local) WatchAccept(_ context.Context, key string) (watch.Entry, error) {
	var out watch.Entry
	found, err := s.db.WatchUpdate(key, func(e *watch.Entry) error {
		next, err := watch.Accept(*e, time.Now().UTC())
		if err != nil {
			return err
		}
		*e, out = next, next
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%s: not watched", key)
	}
	return out, err
}

// WatchAdd is Local.WatchAdd run by the daemon, which probes the new
// entries at once.
func (c *Client) WatchAdd(ctx context.Context, entries []watch.Entry, replace bool) ([]watch.Entry, error) {
	resp, err := c.call(ctx, adminRequest{Op: "watch_add", Watch: entries, Replace: replace})
	return resp.Watch, err
}

// WatchList is Local.WatchList run by the daemon.
func (c *Client) WatchList(ctx context.Context) ([]watch.Entry, error) {
	resp, err := c.call(ctx, adminRequest{Op: "watch_list"})
	return resp.Watch, err
}

// WatchRemove is Local.WatchRemove run by the daemon.
func (c *Client) WatchRemove(ctx context.Context, key string) (bool, error) {
	resp, err := c.call(ctx, adminRequest{Op: "watch_rm", Key: key})
	return resp.Found, err
}

// WatchAccept is Local.WatchAccept run by the daemon.
func (c *Client) WatchAccept(ctx context.Context, key string) (watch.Entry, error) {
	resp, err := c.call(ctx, adminRequest{Op: "watch_accept", Key: key})
	if err != nil {
		return watch.Entry{}, err
	}
	if len(resp.Watch) != 1 {
		return watch.Entry{}, fmt.Errorf("admin: watch_accept: %d entries in the answer, want 1", len(resp.Watch))
	}
	return resp.Watch[0], nil
}
