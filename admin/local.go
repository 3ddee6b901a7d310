package admin

import (
	"bytes"
	"context"
	"os"

	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/explain"
)

// Local runs the admin operations on an open DB: the CLI's when no
// daemon runs, and the daemon's own behind the admin socket. It has the
// Client's methods, so the CLI uses either through one interface.
type Local struct {
	db    *db.DB
	owned bool          // Close closes the DB
	rules explain.Rules // rule definitions for explain; nil: unknown
}

// NewLocal serves d; Close closes d when owned.
func NewLocal(d *db.DB, owned bool) *Local { return &Local{db: d, owned: owned} }

func (s *Local) Via() string { return s.db.Path() }
func (s *Local) Live() bool  { return false }
func (s *Local) Close() error {
	if s.owned {
		return s.db.Close()
	}
	return nil
}

func (s *Local) Add(_ context.Context, r db.Record) (db.Record, int, error) {
	stored, err := s.db.AddRecord(r)
	return stored, 0, err
}

func (s *Local) Remove(_ context.Context, kind, value string) (bool, error) {
	return s.db.Remove(kind, value)
}

func (s *Local) List(_ context.Context, kind string) ([]db.Record, error) {
	return s.db.List(kind)
}

func (s *Local) Import(_ context.Context, name string, data []byte, o db.ImportOptions) (db.ImportReport, int, error) {
	rep, err := s.db.ImportWith(bytes.NewReader(data), name, o)
	return rep, 0, err
}

func (s *Local) Export(_ context.Context, o db.ExportOptions) ([]byte, int, error) {
	var buf bytes.Buffer
	n, err := s.db.Export(&buf, o)
	return buf.Bytes(), n, err
}

func (s *Local) Stats(context.Context) (db.Stats, error) {
	st, err := s.db.Stats()
	if err != nil {
		return st, err
	}
	if fi, err := os.Stat(s.db.Path()); err == nil {
		st.FileSize = fi.Size()
	}
	return st, nil
}

func (s *Local) LearnFinished(_ context.Context, role string) (map[string]bool, error) {
	return s.db.LearnFinished(role)
}

func (s *Local) RecordLearn(_ context.Context, lr db.LearnResult) (bool, error) {
	return s.db.RecordLearn(lr)
}

func (s *Local) LearnScores(context.Context) ([]db.LearnStats, error) {
	return s.db.LearnScores()
}

func (s *Local) ResetLearn(context.Context) error { return s.db.ResetLearn() }

func (s *Local) Promote(_ context.Context, o db.PromoteOptions) ([]db.Record, int, error) {
	recs, err := s.db.PromoteLearned(o)
	return recs, 0, err
}

func (s *Local) Check(context.Context) ([]string, error) {
	var out []string
	for _, e := range s.db.Check() {
		out = append(out, e.Error())
	}
	return out, nil
}

func (s *Local) Backup(_ context.Context, path string) (int64, error) { return s.db.Backup(path) }

// SetRules gives explain the rule definitions an alert names.
func (s *Local) SetRules(r explain.Rules) { s.rules = r }

// Explain answers a question about a server, an alert or a fingerprint
// (package explain).
func (s *Local) Explain(_ context.Context, query string) (explain.Report, error) {
	return explain.Explain(s.db, s.rules, query)
}
