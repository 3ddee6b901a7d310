package daemon

import (
	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/enrich"
)

// resultStore keeps the dedup cache's full results in the bbolt result
// file beside the DB (db.ResultCache).
type resultStore struct{ c *db.ResultCache }

func (s resultStore) ApplyResults(ops []enrich.ResultOp) error {
	rows := make([]db.CachedResult, len(ops))
	for i, o := range ops {
		rows[i] = db.CachedResult{Key: o.Key.Bytes(), Tag: o.Tag, Result: o.Result}
	}
	return s.c.Apply(rows)
}

func (s resultStore) GetResult(k enrich.Key) ([]byte, stackprint.Result, bool, error) {
	return s.c.Get(k.Bytes())
}

// resultCachePath is where the result file lives: beside the DB.
func resultCachePath(dbPath string) string { return dbPath + ".results" }
