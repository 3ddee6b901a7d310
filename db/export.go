package db

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Export formats.
const (
	ExportJSONL           = "jsonl"            // one Record per line; Import reads it back
	ExportCSV             = "csv"              // our CSV with every column; Import reads it back
	ExportZeekIntel       = "zeek-intel"       // Zeek Intel framework input file
	ExportSuricataDataset = "suricata-dataset" // Suricata dataset, type ip
)

// ExportFormats lists the formats Export writes.
func ExportFormats() []string {
	return []string{ExportJSONL, ExportCSV, ExportZeekIntel, ExportSuricataDataset}
}

// ExportOptions selects what Export writes.
type ExportOptions struct {
	Format string `json:"format"`
	// Kind limits jsonl and csv to one fingerprint kind ("" = all).
	Kind string `json:"kind,omitempty"`
	// MinConfidence drops records below it ("" = keep all).
	MinConfidence string `json:"min_confidence,omitempty"`
	// Since limits the servers of zeek-intel and suricata-dataset to those
	// probed with a matching fingerprint at or after it (zero = ever).
	Since time.Time `json:"since,omitzero"`
	// IntelSource is meta.source in a Zeek Intel file; default "stackprint".
	IntelSource string `json:"intel_source,omitempty"`
}

// Export writes the DB in o.Format and returns the number of items
// (records, indicators or addresses) written.
//
//   - jsonl, csv: the fingerprint records.
//   - zeek-intel: Intel::ADDR for every observed server whose current
//     fingerprints match a record (a malicious verdict), and
//     Intel::CERT_HASH (SHA-1, as Zeek matches it) for every cert_sha1
//     record and for the certificate of servers matched by cert_sha256.
//     docs/LOG-FORMATS.md §3.2.
//   - suricata-dataset: the addresses of those servers, one per line, for
//     `dataset:isset,NAME, type ip, load FILE` (docs/LOG-FORMATS.md §3.3).
func (d *DB) Export(w io.Writer, o ExportOptions) (int, error) {
	minRank := 0
	if o.MinConfidence != "" {
		if minRank = confidenceRank(strings.ToLower(o.MinConfidence)); minRank == 0 {
			return 0, fmt.Errorf("export: min confidence %q: want low, medium or high", o.MinConfidence)
		}
	}
	bw := bufio.NewWriter(w)
	var (
		n   int
		err error
	)
	switch o.Format {
	case ExportJSONL, ExportCSV:
		n, err = d.exportRecords(bw, o, minRank)
	case ExportZeekIntel:
		n, err = d.exportZeekIntel(bw, o)
	case ExportSuricataDataset:
		n, err = d.exportDataset(bw, o)
	default:
		return 0, fmt.Errorf("export: format %q: want %s", o.Format, strings.Join(ExportFormats(), ", "))
	}
	if err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("export %s: %w", o.Format, err)
	}
	return n, nil
}

func (d *DB) exportRecords(w io.Writer, o ExportOptions, minRank int) (int, error) {
	recs, err := d.List(o.Kind)
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	var cw *csv.Writer
	var enc *json.Encoder
	if o.Format == ExportCSV {
		cw = csv.NewWriter(w)
		req, opt := csvColumns()
		if err := cw.Write(append(append([]string{}, req...), opt...)); err != nil {
			return 0, err
		}
	} else {
		enc = json.NewEncoder(w)
		enc.SetEscapeHTML(false)
	}
	n := 0
	for _, r := range recs {
		if confidenceRank(r.Confidence) < minRank {
			continue
		}
		if enc != nil {
			if err := enc.Encode(r); err != nil {
				return 0, fmt.Errorf("export %s %s: %w", r.Kind, r.Value, err)
			}
		} else {
			row := []string{r.Kind, r.Value, r.Label, r.Source, r.Confidence, r.Category, r.Notes,
				strconv.FormatUint(r.BlockCount, 10), strconv.FormatUint(r.TopCount, 10),
				rfc3339OrEmpty(r.FirstSeen), rfc3339OrEmpty(r.LastSeen)}
			// An atsf entry's ten answers, one column per ClientHello.
			hellos := r.Hellos
			if len(hellos) != ATSFHellos {
				hellos = make([]string, ATSFHellos)
			}
			row = append(row, hellos...)
			if err := cw.Write(row); err != nil {
				return 0, err
			}
		}
		n++
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return 0, fmt.Errorf("export csv: %w", err)
		}
	}
	return n, nil
}

func rfc3339OrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// intelLine is one Zeek Intel indicator.
type intelLine struct{ indicator, typ, desc string }

func (d *DB) exportZeekIntel(w io.Writer, o ExportOptions) (int, error) {
	servers, err := d.MatchedServers(o.MinConfidence, o.Since)
	if err != nil {
		return 0, fmt.Errorf("export zeek-intel: %w", err)
	}
	src := o.IntelSource
	if src == "" {
		src = "stackprint"
	}
	addrs := map[string][]string{} // ip → reasons
	certs := map[string]string{}   // sha1 → reason
	for _, s := range servers {
		ip := s.IP.String()
		for _, r := range s.Records {
			addrs[ip] = append(addrs[ip], fmt.Sprintf("%s (%s match on port %d, %s confidence)", r.Label, r.Kind, s.Port, r.Confidence))
			if r.Kind == KindCertSHA256 && s.CertSHA1 != "" {
				if _, ok := certs[s.CertSHA1]; !ok {
					certs[s.CertSHA1] = fmt.Sprintf("%s (certificate of %s, cert_sha256 match)", r.Label, netAddr(s.Observation))
				}
			}
		}
	}
	recs, err := d.List(KindCertSHA1)
	if err != nil {
		return 0, fmt.Errorf("export zeek-intel: %w", err)
	}
	minRank := confidenceRank(strings.ToLower(o.MinConfidence))
	for _, r := range recs {
		if confidenceRank(r.Confidence) < minRank {
			continue
		}
		certs[r.Value] = fmt.Sprintf("%s (%s, %s confidence)", r.Label, r.Source, r.Confidence)
	}
	var lines []intelLine
	for ip, reasons := range addrs {
		lines = append(lines, intelLine{ip, "Intel::ADDR", "stackprint: " + strings.Join(dedup(reasons), "; ")})
	}
	for sha1, reason := range certs {
		lines = append(lines, intelLine{sha1, "Intel::CERT_HASH", "stackprint: " + reason})
	}
	sort.Slice(lines, func(i, j int) bool {
		if lines[i].typ != lines[j].typ {
			return lines[i].typ < lines[j].typ
		}
		a, aerr := netip.ParseAddr(lines[i].indicator)
		b, berr := netip.ParseAddr(lines[j].indicator)
		if aerr == nil && berr == nil {
			return a.Less(b)
		}
		return lines[i].indicator < lines[j].indicator
	})
	if _, err := fmt.Fprintf(w, "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\n"); err != nil {
		return 0, err
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "%s\t%s\t%s\t%s\t-\n", l.indicator, l.typ, zeekIntelEscape(src), zeekIntelEscape(l.desc)); err != nil {
			return 0, err
		}
	}
	return len(lines), nil
}

func netAddr(o Observation) string { return o.Target().Addr().String() }

func dedup(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// zeekIntelEscape makes s one Zeek Intel field: the input reader unescapes
// \xHH, so TAB, newlines, other control bytes and backslashes are written
// that way; "-" and "(empty)" would read as unset and empty and are
// escaped too.
func zeekIntelEscape(s string) string {
	if s == "" {
		return "(empty)"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			fmt.Fprintf(&b, "\\x%02x", c)
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	if out == "-" {
		return "\\x2d"
	}
	if out == "(empty)" {
		return "\\x28empty)"
	}
	return out
}

func (d *DB) exportDataset(w io.Writer, o ExportOptions) (int, error) {
	servers, err := d.MatchedServers(o.MinConfidence, o.Since)
	if err != nil {
		return 0, fmt.Errorf("export suricata-dataset: %w", err)
	}
	seen := map[string]bool{}
	n := 0
	for _, s := range servers { // sorted by address
		ip := s.IP.String()
		if seen[ip] {
			continue
		}
		seen[ip] = true
		if _, err := fmt.Fprintln(w, ip); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}
