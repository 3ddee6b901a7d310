package db

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
)

func lr(role, entry, jarm, hint string) LearnResult {
	return LearnResult{
		Role: role, Entry: entry, Hint: hint, Status: string(stackprint.StatusOK),
		Target:       stackprint.Target{IP: netip.MustParseAddr(strings.Split(entry, ":")[0]), Port: 443},
		Fingerprints: Fingerprints{JARM: jarm},
	}
}

func TestRecordLearnCountsOnceAndScores(t *testing.T) {
	d, _ := openTest(t)
	// A curated record gets its counts kept in step.
	if err := d.Add(Record{Kind: "jarm", Value: jarmB, Label: "curated"}); err != nil {
		t.Fatal(err)
	}
	in := []LearnResult{
		lr(RoleBlock, "192.0.2.1:443", jarmA, "QakBot"),
		lr(RoleBlock, "192.0.2.2:443", jarmA, "QakBot"),
		lr(RoleBlock, "192.0.2.3:443", jarmA, "Emotet"),
		lr(RoleTop, "192.0.2.10:443", jarmA, ""),
		lr(RoleTop, "192.0.2.11:443", jarmB, ""),
		lr(RoleBlock, "192.0.2.4:443", jarmB, ""),
		{Role: RoleTop, Entry: "dead.example:443", Status: "dns_error", Error: "no such host"},
	}
	for _, r := range in {
		counted, err := d.RecordLearn(r)
		if err != nil || !counted {
			t.Fatalf("RecordLearn(%s): %v %v", r.Entry, counted, err)
		}
	}
	// Replaying after an interruption counts nothing twice.
	if counted, err := d.RecordLearn(in[0]); err != nil || counted {
		t.Fatalf("replay counted: %v %v", counted, err)
	}
	done, err := d.LearnFinished(RoleTop)
	if err != nil || len(done) != 3 || !done["dead.example:443"] {
		t.Fatalf("LearnFinished(top) = %v %v", done, err)
	}
	scores, err := d.LearnScores()
	if err != nil || len(scores) != 2 {
		t.Fatalf("scores = %+v %v", scores, err)
	}
	a, b := scores[0], scores[1]
	if a.Value != jarmA || a.Block != 3 || a.Top != 1 || a.Score() != 0.75 || a.Hints["QakBot"] != 2 {
		t.Errorf("jarmA stats = %+v", a)
	}
	if b.Value != jarmB || b.Block != 1 || b.Top != 1 || b.Score() != 0.5 {
		t.Errorf("jarmB stats = %+v", b)
	}
	r, _, _ := d.Get("jarm", jarmB)
	if r.BlockCount != 1 || r.TopCount != 1 {
		t.Errorf("curated record counts = %d/%d, want 1/1", r.BlockCount, r.TopCount)
	}
	if s, ok := r.Score(); !ok || s != 0.5 {
		t.Errorf("record score %v %v", s, ok)
	}

	// Promote at 0.7 with at least 3 block-listed targets: only jarmA.
	recs, err := d.PromoteLearned(PromoteOptions{Label: "learned-c2", Threshold: 0.7, MinBlock: 3, Source: "learn-test"})
	if err != nil || len(recs) != 1 || recs[0].Value != jarmA || recs[0].BlockCount != 3 || recs[0].TopCount != 1 {
		t.Fatalf("promote = %+v %v", recs, err)
	}
	if !strings.Contains(recs[0].Notes, "QakBot (2)") || recs[0].Confidence != "medium" {
		t.Errorf("promoted record = %+v", recs[0])
	}
	if _, err := d.PromoteLearned(PromoteOptions{Label: "x", Threshold: 1.5}); err == nil {
		t.Error("threshold 1.5 accepted")
	}

	if err := d.ResetLearn(); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.LearnScores(); len(s) != 0 {
		t.Errorf("scores after reset: %+v", s)
	}
	if done, _ := d.LearnFinished(RoleBlock); len(done) != 0 {
		t.Errorf("progress after reset: %v", done)
	}
	if r, _, _ := d.Get("jarm", jarmB); r.BlockCount != 0 || r.TopCount != 0 {
		t.Errorf("counts after reset: %+v", r)
	}
}

func TestPromoteDefaultStackStaysLow(t *testing.T) {
	d, _ := openTest(t)
	const goDefault = "3fd3fd0003fd3fd00043d43d00043d3bef2bf79cd6719851e8198c1e8f9a14"
	if _, err := d.RecordLearn(lr(RoleBlock, "192.0.2.1:443", goDefault, "")); err != nil {
		t.Fatal(err)
	}
	recs, err := d.PromoteLearned(PromoteOptions{Label: "x", Threshold: 1, Confidence: "high"})
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	if recs[0].Confidence != "low" || !strings.Contains(recs[0].Notes, "default stack") {
		t.Errorf("default stack promoted as %+v", recs[0])
	}
}
