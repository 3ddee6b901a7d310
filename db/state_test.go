package db

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

func TestCommitStateSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs := []stackprint.Event{
		{UID: "C1", TS: time.Unix(1700000000, 500).UTC(), Orig: netip.MustParseAddrPort("10.0.0.1:5000"), Resp: netip.MustParseAddrPort("203.0.113.7:443"), SNI: "a.example", Source: "zeek", File: "/x/ssl.log", Offset: 100},
		{FlowID: 1 << 62, Resp: netip.MustParseAddrPort("[2001:db8::1]:8443"), Source: "eve", Offset: 200},
	}
	keys, err := d.CommitState(map[string][]byte{"zeek": []byte(`{"offset":100}`)}, evs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Fatalf("keys %v", keys)
	}
	// Unpark the first and move the checkpoint in one step.
	if _, err := d.CommitState(map[string][]byte{"zeek": []byte(`{"offset":300}`)}, nil, keys[:1]); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cp, ok, err := d.Checkpoint("zeek")
	if err != nil || !ok || string(cp) != `{"offset":300}` {
		t.Fatalf("checkpoint %q %v %v", cp, ok, err)
	}
	if _, ok, _ := d.Checkpoint("missing"); ok {
		t.Fatal("checkpoint for an unknown input")
	}
	pend, err := d.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 1 || pend[0].Key != keys[1] || pend[0].Event.FlowID != 1<<62 || pend[0].Event.Resp != evs[1].Resp {
		t.Fatalf("pending %+v", pend)
	}
}

func TestObservationRemembersTheClient(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "o.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const j = "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"
	ev := stackprint.Event{UID: "CLient1", Orig: netip.MustParseAddrPort("10.0.0.8:51000"), Source: "zeek-ssl", TS: time.Unix(1700000000, 0).UTC()}
	r := stackprint.Result{Target: stackprint.Target{IP: netip.MustParseAddr("203.0.113.7"), Port: 443}, Started: time.Now(), Status: stackprint.StatusOK, JARM: j}
	if err := d.RecordObservationOf(ev, r); err != nil {
		t.Fatal(err)
	}
	s, err := d.ObservationsWith("jarm", j, time.Time{})
	if err != nil || len(s) != 1 {
		t.Fatalf("sightings %v %v", s, err)
	}
	if c := s[0].Client; c == nil || c.Orig != ev.Orig || c.UID != "CLient1" || c.Source != "zeek-ssl" {
		t.Fatalf("client %+v, want the triggering connection", s[0].Client)
	}
}
