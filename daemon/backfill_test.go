package daemon_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/backfill"
	"github.com/stackprint/stackprint/internal/lab"
)

// tarpit accepts connections and never answers: a probe of it lasts until
// its I/O timeout.
func tarpit(t *testing.T, ip string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// A backfill job and live traffic at once: the job's probes queue as one
// client of the scheduler's fair queue, one at a time (a quarter of
// max_in_flight 4), so a live connection to the C2 is judged while the job
// is still busy with slow servers; the job's alert is marked backfill, the
// live one is not, and the job's summary counts what it did.
func TestBackfillBesideLiveTraffic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	servers, dbPath := demoLab(ctx, t, dir)
	c2 := servers[1]
	logPath := filepath.Join(dir, "ssl.log")
	if err := lab.WriteZeekSSL(logPath, nil, true); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`db:
  path: %s
inputs:
  - name: ssl
    path: %s
    format: zeek
scope:
  allow: [127.0.0.0/8]
scheduler:
  max_in_flight: 4
probe:
  io_timeout: 1s
outputs:
  alerts: %s
  fingerprints: %s
metrics:
  listen: ""
log:
  level: warn
`, dbPath, logPath, filepath.Join(dir, "alerts.ndjson"), filepath.Join(dir, "stackprint.log")))

	r := start(ctx, t, cfgPath)
	// The C2 first, then six servers that never answer.
	at := time.Now().Add(-24 * time.Hour)
	job := []backfill.Server{{Count: 1, Events: []stackprint.Event{{TS: at, UID: "CBackfill", Orig: netip.MustParseAddrPort("127.0.2.1:40000"), Resp: c2.Addr, Backfill: true}}}}
	for i := range 6 {
		ev := stackprint.Event{TS: at, UID: fmt.Sprintf("CSlow%d", i), Orig: netip.MustParseAddrPort("127.0.2.1:40001"), Resp: tarpit(t, fmt.Sprintf("127.0.12.%d", i+1)), Backfill: true}
		job = append(job, backfill.Server{Count: 1, Events: []stackprint.Event{ev}})
	}
	var (
		sum     backfill.Summary
		jobErr  error
		jobDone = make(chan struct{})
	)
	go func() {
		defer close(jobDone)
		sum, jobErr = r.d.Backfill(ctx, "test-job", len(job), slices.Values(job), func(backfill.Progress) {})
	}()
	waitAlert := func(uid string) stackprint.Alert {
		t.Helper()
		for {
			r.mu.Lock()
			for _, a := range r.all {
				if a.Event.UID == uid && a.Rule == "db_match" {
					r.mu.Unlock()
					return a
				}
			}
			r.mu.Unlock()
			select {
			case <-ctx.Done():
				t.Fatalf("no db_match alert for %s", uid)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if a := waitAlert("CBackfill"); !a.Event.Backfill {
		t.Errorf("the job's alert is not marked backfill: %+v", a)
	}
	// The job is on its slow servers now; a live connection to the C2.
	appendConns(t, logPath, lab.Conn{UID: "CLive", Orig: "127.0.3.1:50000", Resp: c2.Addr, SNI: "x.demo.test"})
	live := waitAlert("CLive")
	select {
	case <-jobDone:
		t.Errorf("the live connection was judged only after the backfill job ended (%+v, %v)", sum, jobErr)
	default:
	}
	if live.Event.Backfill {
		t.Errorf("the live alert is marked backfill: %+v", live)
	}
	<-jobDone
	if jobErr != nil || sum.Servers != 7 || sum.Probed != 7 || sum.ProbeOK != 1 || sum.Alerts != 1 {
		t.Errorf("job summary %+v, %v: want 7 servers probed, 1 answering, 1 alert", sum, jobErr)
	}
	r.stop(t)
}
