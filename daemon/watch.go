package daemon

import (
	"context"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/enrich"
	"github.com/stackprint/stackprint/watch"
)

// watchProber submits the watch list's probes to the scheduler as one
// synthetic client, so they share its budgets and its fair order with the
// clients of the logs.
type watchProber struct{ pipe *enrich.Pipeline }

func (p watchProber) ProbeNow(ctx context.Context, t stackprint.Target) (stackprint.Result, error) {
	return p.pipe.ProbeNow(ctx, t, enrich.WatchClient)
}

// recordWatchProbe writes a watch probe's fingerprint record, with its DB
// matches, through the observation stage: stackprint.log shows it (no
// client) and retro-hunts see the watched server.
func (d *Daemon) recordWatchProbe(ev stackprint.Event, r stackprint.Result) error {
	var m []stackprint.Match
	if r.Status == stackprint.StatusOK || r.Status == stackprint.StatusPartial {
		var err error
		if m, err = d.db.Match(r); err != nil {
			return err
		}
	}
	return d.observe.Record(ev, r, m)
}

// importBaselines adds the servers of rules.baselines (the drift
// baselines of earlier versions) to the watch list, those not watched yet,
// with their recorded fingerprints as baselines.
func (d *Daemon) importBaselines() error {
	entries, err := d.cfg.Rules.WatchEntries()
	if err != nil || len(entries) == 0 {
		return err
	}
	list, err := d.db.WatchList()
	if err != nil {
		return err
	}
	watched := map[string]bool{}
	for _, e := range list {
		watched[e.Key()] = true
	}
	var add []string
	for _, e := range entries {
		if !watched[e.Key()] {
			add = append(add, e.Key())
			if _, err := d.db.WatchAdd([]watch.Entry{e}, false); err != nil {
				return err
			}
		}
	}
	if len(add) > 0 {
		d.log.Warn("rules.baselines are deprecated: their servers were added to the watch list with those baselines, re-probed every watch.every, drift alerts are watch_drift; remove rules.baselines from the config (`stackprint watch list` shows the servers)",
			"imported", add)
	} else {
		d.log.Info("rules.baselines: every server is on the watch list already; remove rules.baselines from the config", "servers", len(entries))
	}
	return nil
}
