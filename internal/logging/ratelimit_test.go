package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRepeatedErrorsAreRateLimited(t *testing.T) {
	var buf bytes.Buffer
	h := newRateLimitHandler(slog.NewTextHandler(&buf, nil), 3, time.Minute)
	now := time.Unix(1700000000, 0)
	h.now = func() time.Time { return now }
	log := slog.New(h)
	for range 100 {
		log.Error("disk full", "path", "/x")
	}
	log.Info("other info")
	log.Warn("other warning")
	if got := strings.Count(buf.String(), "disk full"); got != 3 {
		t.Fatalf("%d 'disk full' lines, want 3:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "other info") || !strings.Contains(buf.String(), "other warning") {
		t.Fatal("other messages were suppressed")
	}
	now = now.Add(2 * time.Minute)
	log.Error("disk full", "path", "/x")
	if !strings.Contains(buf.String(), "suppressed_repeats=97") {
		t.Fatalf("next window does not report the suppressed count:\n%s", buf.String())
	}
	for range 50 {
		log.Info("chatty info")
	}
	if got := strings.Count(buf.String(), "chatty info"); got != 50 {
		t.Fatalf("info lines are not limited, got %d", got)
	}
}
