package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/rules"
	"github.com/stackprint/stackprint/watch"
)

// WatchConfig is the daemon's side of the watch list (`stackprint watch`):
// how often, and when to alert.
type WatchConfig struct {
	// Every is the re-probe interval of an entry added without --every.
	Every time.Duration `yaml:"every"`
	// UnreachableAfter failed probes in a row raise watch_unreachable; 0
	// disables the alert.
	UnreachableAfter int `yaml:"unreachable_after"`
	// ReachableAgain raises watch_reachable at the first successful probe
	// after a watch_unreachable alert.
	ReachableAgain bool `yaml:"reachable_again"`
	// CertExpiryDays raises watch_cert_expiry when a certificate ends
	// within that many days; 0 disables the warning.
	CertExpiryDays int `yaml:"cert_expiry_days"`
}

func (c WatchConfig) validate() []error {
	var errs []error
	bad := func(field string, v any, reason string) {
		errs = append(errs, &FieldError{Field: field, Value: v, Reason: reason})
	}
	if c.Every < watch.MinEvery {
		bad("watch.every", c.Every, fmt.Sprintf("must be >= %s", watch.MinEvery))
	}
	if c.UnreachableAfter < 0 || c.UnreachableAfter > 1000 {
		bad("watch.unreachable_after", c.UnreachableAfter, "must be 0..1000 (0 turns the alert off)")
	}
	if c.CertExpiryDays < 0 || c.CertExpiryDays > 3650 {
		bad("watch.cert_expiry_days", c.CertExpiryDays, "must be 0..3650 (0 turns the warning off)")
	}
	return errs
}

// Policy is the watch runner's policy.
func (c WatchConfig) Policy() watch.Policy {
	return watch.Policy{Every: c.Every, FailAfter: c.UnreachableAfter, ReachableAgain: c.ReachableAgain, ExpiryWarn: time.Duration(c.CertExpiryDays) * 24 * time.Hour}
}

// WatchEntries turns rules.baselines (the drift baselines of earlier
// versions) into watch-list entries with those baselines; the daemon adds
// the ones not watched yet at start.
func (c RulesConfig) WatchEntries() ([]watch.Entry, error) {
	var out []watch.Entry
	for i, b := range c.Baselines {
		field := fmt.Sprintf("rules.baselines[%d]", i)
		ap, err := netip.ParseAddrPort(b.Server)
		if err != nil {
			return nil, &FieldError{Field: field + ".server", Value: b.Server, Reason: "want ip:port ([v6]:port for IPv6)"}
		}
		bl, err := rules.ParseBaseline(b.JARM, b.ATSF, b.CertSHA256)
		if err != nil {
			return nil, &FieldError{Field: field, Value: b.Server, Reason: err.Error()}
		}
		fp := &watch.Fingerprints{JARM: bl.JARM, ATSF: bl.ATSF}
		if bl.CertSHA256 != "" {
			fp.Cert = &watch.Cert{SHA256: bl.CertSHA256}
		}
		e := watch.Entry{Addr: netip.AddrPortFrom(stackprint.CanonicalAddr(ap.Addr()), ap.Port()), SNI: stackprint.CanonicalSNI(b.SNI),
			Origin: "config " + field, Baseline: fp}
		if err := e.Validate(); err != nil {
			return nil, &FieldError{Field: field, Value: b.Server, Reason: err.Error()}
		}
		out = append(out, e)
	}
	return out, nil
}
