package hunt

import (
	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
)

// Index is an in-memory exact matcher over a snapshot of the DB's
// fingerprints: a hunt reads the DB once, so it runs beside a daemon that
// holds the file (the snapshot comes through its admin socket) and never
// keeps the file locked.
type Index struct {
	byKey map[db.Key]db.Record
}

// NewIndex indexes records by kind and normalised value.
func NewIndex(recs []db.Record) *Index {
	ix := &Index{byKey: make(map[db.Key]db.Record, len(recs))}
	for _, r := range recs {
		ix.byKey[db.Key{Kind: r.Kind, Value: r.Value}] = r
	}
	return ix
}

// Len is the number of fingerprints indexed.
func (ix *Index) Len() int { return len(ix.byKey) }

// Match returns the entries matching res's JARM, ATSF id and certificate
// hashes, as db.DB.Match does.
func (ix *Index) Match(res stackprint.Result) ([]stackprint.Match, error) {
	f := db.FingerprintsOf(res)
	var out []stackprint.Match
	for _, k := range []db.Key{{Kind: db.KindATSF, Value: f.ATSF}, {Kind: db.KindCertSHA1, Value: f.CertSHA1},
		{Kind: db.KindCertSHA256, Value: f.CertSHA256}, {Kind: db.KindJARM, Value: f.JARM}} {
		if k.Value == "" {
			continue
		}
		if rec, ok := ix.byKey[k]; ok {
			out = append(out, stackprint.Match{Kind: rec.Kind, Value: rec.Value, Label: rec.Label, Source: rec.Source,
				Confidence: rec.Confidence, Category: rec.Category, BlockCount: rec.BlockCount, TopCount: rec.TopCount})
		}
	}
	return out, nil
}
