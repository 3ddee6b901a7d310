package daemon

import (
	"fmt"
	"log/slog"

	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/explain"
	"github.com/stackprint/stackprint/rules"
)

// newRulesEngine builds the daemon's rule engine from the config; on
// SIGHUP, reloadRules swaps in the rules of the reloaded config.
func newRulesEngine(c config.RulesConfig, log *slog.Logger) (*rules.Engine, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	opts.Logger = log
	e, err := rules.New(opts)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	st := e.Stats()
	log.Info("rules loaded", "active", st.Rules, "simulation", st.Simulation)
	return e, nil
}

// reloadRules swaps in the rules of a newly loaded config; on error the
// engine keeps its rules and counts the failure (rules.Engine.Stats).
func reloadRules(e *rules.Engine, c config.RulesConfig, log *slog.Logger) error {
	opts, err := c.Options()
	if err == nil {
		err = e.Reload(opts)
	}
	if err != nil {
		log.Error("rules reload failed; previous rules kept", "err", err)
		return err
	}
	st := e.Stats()
	log.Info("rules reloaded", "active", st.Rules, "simulation", st.Simulation)
	return nil
}

// explainRules looks rules up in the engine's running set (reloads
// included), for explain's alert pages.
func explainRules(e *rules.Engine) explain.Rules {
	return func(id string) (explain.Rule, bool) {
		return explain.FromRuleSet(e.RuleSet())(id)
	}
}
