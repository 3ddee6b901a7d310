package rules

import (
	"testing"

	"github.com/stackprint/stackprint"
)

func TestJudge(t *testing.T) {
	tests := []struct {
		name     string
		matches  []stackprint.Match
		wantSev  string
		wantLab  string
		wantNone bool
	}{
		{name: "no match", wantNone: true},
		{name: "single low", matches: []stackprint.Match{{Label: "a", Confidence: "low"}}, wantSev: "low", wantLab: "a"},
		{name: "strongest wins", matches: []stackprint.Match{{Label: "a", Confidence: "low"}, {Label: "b", Confidence: "high"}, {Label: "c", Confidence: "medium"}}, wantSev: "high", wantLab: "b"},
		{name: "empty confidence is medium", matches: []stackprint.Match{{Label: "x"}}, wantSev: "medium", wantLab: "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Engine{}.Judge(stackprint.Event{}, stackprint.Result{}, tc.matches)
			if tc.wantNone {
				if len(v) != 0 {
					t.Fatalf("got %d verdicts, want none", len(v))
				}
				return
			}
			if len(v) != 1 || v[0].Rule != RuleDBMatch || v[0].Severity != tc.wantSev || v[0].Match.Label != tc.wantLab {
				t.Fatalf("got %+v, want one %s verdict severity %s label %s", v, RuleDBMatch, tc.wantSev, tc.wantLab)
			}
		})
	}
}
