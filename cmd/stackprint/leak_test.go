package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/daemon"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/internal/lab"
)

// TestNoGoroutinesLeftAfterShutdown runs the daemon in this process over a
// real log and real servers (one of them a tarpit, so a probe is in flight
// at shutdown) and checks that every goroutine it started has ended.
func TestNoGoroutinesLeftAfterShutdown(t *testing.T) {
	dir := t.TempDir()
	srv := mustServer(t, "leak", "127.0.0.91", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "ecdsa")}})
	counter := &loadCounter{first: map[string]time.Time{}, accepts: map[string][]time.Time{}}
	tarpit := startTarpit(t, "127.0.0.92", counter)
	cfgPath, sslLog, _ := labConfig(t, dir, "allow: []", "allow: [127.0.0.0/8]", "shutdown_timeout: 10s", "shutdown_timeout: 300ms")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// The runtime's signal-delivery goroutine starts with the first
	// signal.Notify and never ends: start it before the baseline.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	signal.Stop(sig)
	time.Sleep(100 * time.Millisecond) // let servers' goroutines settle before the baseline
	before := runtime.NumGoroutine()

	d, err := daemon.New(cfg, slog.New(slog.DiscardHandler), daemon.Options{ConfigPath: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	writeZeekSSLT(t, sslLog, []lab.Conn{
		{UID: "CLeak1", Orig: "127.0.0.1:31001", Resp: srv.Addr, SNI: "a.leak.test"},
		{UID: "CLeak2", Orig: "127.0.0.1:31002", Resp: tarpit, SNI: "b.leak.test"},
	}, true)
	waitFor(t, "both events read", 10*time.Second, func() bool { return d.Stats().Events == 2 })
	waitFor(t, "the tarpit probe in flight", 10*time.Second, func() bool { return d.Stats().InFlight == 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not stop")
	}
	var after int
	deadline := time.Now().Add(5 * time.Second)
	for {
		after = runtime.NumGoroutine()
		if after <= before || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after > before {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		var ours []string
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if !strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "testing.(*M)") {
				ours = append(ours, g)
			}
		}
		t.Fatalf("%d goroutines before, %d after shutdown; left over:\n%s", before, after, strings.Join(ours, "\n\n"))
	}
	if st := d.Stats(); st.Abandoned != 1 {
		t.Errorf("tarpit probe not abandoned at shutdown: %+v", st)
	}
	// The abandoned event was parked for the next run.
	reopened, err := db.Open(cfg.DB.Path, db.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("db not closed at shutdown: %v", err)
	}
	defer reopened.Close()
	pend, err := reopened.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 1 || pend[0].Event.UID != "CLeak2" {
		t.Fatalf("pending after shutdown = %+v, want the tarpit's event CLeak2", pend)
	}
}
