package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// New is stackprint's logger: text or JSON (format) at level (debug,
// info, warn or error) on w, with repeated warnings and errors rate
// limited.
func New(level, format string, w io.Writer) *slog.Logger {
	var lvl slog.Level
	switch level {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if strings.EqualFold(format, "json") {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(newRateLimitHandler(h, 5, 10*time.Second))
}

// rateLimitHandler passes at most burst records with the same message and
// level at Warn or above per window, then counts the rest and reports the
// count with the next record let through. A flood of identical errors (an
// unreadable file, a full disk) must not bury everything else or fill the
// journal.
type rateLimitHandler struct {
	next   slog.Handler
	burst  int
	window time.Duration
	now    func() time.Time
	state  *rateState // shared by handlers derived with WithAttrs/WithGroup
}

type rateState struct {
	mu   sync.Mutex
	seen map[string]*rateEntry
}

type rateEntry struct {
	start      time.Time
	n          int
	suppressed int
}

func newRateLimitHandler(next slog.Handler, burst int, window time.Duration) *rateLimitHandler {
	return &rateLimitHandler{next: next, burst: burst, window: window, now: time.Now,
		state: &rateState{seen: map[string]*rateEntry{}}}
}

func (h *rateLimitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *rateLimitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	key := r.Level.String() + "\x00" + r.Message
	now := h.now()
	h.state.mu.Lock()
	e := h.state.seen[key]
	if e == nil || now.Sub(e.start) >= h.window {
		var carried int
		if e != nil {
			carried = e.suppressed
		}
		e = &rateEntry{start: now}
		h.state.seen[key] = e
		if len(h.state.seen) > 10000 { // bound memory under a flood of distinct messages
			clear(h.state.seen)
			h.state.seen[key] = e
		}
		if carried > 0 {
			r.AddAttrs(slog.Int("suppressed_repeats", carried))
		}
	}
	e.n++
	if e.n > h.burst {
		e.suppressed++
		h.state.mu.Unlock()
		return nil
	}
	h.state.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *rateLimitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *rateLimitHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
