package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/watch"
)

// WatchNotifier is told that the watch list changed (the daemon's
// watch.Runner).
type WatchNotifier interface {
	Changed()
}

type watchList struct {
	Watch []watch.Entry `json:"watch"`
}

type watchAdd struct {
	Entries []watch.Entry `json:"entries"`
}

func (s *Server) watchRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("GET "+v+"/watch", s.watchList)
	mux.HandleFunc("POST "+v+"/watch", s.watchAdd)
	mux.HandleFunc("DELETE "+v+"/watch", s.watchRemove)
	mux.HandleFunc("POST "+v+"/watch/accept", s.watchAccept)
}

func (s *Server) watchChanged() {
	if s.watch != nil {
		s.watch.Changed()
	}
}

func (s *Server) watchList(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.WatchList(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, watchList{list})
}

func (s *Server) watchAdd(w http.ResponseWriter, r *http.Request) {
	var req watchAdd
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	replace := false
	if v := r.URL.Query().Get("replace"); v != "" {
		var err error
		if replace, err = strconv.ParseBool(v); err != nil {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("replace=%q: want true or false", v))
			return
		}
	}
	if len(req.Entries) == 0 {
		s.fail(w, r, http.StatusBadRequest, errors.New("no entries"))
		return
	}
	var bad []error
	for i := range req.Entries {
		if err := req.Entries[i].Validate(); err != nil {
			bad = append(bad, err)
		}
	}
	if len(bad) > 0 {
		s.fail(w, r, http.StatusBadRequest, errors.Join(bad...))
		return
	}
	added, err := s.store.WatchAdd(r.Context(), req.Entries, replace)
	switch {
	case errors.Is(err, db.ErrWatchExists):
		s.fail(w, r, http.StatusConflict, err)
		return
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.log.Info("admin: watch list entries added", "count", len(added), "replace", replace)
	s.watchChanged()
	reply(w, http.StatusOK, watchList{added})
}

func (s *Server) watchRemove(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("target")
	found, err := s.store.WatchRemove(r.Context(), key)
	switch {
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, err)
	case !found:
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("%s: not watched", key))
	default:
		s.log.Info("admin: no longer watching", "target", key)
		s.watchChanged()
		reply(w, http.StatusOK, struct {
			Found bool `json:"found"`
		}{true})
	}
}

func (s *Server) watchAccept(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("target")
	e, err := s.store.WatchAccept(r.Context(), key)
	switch {
	case errors.Is(err, db.ErrNotWatched):
		s.fail(w, r, http.StatusNotFound, err)
	case errors.Is(err, watch.ErrNoProbeYet):
		s.fail(w, r, http.StatusConflict, err)
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, err)
	default:
		s.log.Info("admin: watch baseline accepted", "target", key, "jarm", e.Baseline.JARM)
		s.watchChanged()
		reply(w, http.StatusOK, watchList{[]watch.Entry{e}})
	}
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
		err = fmt.Errorf("%s: %w", key, db.ErrNotWatched)
	}
	return out, err
}

// WatchAdd is Local.WatchAdd run by the daemon, which probes the new
// entries at once.
func (c *Client) WatchAdd(ctx context.Context, entries []watch.Entry, replace bool) ([]watch.Entry, error) {
	body, err := jsonBody(watchAdd{entries})
	if err != nil {
		return nil, err
	}
	var resp watchList
	q := url.Values{}
	if replace {
		q.Set("replace", "true")
	}
	err = c.call(ctx, http.MethodPost, "/watch", q, body, &resp)
	return resp.Watch, err
}

// WatchList is Local.WatchList run by the daemon.
func (c *Client) WatchList(ctx context.Context) ([]watch.Entry, error) {
	var resp watchList
	err := c.call(ctx, http.MethodGet, "/watch", nil, nil, &resp)
	return resp.Watch, err
}

// WatchRemove is Local.WatchRemove run by the daemon.
func (c *Client) WatchRemove(ctx context.Context, key string) (bool, error) {
	err := c.call(ctx, http.MethodDelete, "/watch", url.Values{"target": {key}}, nil, nil)
	if se, ok := errors.AsType[*StatusError](err); ok && se.Status == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// WatchAccept is Local.WatchAccept run by the daemon.
func (c *Client) WatchAccept(ctx context.Context, key string) (watch.Entry, error) {
	var resp watchList
	if err := c.call(ctx, http.MethodPost, "/watch/accept", url.Values{"target": {key}}, nil, &resp); err != nil {
		return watch.Entry{}, err
	}
	if len(resp.Watch) != 1 {
		return watch.Entry{}, fmt.Errorf("admin: watch accept: %d entries in the answer, want 1", len(resp.Watch))
	}
	return resp.Watch[0], nil
}
