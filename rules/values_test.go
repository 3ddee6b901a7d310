package rules

import (
	"testing"

	"github.com/stackprint/stackprint"
)

// A verdict carries the facts its rule's condition read, with the match
// under test bound: explain shows them.
func TestVerdictValues(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	low := stackprint.Match{Kind: "jarm", Value: "aa", Label: "weak", Confidence: "low"}
	high := stackprint.Match{Kind: "jarm", Value: "bb", Label: "strong", Confidence: "high"}
	near := stackprint.Match{Kind: "atsf", Value: "cc", Label: "c2", Confidence: "high",
		Near: &stackprint.Near{Agree: 9, Of: 10, Differs: []string{"random6306"}, Details: []string{"ALPN"}}}
	vs := e.Judge(stackprint.Event{}, stackprint.Result{Status: stackprint.StatusOK}, []stackprint.Match{low, high, near})
	got := map[string]map[string]string{}
	for _, v := range vs {
		got[v.Rule] = v.Values
	}
	if v := got["db_match"]; v["match.kind"] != "jarm" || v["match.weight"] != "1" || v["match.confidence"] != "" && v["match.confidence"] != "high" {
		t.Errorf("db_match values = %v", v)
	}
	if v := got["atsf_near"]; v["nearest.agree"] != "9" || v["nearest.kind"] != "atsf" || v["nearest.weight"] != "1" {
		t.Errorf("atsf_near values = %v", v)
	}
	if _, ok := got["atsf_near"]["params.min_agree"]; ok {
		t.Error("params listed as facts")
	}
}
