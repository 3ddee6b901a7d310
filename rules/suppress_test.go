package rules

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

func TestSuppressionWindowChangeAppliesToOpenWindows(t *testing.T) {
	s := newSuppressor(10)
	k := supKey{orig: netip.MustParseAddr("10.0.0.8"), target: stackprint.Target{IP: netip.MustParseAddr("203.0.113.7"), Port: 443}, rule: "db_match"}
	t0 := time.Unix(1700000000, 0)
	if ok, _ := s.allow(k, t0, time.Hour); !ok {
		t.Fatal("first event not alerted")
	}
	if ok, _ := s.allow(k, t0.Add(time.Second), time.Hour); ok {
		t.Fatal("second event inside the hour alerted")
	}
	// A reload shortens the window to 2s: the window opened under the old
	// one ends by the new rule.
	ok, n := s.allow(k, t0.Add(3*time.Second), 2*time.Second)
	if !ok || n != 1 {
		t.Fatalf("after shortening the window: alert=%v suppressed=%d, want true 1", ok, n)
	}
	// An event older than the window's start (conn.log order) is inside it.
	if ok, _ := s.allow(k, t0.Add(2*time.Second), 2*time.Second); ok {
		t.Fatal("out-of-order older event alerted")
	}
}
