package db

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ImportReport is the outcome of Import.
type ImportReport struct {
	Accepted int         // records written; 0 when Import fails
	Rejected []Rejection // every invalid line, in file order
}

// Rejection is one line Import refused.
type Rejection struct {
	Line   int
	Reason string
}

// Import reads CSV with a header line naming the columns kind, value, label,
// source, confidence and optionally category, notes, in any order. Lines
// starting with # are comments. It is all-or-nothing: if any line is
// invalid nothing is written, the error names name:line and the reason of
// the first bad line, and the report lists every rejection. Records are
// upserted as by Add.
func (d *DB) Import(r io.Reader, name string) (ImportReport, error) {
	var rep ImportReport
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // checked per line, to report it as a rejection
	cr.TrimLeadingSpace = true

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		rep.Rejected = append(rep.Rejected, Rejection{Line: 1, Reason: "empty file, want a header line"})
		return rep, fmt.Errorf("import %s:1: empty file, want a header line", name)
	}
	if err != nil {
		return rep, importReadError(name, err)
	}
	headerLine, _ := cr.FieldPos(0)
	col, err := parseHeader(header)
	if err != nil {
		rep.Rejected = append(rep.Rejected, Rejection{Line: headerLine, Reason: err.Error()})
		return rep, fmt.Errorf("import %s:%d: %w", name, headerLine, err)
	}

	var (
		recs      []Record
		firstLine = map[string]int{} // key → line, to catch duplicates within the file
	)
	reject := func(line int, format string, args ...any) {
		rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: fmt.Sprintf(format, args...)})
	}
	for {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			reject(pe.Line, "%v", pe.Err)
			continue
		}
		if err != nil {
			return ImportReport{}, importReadError(name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(fields) != len(header) {
			reject(line, "%d fields, header has %d", len(fields), len(header))
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return fields[i]
			}
			return ""
		}
		rec := Record{
			Kind:       get("kind"),
			Value:      get("value"),
			Label:      get("label"),
			Source:     get("source"),
			Confidence: get("confidence"),
			Category:   get("category"),
			Notes:      get("notes"),
		}
		if err := ValidateRecord(&rec); err != nil {
			reject(line, "%v", err)
			continue
		}
		k := string(key(rec.Kind, rec.Value))
		if first, dup := firstLine[k]; dup {
			reject(line, "duplicate %s %s, first on line %d", rec.Kind, rec.Value, first)
			continue
		}
		firstLine[k] = line
		recs = append(recs, rec)
	}

	if n := len(rep.Rejected); n > 0 {
		first := rep.Rejected[0]
		return rep, fmt.Errorf("import %s:%d: %s (%d bad lines, nothing imported)", name, first.Line, first.Reason, n)
	}

	now := d.now().UTC()
	err = d.bolt.Update(func(tx *bolt.Tx) error {
		b, err := writableBucket(tx)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if err := put(b, rec, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("import %s into %q: %w", name, d.path, err)
	}
	rep.Accepted = len(recs)
	return rep, nil
}

func importReadError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("import %s:%d: %w", name, pe.Line, pe.Err)
	}
	return fmt.Errorf("import %s: %w", name, err)
}

// parseHeader maps column names to their index. Names are matched case
// insensitively; unknown, duplicate and missing required names are errors
// so a typo never silently drops a column.
func parseHeader(header []string) (map[string]int, error) {
	// The required columns are what every public list we seed from can
	// provide; category and notes are for lists the operator curates.
	required := []string{"kind", "value", "label", "source", "confidence"}
	known := map[string]bool{"category": true, "notes": true}
	for _, c := range required {
		known[c] = true
	}
	col := map[string]int{}
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // spreadsheet exports start with a BOM
		}
		h = strings.ToLower(strings.TrimSpace(h))
		if !known[h] {
			return nil, fmt.Errorf("header: unknown column %q, want kind, value, label, source, confidence and optionally category, notes", h)
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("header: column %q twice", h)
		}
		col[h] = i
	}
	var missing []string
	for _, c := range required {
		if _, ok := col[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("header: missing column %s", strings.Join(missing, ", "))
	}
	return col, nil
}
