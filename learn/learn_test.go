package learn

import (
	"context"
	"crypto/tls"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/stackprint/stackprint/admin"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/internal/lab"
	"github.com/stackprint/stackprint/probe"
)

// noDNS fails every lookup: the lists here name addresses, and one name
// that must come out as unresolved.
type noDNS struct{}

func (noDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, context.DeadlineExceeded
}

// TestLearnerRecordsEveryEntry probes loopback TLS servers of two stacks
// through the real probe engine into a real DB: two block-listed servers
// share a stack, a top-list server runs another; an entry out of scope
// and a name that does not resolve are recorded without a probe. The
// scores come out B/(B+T) per JARM.
func TestLearnerRecordsEveryEntry(t *testing.T) {
	certX, err := lab.SelfSigned("rsa", "x.lab")
	if err != nil {
		t.Fatal(err)
	}
	certY, err := lab.SelfSigned("ecdsa", "y.lab")
	if err != nil {
		t.Fatal(err)
	}
	stackX := &tls.Config{Certificates: []tls.Certificate{certX}, MaxVersion: tls.VersionTLS12}
	stackY := &tls.Config{Certificates: []tls.Certificate{certY}, NextProtos: []string{"h2"}}
	var block, top []db.ListEntry
	for i, c := range []struct {
		ip   string
		cfg  *tls.Config
		list *[]db.ListEntry
	}{{"127.0.7.1", stackX, &block}, {"127.0.7.2", stackX, &block}, {"127.0.7.3", stackY, &top}} {
		s, err := lab.StartGoTLS("learn", c.ip, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		*c.list = append(*c.list, db.ListEntry{Line: i + 1, Key: s.Addr.String(), IP: s.Addr.Addr(), Port: s.Addr.Port()})
	}
	block = append(block, db.ListEntry{Line: 9, Key: "192.0.2.1:443", IP: netip.MustParseAddr("192.0.2.1"), Port: 443}) // out of scope: never dialled
	top = append(top, db.ListEntry{Line: 9, Key: "gone.lab:443", Host: "gone.lab", Port: 443})
	var jobs []Job
	for _, e := range block {
		jobs = append(jobs, Job{Role: db.RoleBlock, Entry: e})
	}
	for _, e := range top {
		jobs = append(jobs, Job{Role: db.RoleTop, Entry: e})
	}

	d, err := db.Open(filepath.Join(t.TempDir(), "learn.db"), db.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	engine, err := probe.NewEngine(probe.EngineConfig{IOTimeout: 3 * time.Second, Deadline: 15 * time.Second, ConnRate: 1000, ConnBurst: 100})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	status := map[string]string{}
	l := New(Config{
		Store: admin.NewLocal(d, false), Prober: engine, Resolver: noDNS{},
		Scope:   enrich.NewScope([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil, nil),
		Limiter: rate.NewLimiter(100, 10), Workers: 2, Deadline: 15 * time.Second, DNSTimeout: time.Second,
		OnRecord: func(lr db.LearnResult) { mu.Lock(); status[lr.Entry] = lr.Status; mu.Unlock() },
	})
	sum, err := l.Run(context.Background(), jobs)
	if err != nil || sum.Recorded != 5 || sum.OK != 3 || sum.OutOfScope != 1 || sum.Unresolved != 1 {
		t.Fatalf("run: %+v %v (statuses %v)", sum, err, status)
	}
	for role, n := range map[string]int{db.RoleBlock: 3, db.RoleTop: 2} {
		if done, err := d.LearnFinished(role); err != nil || len(done) != n {
			t.Errorf("%s entries finished: %d %v, want %d", role, len(done), err, n)
		}
	}
	scores, err := d.LearnScores()
	if err != nil {
		t.Fatal(err)
	}
	var jarms int
	for _, s := range scores {
		if s.Kind != "jarm" {
			continue
		}
		jarms++
		if !(s.Block == 2 && s.Top == 0 && s.Score() == 1) && !(s.Block == 0 && s.Top == 1 && s.Score() == 0) {
			t.Errorf("jarm %s: B=%d T=%d score %.2f", s.Value, s.Block, s.Top, s.Score())
		}
	}
	if jarms != 2 {
		t.Errorf("%d JARMs learned, want 2 (one per stack): %+v", jarms, scores)
	}
}
