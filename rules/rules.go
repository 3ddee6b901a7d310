// Package rules decides which judged events become alerts.
//
// This is the built-in rule set of the walking skeleton: one rule,
// "db_match", that fires when a fingerprint of the target is in the
// operator's fingerprint DB, with the severity taken from the entry's
// confidence. Expression rules from YAML files replace it later.
package rules

import (
	"github.com/stackprint/stackprint"
)

// RuleDBMatch is the id of the fingerprint-DB match rule.
const RuleDBMatch = "db_match"

// Engine evaluates the rules. The zero value is ready to use.
type Engine struct{}

// Judge returns one verdict per event: the strongest DB match wins, so an
// analyst sees the most confident reason first.
func (Engine) Judge(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) []stackprint.Verdict {
	if len(m) == 0 {
		return nil
	}
	best := m[0]
	for _, x := range m[1:] {
		if confidenceRank(x.Confidence) > confidenceRank(best.Confidence) {
			best = x
		}
	}
	return []stackprint.Verdict{{Rule: RuleDBMatch, Severity: Severity(best.Confidence), Match: best}}
}

// Severity maps a DB entry's confidence to an alert severity.
func Severity(confidence string) string {
	switch confidence {
	case "high":
		return "high"
	case "low":
		return "low"
	default:
		return "medium"
	}
}

func confidenceRank(c string) int {
	switch c {
	case "high":
		return 3
	case "medium", "":
		return 2
	case "low":
		return 1
	}
	return 0
}
