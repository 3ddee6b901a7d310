package db

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Import formats.
const (
	FormatCSV   = "csv"   // ours: a header naming kind, value, label, source, confidence, …
	FormatJSONL = "jsonl" // ours: one Record as JSON per line (what export writes)
	FormatJARM  = "jarm"  // a JARM list: hash,label[,source]
	FormatSSLBL = "sslbl" // abuse.ch SSLBL SSL certificate blacklist: Listingdate,SHA1,Listingreason
)

// ImportFormats lists the formats Import reads.
func ImportFormats() []string {
	return []string{FormatCSV, FormatJSONL, FormatJARM, FormatSSLBL, FormatGoscanner, FormatJARMPy, FormatTLSX, FormatProbe}
}

// MaxImportBytes bounds one imported file.
const MaxImportBytes = 256 << 20

// MaxImportLineBytes bounds one JSON line: a record is a few hundred bytes,
// a longer line is rejected as bad input, not decoded.
const MaxImportLineBytes = 1 << 20

// maxDetectBytes is how much of a line DetectFormat looks at.
const maxDetectBytes = 64 << 10

// sslblTime is the layout of SSLBL's listing date (UTC).
const sslblTime = "2006-01-02 15:04:05"

// ImportOptions tunes Import.
type ImportOptions struct {
	// Format is one of ImportFormats; "" detects it from the content.
	Format string `json:"format,omitempty"`
	// Partial writes the valid lines even when some are rejected. By
	// default an import is all-or-nothing per file.
	Partial bool `json:"partial,omitempty"`
	// Source, Confidence and Category fill lines that do not set them
	// (JARM lists have no confidence column; SSLBL has none of them).
	Source     string `json:"source,omitempty"`
	Confidence string `json:"confidence,omitempty"`
	Category   string `json:"category,omitempty"`
	// Label names the entries of lines without one (scan outputs have
	// none; they default to "scan:" and the first server seen).
	Label string `json:"label,omitempty"`
	// Replace lets the file overwrite entries that came from another
	// source. By default they are kept and listed in ImportReport.Kept: an
	// operator's own high-confidence entry must not be turned into a
	// feed's low-confidence one (and stop alerting) by an import.
	Replace bool `json:"replace,omitempty"`
}

// ImportReport is the outcome of Import.
type ImportReport struct {
	Name     string      `json:"name"`
	Format   string      `json:"format"`
	Accepted int         `json:"accepted"`           // records written; 0 when Import fails
	Rejected []Rejection `json:"rejected,omitempty"` // every invalid line, in file order
	Warnings []Rejection `json:"warnings,omitempty"` // accepted lines worth a second look
	Keys     []Key       `json:"keys,omitempty"`     // the fingerprints written
	Kept     []Key       `json:"kept,omitempty"`     // existing entries of another source left as they were
}

// Rejection is one line Import refused or warns about.
type Rejection struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// ImportInfo describes the last import, kept in meta.
type ImportInfo struct {
	Time     time.Time `json:"time"`
	Name     string    `json:"name"`
	Format   string    `json:"format"`
	Accepted int       `json:"accepted"`
	Rejected int       `json:"rejected"`
}

// parsedLine is one record a format parser produced.
type parsedLine struct {
	line      int
	rec       Record
	confGiven bool // the line set a confidence (else defaults apply)
}

// importError is an error about the whole file (format, header), not a line.
type importError struct {
	line int
	msg  string
}

func (e *importError) Error() string { return e.msg }

// Import reads r in the format detected from its content, as ImportWith.
func (d *DB) Import(r io.Reader, name string) (ImportReport, error) {
	return d.ImportWith(r, name, ImportOptions{})
}

// ImportWith validates every line of r and writes the records in one
// transaction, upserting as Add does. Unless o.Partial is set it is
// all-or-nothing: if any line is invalid nothing is written, the error
// names name:line and the reason of the first bad line, and the report
// lists every rejection. Entries equal to a default stack (DefaultStack)
// are accepted with a warning and, when the line gave no confidence, kept
// at low confidence.
func (d *DB) ImportWith(r io.Reader, name string, o ImportOptions) (ImportReport, error) {
	rep := ImportReport{Name: name}
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return rep, fmt.Errorf("import %s: %w", name, err)
	}
	if len(data) > MaxImportBytes {
		return rep, fmt.Errorf("import %s: larger than %d MiB", name, MaxImportBytes>>20)
	}
	format := strings.ToLower(strings.TrimSpace(o.Format))
	if format == "" {
		if format, err = DetectFormat(data); err != nil {
			return rep, fileError(&rep, name, err)
		}
	}
	rep.Format = format
	var lines []parsedLine
	switch format {
	case FormatCSV:
		lines, err = parseCSV(data, &rep)
	case FormatJSONL:
		lines, err = parseJSONL(data, &rep)
	case FormatJARM:
		lines, err = parseJARMList(data, name, o, &rep)
	case FormatSSLBL:
		lines, err = parseSSLBL(data, o, &rep)
	case FormatGoscanner:
		lines, err = parseGoscanner(data, name, o, &rep)
	case FormatJARMPy:
		lines, err = parseJARMPy(data, name, o, &rep)
	case FormatTLSX:
		lines, err = parseTLSX(data, name, o, &rep)
	case FormatProbe:
		lines, err = parseProbe(data, name, o, &rep)
	default:
		return rep, fmt.Errorf("import %s: format %q: want %s", name, format, strings.Join(ImportFormats(), ", "))
	}
	if err != nil {
		return rep, fileError(&rep, name, err)
	}
	recs := d.checkLines(lines, o, name, &rep)
	sort.SliceStable(rep.Rejected, func(i, j int) bool { return rep.Rejected[i].Line < rep.Rejected[j].Line })
	if n := len(rep.Rejected); n > 0 && (!o.Partial || len(recs) == 0) {
		first := rep.Rejected[0]
		rep.Accepted, rep.Keys = 0, nil
		return rep, fmt.Errorf("import %s:%d: %s (%d bad lines, nothing imported)", name, first.Line, first.Reason, n)
	}

	now := d.now().UTC()
	info := ImportInfo{Time: now, Name: name, Format: format, Accepted: len(recs), Rejected: len(rep.Rejected)}
	var kept []Key
	err = d.update(func(tx *bolt.Tx) error {
		kept = kept[:0]
		for _, rec := range recs {
			if !o.Replace {
				if old, ok, err := getRecord(tx, rec.Kind, rec.Value); err != nil {
					return err
				} else if ok && old.Source != rec.Source {
					kept = append(kept, rec.Key())
					continue
				}
			}
			if _, err := put(tx, rec, now); err != nil {
				return err
			}
		}
		info.Accepted = len(recs) - len(kept)
		raw, err := json.Marshal(info)
		if err != nil {
			return err
		}
		meta, err := bucket(tx, bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put([]byte(keyLastImport), raw)
	})
	if err != nil {
		rep.Keys = nil
		return rep, fmt.Errorf("import %s into %q: %w", name, d.path, err)
	}
	d.gen.Add(1)
	rep.Accepted = len(recs) - len(kept)
	if len(kept) > 0 {
		rep.Kept = kept
		skip := map[Key]bool{}
		for _, k := range kept {
			skip[k] = true
		}
		var written []Key
		for _, k := range rep.Keys {
			if !skip[k] {
				written = append(written, k)
			}
		}
		rep.Keys = written
	}
	return rep, nil
}

// fileError turns a whole-file problem into the report's only rejection
// and an error naming name:line.
func fileError(rep *ImportReport, name string, err error) error {
	var ie *importError
	if errors.As(err, &ie) {
		rep.Rejected = append(rep.Rejected, Rejection{Line: ie.line, Reason: ie.msg})
		return fmt.Errorf("import %s:%d: %s", name, ie.line, ie.msg)
	}
	return fmt.Errorf("import %s: %w", name, err)
}

// checkLines fills defaults, validates, drops duplicates and collects the
// records to write.
func (d *DB) checkLines(lines []parsedLine, o ImportOptions, name string, rep *ImportReport) []Record {
	firstLine := map[Key]int{}
	var recs []Record
	for _, pl := range lines {
		rec := pl.rec
		if strings.TrimSpace(rec.Source) == "" {
			rec.Source = o.Source
		}
		if strings.TrimSpace(rec.Category) == "" {
			rec.Category = o.Category
		}
		if strings.TrimSpace(rec.Label) == "" {
			rec.Label = o.Label
		}
		confGiven := pl.confGiven && strings.TrimSpace(rec.Confidence) != ""
		if !confGiven {
			rec.Confidence = o.Confidence
			confGiven = o.Confidence != ""
		}
		if err := ValidateRecord(&rec); err != nil {
			rep.Rejected = append(rep.Rejected, Rejection{Line: pl.line, Reason: err.Error()})
			continue
		}
		k := rec.Key()
		if first, dup := firstLine[k]; dup {
			rep.Rejected = append(rep.Rejected, Rejection{Line: pl.line, Reason: fmt.Sprintf("duplicate %s %s, first on line %d", k.Kind, k.Value, first)})
			continue
		}
		firstLine[k] = pl.line
		if ds, ok := DefaultStack(rec.Kind, rec.Value); ok {
			if !confGiven {
				rec.Confidence = ConfidenceLow
				rep.Warnings = append(rep.Warnings, Rejection{Line: pl.line, Reason: fmt.Sprintf("%s %s equals a default stack (%s): imported with low confidence", k.Kind, k.Value, ds)})
			} else if rec.Confidence != ConfidenceLow {
				rep.Warnings = append(rep.Warnings, Rejection{Line: pl.line, Reason: fmt.Sprintf("%s %s equals a default stack (%s): %s confidence will flag every server running it", k.Kind, k.Value, ds, rec.Confidence)})
			}
		}
		recs = append(recs, rec)
		rep.Keys = append(rep.Keys, k)
	}
	return recs
}

// isDate reports whether s starts with YYYY-MM-DD.
func isDate(s string) bool {
	if len(s) < 10 {
		return false
	}
	_, err := time.Parse("2006-01-02", s[:10])
	return err == nil
}

// DetectFormat tells the import format from the first lines of data.
func DetectFormat(data []byte) (string, error) {
	n := 0
	for raw := range bytes.Lines(data) {
		n++
		// The format shows in a line's head; a huge line is judged by it.
		line := strings.TrimSpace(string(raw[:min(len(raw), maxDetectBytes)]))
		if n == 1 {
			line = strings.TrimSpace(strings.TrimPrefix(line, "\ufeff"))
		}
		if line == "" {
			continue
		}
		lower := strings.ToLower(line)
		if strings.HasPrefix(line, "#") {
			if strings.Contains(lower, "sslbl") || strings.Contains(lower, "listingdate,sha1,listingreason") {
				return FormatSSLBL, nil
			}
			continue
		}
		if strings.HasPrefix(line, "{") {
			if strings.Contains(line, `"jarm_hash"`) {
				return FormatTLSX, nil
			}
			if strings.Contains(line, `"jarm_raw"`) && strings.Contains(line, `"schema_version"`) {
				return FormatProbe, nil
			}
			return FormatJSONL, nil
		}
		fields := strings.Split(lower, ",")
		for i := range fields {
			fields[i] = strings.Trim(strings.TrimSpace(fields[i]), `"`)
		}
		switch {
		case fields[0] == "listingdate":
			return FormatSSLBL, nil
		case contains(fields, "kind"):
			return FormatCSV, nil
		case contains(fields, "fingerprint") && contains(fields, "server_name"):
			return FormatGoscanner, nil
		case len(fields) >= 3 && len(fields[2]) == 62 && isHexString(fields[2]):
			return FormatJARMPy, nil
		case fields[0] == "jarm" || fields[0] == "hash" || (len(fields[0]) == 62 && isHexString(fields[0])):
			return FormatJARM, nil
		case len(fields) >= 3 && isDate(fields[0]) && len(fields[1]) == 40 && isHexString(fields[1]):
			return FormatSSLBL, nil
		}
		return "", &importError{line: n, msg: fmt.Sprintf("cannot tell the format from %.60q: want our CSV (a kind,value,label,source,confidence header), JSON lines, a JARM list (hash,label[,source]), the abuse.ch SSLBL CSV, goscanner's fingerprints.csv, jarm.py -o CSV, tlsx JSON lines or stackprint probe --json lines; pass the format explicitly", line)}
	}
	return "", &importError{line: 1, msg: "empty file, want a header line"}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func isHexString(s string) bool {
	return s != "" && strings.IndexFunc(s, func(c rune) bool { return !isHex(c) }) < 0
}

// newCSVReader returns a reader for the comma-separated formats: # comments,
// variable field counts (checked per line to report them as rejections).
func newCSVReader(data []byte) *csv.Reader {
	cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false
	return cr
}

// readCSV calls fn for every record; CSV syntax errors become rejections.
func readCSV(cr *csv.Reader, rep *ImportReport, fn func(line int, fields []string)) error {
	for {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			rep.Rejected = append(rep.Rejected, Rejection{Line: pe.Line, Reason: pe.Err.Error()})
			continue
		}
		if err != nil {
			return err
		}
		line, _ := cr.FieldPos(0)
		fn(line, fields)
	}
}

// csvColumns are the columns of our CSV: the required ones first.
func csvColumns() (required, optional []string) {
	return []string{"kind", "value", "label", "source", "confidence"},
		append([]string{"category", "notes", "block_count", "top_count", "first_seen", "last_seen"}, atsfHelloNames[:]...)
}

// parseCSV reads our CSV: a header line naming the columns kind, value,
// label, source, confidence and optionally category, notes, block_count,
// top_count, first_seen, last_seen (RFC 3339) and the ten ClientHello
// names (an atsf entry's answers, random4520 … random9428), in any order.
func parseCSV(data []byte, rep *ImportReport) ([]parsedLine, error) {
	cr := newCSVReader(data)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &importError{line: 1, msg: "empty file, want a header line"}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return nil, &importError{line: pe.Line, msg: pe.Err.Error()}
	}
	if err != nil {
		return nil, err
	}
	headerLine, _ := cr.FieldPos(0)
	col, err := parseHeader(header)
	if err != nil {
		return nil, &importError{line: headerLine, msg: err.Error()}
	}
	var out []parsedLine
	err = readCSV(cr, rep, func(line int, fields []string) {
		if len(fields) != len(header) {
			rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: fmt.Sprintf("%d fields, header has %d", len(fields), len(header))})
			return
		}
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return fields[i]
			}
			return ""
		}
		rec := Record{
			Kind: get("kind"), Value: get("value"), Label: get("label"), Source: get("source"),
			Confidence: get("confidence"), Category: get("category"), Notes: get("notes"),
		}
		for _, n := range atsfHelloNames {
			if get(n) != "" {
				for _, n := range atsfHelloNames {
					rec.Hellos = append(rec.Hellos, get(n)) // checked against the value with the record
				}
				break
			}
		}
		var perr error
		for _, f := range []struct {
			name string
			dst  *uint64
		}{{"block_count", &rec.BlockCount}, {"top_count", &rec.TopCount}} {
			if s := strings.TrimSpace(get(f.name)); s != "" && perr == nil {
				n, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					perr = fmt.Errorf("%s %q: not a count", f.name, s)
				}
				*f.dst = n
			}
		}
		for _, f := range []struct {
			name string
			dst  *time.Time
		}{{"first_seen", &rec.FirstSeen}, {"last_seen", &rec.LastSeen}} {
			if s := strings.TrimSpace(get(f.name)); s != "" && perr == nil {
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					perr = fmt.Errorf("%s %q: want RFC 3339, e.g. 2025-01-02T03:04:05Z", f.name, s)
				}
				*f.dst = t
			}
		}
		if perr != nil {
			rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: perr.Error()})
			return
		}
		out = append(out, parsedLine{line: line, rec: rec, confGiven: true})
	})
	return out, err
}

// parseHeader maps column names to their index. Names are matched case
// insensitively; unknown, duplicate and missing required names are errors
// so a typo never silently drops a column.
func parseHeader(header []string) (map[string]int, error) {
	required, optional := csvColumns()
	known := map[string]bool{}
	for _, c := range append(append([]string{}, required...), optional...) {
		known[c] = true
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !known[h] {
			return nil, fmt.Errorf("header: unknown column %q, want %s and optionally %s", h, strings.Join(required, ", "), strings.Join(optional, ", "))
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

// parseJSONL reads one Record per line; blank and # lines are skipped and
// unknown fields are errors.
func parseJSONL(data []byte, rep *ImportReport) ([]parsedLine, error) {
	var out []parsedLine
	n := 0
	for raw := range bytes.Lines(bytes.TrimPrefix(data, []byte("\ufeff"))) {
		n++
		line := bytes.TrimSpace(raw)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(line) > MaxImportLineBytes {
			// Rejected like any bad line; the lines after it are still read.
			rep.Rejected = append(rep.Rejected, Rejection{Line: n, Reason: fmt.Sprintf("line of %d bytes, longer than %d", len(line), MaxImportLineBytes)})
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var rec Record
		if err := dec.Decode(&rec); err != nil {
			rep.Rejected = append(rep.Rejected, Rejection{Line: n, Reason: "json: " + strings.TrimPrefix(err.Error(), "json: ")})
			continue
		}
		if dec.More() {
			rep.Rejected = append(rep.Rejected, Rejection{Line: n, Reason: "json: more than one value on the line"})
			continue
		}
		out = append(out, parsedLine{line: n, rec: rec, confGiven: true})
	}
	return out, nil
}

// parseJARMList reads hash,label[,source] lines; a first line whose hash
// column is named jarm or hash is a header. A line without a source gets
// the option's, else "import:" and the file's base name; the confidence
// is the option's, else medium, or low for a default stack.
func parseJARMList(data []byte, name string, o ImportOptions, rep *ImportReport) ([]parsedLine, error) {
	source := o.Source
	if source == "" {
		source = sourceFromName(name)
	}
	cr := newCSVReader(data)
	var out []parsedLine
	first := true
	err := readCSV(cr, rep, func(line int, fields []string) {
		if first {
			first = false
			if h := strings.ToLower(strings.TrimSpace(fields[0])); h == "jarm" || h == "hash" {
				return
			}
		}
		if len(fields) < 2 || len(fields) > 3 {
			rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: fmt.Sprintf("%d fields, want hash,label[,source]", len(fields))})
			return
		}
		rec := Record{Kind: KindJARM, Value: fields[0], Label: fields[1], Source: source}
		if len(fields) == 3 && strings.TrimSpace(fields[2]) != "" {
			rec.Source = fields[2]
		}
		out = append(out, parsedLine{line: line, rec: rec})
	})
	return out, err
}

// parseSSLBL reads the abuse.ch SSLBL SSL certificate blacklist CSV:
//
//	# Listingdate,SHA1,Listingreason
//	2024-09-02 06:17:52,4da14224452c1fe61f46b1112c43ecfd9f322c82,Rhadamanthys C&C
//
// The label is the listing reason without " C&C" (category c2 when it had
// it, else malware), the listing date (UTC) is the first time seen, the
// source abuse.ch SSLBL and the confidence high: a certificate hash names
// one deployment, not a stack. Options override source, category and
// confidence.
func parseSSLBL(data []byte, o ImportOptions, rep *ImportReport) ([]parsedLine, error) {
	source, confidence := o.Source, o.Confidence
	if source == "" {
		source = "abuse.ch SSLBL"
	}
	if confidence == "" {
		confidence = ConfidenceHigh
	}
	cr := newCSVReader(data)
	var out []parsedLine
	err := readCSV(cr, rep, func(line int, fields []string) {
		if strings.EqualFold(strings.TrimSpace(fields[0]), "listingdate") {
			return // a bare header line
		}
		if len(fields) < 3 {
			rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: fmt.Sprintf("%d fields, want Listingdate,SHA1,Listingreason", len(fields))})
			return
		}
		listed, err := time.ParseInLocation(sslblTime, strings.TrimSpace(fields[0]), time.UTC)
		if err != nil {
			rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: fmt.Sprintf("listing date %q: want YYYY-MM-DD HH:MM:SS (UTC)", fields[0])})
			return
		}
		reason := strings.TrimSpace(strings.Join(fields[2:], ","))
		if reason == "" {
			rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: "listing reason: empty"})
			return
		}
		label, category := reason, "malware"
		if l, ok := strings.CutSuffix(reason, " C&C"); ok && strings.TrimSpace(l) != "" {
			label, category = strings.TrimSpace(l), "c2"
		}
		if o.Category != "" {
			category = o.Category
		}
		out = append(out, parsedLine{line: line, confGiven: true, rec: Record{
			Kind: KindCertSHA1, Value: fields[1], Label: label, Category: category,
			Source: source, Confidence: confidence,
			Notes:     fmt.Sprintf("SSLBL listing reason %q, listed %s UTC", reason, listed.Format(sslblTime)),
			FirstSeen: listed,
		}})
	})
	return out, err
}

// sourceFromName is the default source of a list that names none.
func sourceFromName(name string) string { return "import:" + filepath.Base(name) }
