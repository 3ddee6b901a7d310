package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/rules"
)

func rulesCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules check", stdout, stderr)
	cfgPath := fs.String("c", "", "config whose rules to check when no FILE is given (default: the embedded default)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	var opts rules.Options
	if len(files) == 0 {
		cfg, err := LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		if opts, err = cfg.Rules.options(); err != nil {
			return err
		}
	} else {
		opts.Files = files
	}
	set, err := rules.Load(opts)
	if err != nil {
		probs := flatten(err)
		for _, p := range probs {
			fmt.Fprintln(stderr, p)
		}
		return fmt.Errorf("rules check: %d problem(s)", len(probs))
	}
	// Per file, in load order; globs and directories show what they
	// expanded to. Built-in rules are summed in the last line.
	var order []string
	perFile := map[string]int{}
	for _, r := range set.Rules {
		if strings.HasPrefix(r.File, "builtin:") {
			continue
		}
		if perFile[r.File] == 0 {
			order = append(order, r.File)
		}
		perFile[r.File]++
	}
	for _, f := range order {
		fmt.Fprintf(stdout, "%s: %d rules ok\n", f, perFile[f])
	}
	fmt.Fprintf(stdout, "rules ok: %d loaded, %d active\n", len(set.Rules), len(set.Active()))
	return nil
}

func rulesList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules list", stdout, stderr)
	cfgPath := fs.String("c", "", "config file (default: the embedded default)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	opts, err := cfg.Rules.options()
	if err != nil {
		return err
	}
	set, err := rules.Load(opts)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tSID\tSUPPRESS\tSTATE\tNAME")
	for _, r := range set.Rules {
		state := "on"
		switch {
		case r.Disabled:
			state = "disabled"
		case r.Simulate || opts.Simulation:
			state = "simulated"
		}
		sup := "-"
		if r.Suppress > 0 {
			sup = r.Suppress.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.Severity, r.SignatureID, sup, state, r.Name)
	}
	return tw.Flush()
}

// flatten lists the leaves of joined errors, one problem each.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// validate checks the rules keys and compiles the rules they select, so
// `stackprint config check` and a SIGHUP reload catch a bad rule file.
func (c RulesConfig) validate() []error {
	var errs []error
	if c.SuppressCapacity < 0 || c.SuppressCapacity > maxSuppressCapacity {
		errs = append(errs, &FieldError{Field: "rules.suppress_capacity", Value: c.SuppressCapacity, Reason: fmt.Sprintf("must be 0..%d (0: the default, 100000)", maxSuppressCapacity)})
	}
	opts, err := c.options()
	if err != nil {
		// Report the baselines and still check the rules without them.
		errs = append(errs, flatten(err)...)
		c.Baselines = nil
		if opts, err = c.options(); err != nil {
			return errs
		}
	}
	if _, err := rules.Load(opts); err != nil {
		for _, e := range flatten(err) {
			errs = append(errs, fmt.Errorf("rules: %w", e))
		}
	}
	return errs
}

// options turns the config into rules.Options (no logger or clock: the
// daemon sets those).
func (c RulesConfig) options() (rules.Options, error) {
	base, err := c.baselines()
	if err != nil {
		return rules.Options{}, err
	}
	opts := rules.Options{
		NoBuiltin:        c.DisableBuiltin,
		Files:            c.Files,
		Disabled:         c.Disabled,
		Params:           c.Params,
		Suppress:         c.Suppress,
		Simulation:       c.Simulation,
		SuppressCapacity: c.SuppressCapacity,
	}
	if len(base) > 0 {
		opts.Baselines = base
	}
	return opts, nil
}

func (c RulesConfig) baselines() (rules.StaticBaselines, error) {
	var errs []error
	out := rules.StaticBaselines{}
	for i, b := range c.Baselines {
		field := fmt.Sprintf("rules.baselines[%d]", i)
		ap, err := netip.ParseAddrPort(b.Server)
		if err != nil {
			errs = append(errs, &FieldError{Field: field + ".server", Value: b.Server, Reason: "want ip:port ([v6]:port for IPv6)"})
			continue
		}
		bl, err := rules.ParseBaseline(b.JARM, b.ATSF, b.CertSHA256)
		if err != nil {
			errs = append(errs, &FieldError{Field: field, Value: b.Server, Reason: err.Error()})
			continue
		}
		t := stackprint.Target{IP: stackprint.CanonicalAddr(ap.Addr()), Port: ap.Port(), SNI: stackprint.CanonicalSNI(b.SNI)}
		if _, dup := out[t]; dup {
			errs = append(errs, &FieldError{Field: field, Value: t.String(), Reason: "server listed twice"})
			continue
		}
		out[t] = bl
	}
	return out, errors.Join(errs...)
}

// newRulesEngine builds the daemon's rule engine from the config; on
// SIGHUP, reloadRules swaps in the rules of the reloaded config.
func newRulesEngine(c RulesConfig, log *slog.Logger) (*rules.Engine, error) {
	opts, err := c.options()
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
func reloadRules(e *rules.Engine, c RulesConfig, log *slog.Logger) error {
	opts, err := c.options()
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
