package watch_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/watch"
)

type alertLog struct {
	mu sync.Mutex
	as []stackprint.Alert
}

func (l *alertLog) Alert(a stackprint.Alert) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.as = append(l.as, a)
	return nil
}

func (l *alertLog) all() []stackprint.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]stackprint.Alert(nil), l.as...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The runner re-probes a watched server on its schedule from a real bbolt
// file: the baseline is recorded, a restart with another configuration
// raises one drift alert, a removed entry is no longer probed.
func TestRunnerRecordsBaselineAndRaisesDrift(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "fp.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := newTLSServer(t)
	cert := certOf(t, newKey(t), 1, time.Now().Add(365*24*time.Hour))
	s.start(&tls.Config{Certificates: []tls.Certificate{cert}}, "nginx")
	e := entryOf(s)
	e.Every = time.Second
	if _, err := d.WatchAdd([]watch.Entry{e}, false); err != nil {
		t.Fatal(err)
	}
	sink := &alertLog{}
	r := watch.NewRunner(d, newEngine(t), sink, watch.DefaultPolicy(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	stored := func() watch.Entry {
		list, err := d.WatchList()
		if err != nil || len(list) != 1 {
			t.Fatalf("list %v %v", list, err)
		}
		return list[0]
	}
	waitFor(t, "the baseline", func() bool { return stored().Baseline != nil })
	s.start(&tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, "nginx")
	waitFor(t, "the drift alert", func() bool { return len(sink.all()) > 0 })
	// Two more probes of the same drifted server: still one alert.
	p0 := r.Stats().Probes
	waitFor(t, "two more probes", func() bool { return r.Stats().Probes >= p0+2 })
	as := sink.all()
	if len(as) != 1 || as[0].Rule != watch.RuleDrift || !strings.Contains(as[0].Detail, "ClientHellos changed") {
		t.Fatalf("alerts %v", as)
	}
	if st := r.Stats(); st.Watched != 1 || st.Probes < 3 {
		t.Fatalf("runner stats %+v", st)
	}
	if st := stored().State; st.Drift == nil || st.LastStatus != "ok" {
		t.Fatalf("state %+v", st)
	}
	if _, err := d.WatchRemove(e.Key()); err != nil {
		t.Fatal(err)
	}
	r.Changed()
	time.Sleep(200 * time.Millisecond) // a probe in flight may still end
	p1 := r.Stats().Probes
	time.Sleep(2500 * time.Millisecond)
	if p2 := r.Stats().Probes; p2 != p1 {
		t.Fatalf("a removed entry was probed %d more times", p2-p1)
	}
}

// A new default interval (config reload) reschedules the entries on the
// default at once: a server probed under an hour's interval is probed
// again within seconds of SetPolicy shortening it, not an hour later.
func TestRunnerSetPolicyReschedules(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "fp.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := newTLSServer(t)
	s.start(&tls.Config{Certificates: []tls.Certificate{certOf(t, newKey(t), 1, time.Now().Add(365*24*time.Hour))}}, "nginx")
	if _, err := d.WatchAdd([]watch.Entry{entryOf(s)}, false); err != nil {
		t.Fatal(err)
	}
	r := watch.NewRunner(d, newEngine(t), &alertLog{}, watch.DefaultPolicy(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "the first probe", func() bool { return r.Stats().Probes == 1 })
	time.Sleep(time.Second)
	if n := r.Stats().Probes; n != 1 {
		t.Fatalf("%d probes under an hour's interval", n)
	}
	pol := watch.DefaultPolicy()
	pol.Every = 500 * time.Millisecond
	r.SetPolicy(pol)
	waitFor(t, "two more probes at the new interval", func() bool { return r.Stats().Probes >= 3 })
}
