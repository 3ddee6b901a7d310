package daemon

import (
	"context"
	"iter"
	"net/netip"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/backfill"
	"github.com/stackprint/stackprint/enrich"
)

// backfillClient is the synthetic client address a backfill's probes
// queue under in the scheduler's fair queue: one more client, served in
// turn with the hosts of the live logs, so a backfill of a million old
// connections takes one client's share when live traffic waits, and the
// whole scheduler when it does not. 100::/64 is the discard-only prefix
// (RFC 6666): no sensor logs a client there.
var backfillClient = netip.MustParseAddr("100::b")

// backfillProber probes through the scheduler: its fair queue, in-flight
// bound, connection budgets and probe deadline, outside the dedup cache.
type backfillProber struct{ pipe *enrich.Pipeline }

func (p backfillProber) Probe(ctx context.Context, t stackprint.Target) (stackprint.Result, error) {
	// A probe in flight when the job is cancelled finishes and is kept:
	// the server was sent its connections already.
	return p.pipe.ProbeNowOrFinish(ctx, t, backfillClient)
}

// backfillWorkers is how many servers a backfill job judges at once: a
// quarter of scheduler.max_in_flight, so its probes, queued as one client,
// never hold more than a quarter of the probe slots live traffic needs.
func backfillWorkers(maxInFlight int) int { return max(1, maxInFlight/4) }

// Backfill judges the servers of a backfill job sent by `stackprint scan`
// over the admin socket, as a backfill without a daemon would (package
// backfill): the daemon's scope as it is now, fresh observations, probes
// through the scheduler, its rules, its outputs (metrics counted), alerts
// kept for explain, per-server progress in the DB.
func (d *Daemon) Backfill(ctx context.Context, run string, total int, servers iter.Seq[backfill.Server], progress func(backfill.Progress)) (backfill.Summary, error) {
	r := backfill.NewRunner(backfill.Config{
		Scope:    d.scope.Load(),
		Fresh:    d.cfg.Dedup.TTL,
		Workers:  backfillWorkers(d.cfg.Scheduler.MaxInFlight),
		Progress: progress,
	}, d.db, backfillProber{d.pipe}, d.rules, measuredSink{d.outputs(), d.metrics})
	return r.Run(ctx, run, total, servers)
}
