package config

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/rules"
)

// validate checks the rules keys and compiles the rules they select, so
// `stackprint config check` and a SIGHUP reload catch a bad rule file.
func (c RulesConfig) validate() []error {
	var errs []error
	if c.SuppressCapacity < 0 || c.SuppressCapacity > maxSuppressCapacity {
		errs = append(errs, &FieldError{Field: "rules.suppress_capacity", Value: c.SuppressCapacity, Reason: fmt.Sprintf("must be 0..%d (0: the default, 100000)", maxSuppressCapacity)})
	}
	opts, err := c.Options()
	if err != nil {
		// Report the baselines and still check the rules without them.
		errs = append(errs, leaves(err)...)
		c.Baselines = nil
		if opts, err = c.Options(); err != nil {
			return errs
		}
	}
	if _, err := rules.Load(opts); err != nil {
		for _, e := range leaves(err) {
			errs = append(errs, fmt.Errorf("rules: %w", e))
		}
	}
	return errs
}

// Options turns the config into rules.Options (no logger or clock: the
// daemon sets those).
func (c RulesConfig) Options() (rules.Options, error) {
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

// leaves lists the leaves of joined errors, one problem each.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}
