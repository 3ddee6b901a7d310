package enrich_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/probe"
	"github.com/stackprint/stackprint/rules"
)

// recordingDialer refuses every dial and remembers what was asked; with the
// real JARM prober behind the pipeline it proves which addresses would have
// been contacted.
type recordingDialer struct {
	mu    sync.Mutex
	addrs []string
}

func (d *recordingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, address)
	d.mu.Unlock()
	return nil, &net.OpError{Op: "dial", Net: network, Err: errRefused{}}
}

type errRefused struct{}

func (errRefused) Error() string { return "connection refused (test dialer)" }

type nopSink struct{}

func (nopSink) Record(stackprint.Event, stackprint.Result, []stackprint.Match) error { return nil }
func (nopSink) Alert(stackprint.Alert) error                                         { return nil }

type noMatches struct{}

func (noMatches) Match(stackprint.Result) ([]stackprint.Match, error) { return nil, nil }

func TestOutOfScopeAddressesAreNeverDialled(t *testing.T) {
	tests := []struct {
		name      string
		allow     []netip.Prefix
		addr      string
		wantDials bool
	}{
		{name: "cloud metadata", addr: "169.254.169.254:443"},
		{name: "metadata with loopback allowed", allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, addr: "169.254.169.254:80"},
		{name: "private without allow-list", addr: "10.1.2.3:443"},
		{name: "loopback without allow-list", addr: "127.0.0.1:443"},
		{name: "v6 loopback", addr: "[::1]:443"},
		{name: "loopback allow-listed (control)", allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, addr: "127.0.0.1:9", wantDials: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dialer := &recordingDialer{}
			prober, err := probe.NewEngine(probe.EngineConfig{Kinds: []string{"jarm"}, Dialer: dialer, IOTimeout: time.Second, Deadline: 5 * time.Second, ConnRate: -1})
			if err != nil {
				t.Fatal(err)
			}
			p, err := enrich.New(enrich.Config{
				Scope: enrich.NewScope(tc.allow, nil, nil), TTL: time.Hour, Capacity: 100,
				ServerKinds: []string{"jarm"}, ServerCost: prober.Conns(nil),
				MaxInFlight: 2, ProbesPerSecond: 100, Burst: 10, Deadline: 5 * time.Second,
			}, prober, noMatches{}, rules.Engine{}, nopSink{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- p.Run(ctx) }()
			ev := stackprint.Event{UID: "Cx", Orig: netip.MustParseAddrPort("127.0.0.1:5555"), Resp: netip.MustParseAddrPort(tc.addr)}
			if err := p.Handle(ctx, ev); err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			if err := p.WaitIdle(wctx); err != nil {
				t.Fatal(err)
			}
			wcancel()
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			dialer.mu.Lock()
			defer dialer.mu.Unlock()
			if tc.wantDials && len(dialer.addrs) == 0 {
				t.Fatal("control case: the allowed target was not dialled, so the test proves nothing")
			}
			if !tc.wantDials && len(dialer.addrs) != 0 {
				t.Fatalf("out-of-scope %s was dialled: %v", tc.addr, dialer.addrs)
			}
		})
	}
}
