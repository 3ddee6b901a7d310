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
	return p.probeNow(ctx, t, client, false)
}

// ProbeNowOrFinish is ProbeNow, except that a probe already in flight
// when ctx ends is waited for (its deadline bounds it) and its result
// returned with a nil error: a backfill keeps the answer whose
// connections the server was already sent. A probe cut short by the
// pipeline stopping returns an error.
func (p *Pipeline) ProbeNowOrFinish(ctx context.Context, t stackprint.Target, client netip.Addr) (stackprint.Result, error) {
	return p.probeNow(ctx, t, client, true)
}

// directResult is what a ProbeNow unit hands back; cut: the pipeline
// stopped during the probe, so res is not the server's whole answer.
type directResult struct {
	res stackprint.Result
	cut bool
}

func (p *Pipeline) probeNow(ctx context.Context, t stackprint.Target, client netip.Addr, finish bool) (stackprint.Result, error) {
	if !t.IP.IsValid() || t.Port == 0 {
		return stackprint.Result{}, fmt.Errorf("probe %s: invalid target", t)
	}
	t.IP = stackprint.CanonicalAddr(t.IP)
	p.mu.Lock()
	nm := &name{t: t}
	s := &server{key: t, first: nm}
	nm.srv = s
	u := p.newUnit(s, nm, p.cfg.ServerCost, p.cfg.Now())
	u.direct = make(chan directResult, 1)
	s.u, nm.u = u, u
	p.push(u, client)
	p.mu.Unlock()
	wait := func(d directResult) (stackprint.Result, error) {
		if d.cut {
			return d.res, fmt.Errorf("probe %s: cut short: the scheduler stopped", t)
		}
		return d.res, nil
	}
	select {
	case d := <-u.direct:
		return wait(d)
	case <-ctx.Done():
		p.mu.Lock()
		queued := u.state == stateQueued
		if queued {
			u.state = stateDone // the fair queue drops it when it comes up
			p.unitGone()
		}
		p.mu.Unlock()
		if finish && !queued {
			return wait(<-u.direct)
		}
		return stackprint.Result{}, fmt.Errorf("probe %s: %w", t, ctx.Err())
	}
}

// directDone hands a ProbeNow result over.
func (p *Pipeline) directDone(u *unit, res stackprint.Result, cut bool) {
	if res.Status == stackprint.StatusOK {
		p.probeOK.Add(1)
	}
	u.direct <- directResult{res, cut}
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
