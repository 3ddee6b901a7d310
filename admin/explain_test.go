package admin

import (
	"context"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
)

// explain through the running daemon's socket answers what explain on the
// file answers.
func TestAdminExplain(t *testing.T) {
	p := startServer(t, t.TempDir())
	const jarm = "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"
	if err := p.db.Add(db.Record{Kind: "jarm", Value: jarm, Label: "cobalt-strike", Confidence: "high"}); err != nil {
		t.Fatal(err)
	}
	ev := stackprint.Event{TS: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), UID: "Cx1", Orig: netip.MustParseAddrPort("10.0.0.5:5000"),
		Resp: netip.MustParseAddrPort("192.0.2.10:443"), Source: "zeek-ssl"}
	r := stackprint.Result{Target: ev.Target(), Started: ev.TS, Status: stackprint.StatusOK, JARM: jarm}
	if err := p.db.RecordObservationOf(ev, r); err != nil {
		t.Fatal(err)
	}
	a := stackprint.NewAlert(stackprint.Verdict{Rule: "db_match", Severity: "high", Match: stackprint.Match{Kind: "jarm", Value: jarm, Label: "cobalt-strike"}}, ev, r, ev.TS)
	if err := p.db.RecordAlert(a); err != nil {
		t.Fatal(err)
	}
	c, err := Dial(context.Background(), p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := NewLocal(p.db, false)
	for _, q := range []string{"192.0.2.10", a.ID, jarm, "192.0.2.99:443"} {
		got, err := c.Explain(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		want, err := local.Explain(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		// Compare as the wire carries them.
		if !reflect.DeepEqual(roundTrip(t, got), roundTrip(t, want)) {
			t.Errorf("%s: through the socket %+v\non the file %+v", q, got, want)
		}
	}
	if _, err := c.Explain(context.Background(), "not-a-target"); err == nil || !strings.Contains(err.Error(), "want an alert id") {
		t.Errorf("bad query: %v", err)
	}
	if _, err := c.Explain(context.Background(), strings.Repeat("ab", 16)); err == nil || !strings.Contains(err.Error(), "no alert") {
		t.Errorf("unknown alert: %v", err)
	}
}

func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
