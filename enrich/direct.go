package enrich

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/stackprint/stackprint"
)

// WatchClient is the synthetic client address the watch list's probes
// queue under (ProbeNow): to the fair queue it is one more client, served
// in turn with the hosts of the sensor's logs, so a long watch list
// neither starves them nor is starved by a flooding host.
var WatchClient = netip.IPv6Unspecified()

// ProbeNow probes t with every kind now, for client (WatchClient for the
// watch list): through the same fair queue, in-flight bound, global and
// per-IP connection budgets and deadline as the probes of logged events,
// but outside the dedup cache (a watched server is probed on its own
// schedule, not when a cached result expires), with no event, record or
// rule. Only scope.deny applies to t: watching a server allow-lists it.
// It returns when the probe ends, or with ctx's error when ctx ends
// first (a queued probe is then dropped, one in flight finishes unseen).
func (p *Pipeline) ProbeNow(ctx context.Context, t stackprint.Target, client netip.Addr) (stackprint.Result, error) {
	if !t.IP.IsValid() || t.Port == 0 {
		return stackprint.Result{}, fmt.Errorf("probe %s: invalid target", t)
	}
	t.IP = stackprint.CanonicalAddr(t.IP)
	p.mu.Lock()
	nm := &name{t: t}
	s := &server{key: t, first: nm}
	nm.srv = s
	u := p.newUnit(s, nm, p.cfg.ServerCost, p.cfg.Now())
	u.direct = make(chan stackprint.Result, 1)
	s.u, nm.u = u, u
	p.push(u, client)
	p.mu.Unlock()
	select {
	case res := <-u.direct:
		return res, nil
	case <-ctx.Done():
		p.mu.Lock()
		if u.state == stateQueued {
			u.state = stateDone // the fair queue drops it when it comes up
			p.unitGone()
		}
		p.mu.Unlock()
		return stackprint.Result{}, fmt.Errorf("probe %s: %w", t, ctx.Err())
	}
}

// directDone hands a ProbeNow result over.
func (p *Pipeline) directDone(u *unit, res stackprint.Result) {
	if res.Status == stackprint.StatusOK {
		p.probeOK.Add(1)
	}
	u.direct <- res
	p.mu.Lock()
	p.unitGone()
	p.mu.Unlock()
}

// unitGone counts a unit out of the pending ones (under p.mu).
func (p *Pipeline) unitGone() {
	p.pending--
	if p.pending == 0 {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
}
