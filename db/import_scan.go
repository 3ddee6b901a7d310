package db

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// Scan outputs of other tools, imported as DB entries (one per distinct
// fingerprint; the servers that carried it are listed in its notes).
const (
	FormatGoscanner = "goscanner" // TUM goscanner's fingerprints.csv: ip,port,server_name,<10 ClientHellos>,fingerprint
	FormatJARMPy    = "jarmpy"    // salesforce jarm.py -o CSV: host,ip,jarm[,raw…]
	FormatTLSX      = "tlsx"      // projectdiscovery tlsx JSON lines with jarm_hash
	FormatProbe     = "probe"     // stackprint probe --json lines: atsf (with its ten ClientHello answers) and jarm
)

// maxScanServersNoted bounds the servers listed in one entry's notes.
const maxScanServersNoted = 20

// scanEntries collects one record per fingerprint of a scan: the first
// line that carried it, and every server it was seen on.
type scanEntries struct {
	o       ImportOptions
	source  string
	order   []Key
	first   map[Key]*parsedLine
	servers map[Key][]string
}

func newScanEntries(name string, o ImportOptions) *scanEntries {
	source := o.Source
	if source == "" {
		source = sourceFromName(name)
	}
	return &scanEntries{o: o, source: source, first: map[Key]*parsedLine{}, servers: map[Key][]string{}}
}

// add files kind/value seen on server at line; an invalid value is a
// rejection naming the field. hellos are an ATSF entry's per-ClientHello
// strings, kept for near matching.
func (s *scanEntries) add(rep *ImportReport, line int, field, kind, value, server string, hellos ...string) {
	k, err := NormaliseKey(kind, value)
	if err != nil {
		rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: fmt.Sprintf("%s: %v", field, err)})
		return
	}
	if _, ok := s.first[k]; !ok {
		label := s.o.Label
		if label == "" {
			label = "scan:" + server
		}
		s.first[k] = &parsedLine{line: line, rec: Record{Kind: k.Kind, Value: k.Value, Label: label, Source: s.source, Hellos: hellos}}
		s.order = append(s.order, k)
	}
	s.servers[k] = append(s.servers[k], server)
}

// lines returns the records, their notes naming the servers.
func (s *scanEntries) lines(format string) []parsedLine {
	out := make([]parsedLine, 0, len(s.order))
	for _, k := range s.order {
		pl := *s.first[k]
		srv := s.servers[k]
		shown := srv[:min(len(srv), maxScanServersNoted)]
		pl.rec.Notes = fmt.Sprintf("%s scan: seen on %d server(s): %s", format, len(srv), strings.Join(shown, ", "))
		if len(srv) > len(shown) {
			pl.rec.Notes += fmt.Sprintf(", … (%d more)", len(srv)-len(shown))
		}
		if len(pl.rec.Notes) > maxNotes {
			pl.rec.Notes = pl.rec.Notes[:maxNotes-3] + "…"
		}
		out = append(out, pl)
	}
	return out
}

// serverName renders host:port and the name a scan used for it.
func serverName(ip, port, name string) string {
	s := ip
	if port != "" {
		s = net.JoinHostPort(ip, port)
	}
	if name != "" && name != ip {
		s += "/" + name
	}
	return s
}

// atsfStatusRequest reports whether a combined ATSF string still carries
// status_request entries (goscanner's generate-fingerprints --keep-sr):
// its sha256 would then never equal stackprint's id.
func atsfStatusRequest(fp string) bool {
	return strings.Contains(fp, "-5.") || strings.Contains(fp, "_5.")
}

// parseGoscanner reads goscanner's fingerprints.csv: a header with ip,
// port, server_name, one column per ClientHello and fingerprint (the
// combined string, status_request removed). Each distinct fingerprint
// becomes an ATSF entry keyed by its sha256, as stackprint computes it.
func parseGoscanner(data []byte, name string, o ImportOptions, rep *ImportReport) ([]parsedLine, error) {
	cr := newCSVReader(data)
	s := newScanEntries(name, o)
	var col map[string]int
	var hdrErr error
	err := readCSV(cr, rep, func(line int, fields []string) {
		if hdrErr != nil {
			return
		}
		if col == nil {
			col = map[string]int{}
			for i, f := range fields {
				col[strings.ToLower(strings.TrimSpace(f))] = i
			}
			for _, want := range []string{"ip", "port", "server_name", "fingerprint"} {
				if _, ok := col[want]; !ok {
					hdrErr = &importError{line: line, msg: fmt.Sprintf("goscanner header %q lacks column %q (want ip,port,server_name,<ClientHellos>,fingerprint)", strings.Join(fields, ","), want)}
					return
				}
			}
			return
		}
		get := func(c string) string {
			if i := col[c]; i < len(fields) {
				return strings.TrimSpace(fields[i])
			}
			return ""
		}
		if len(fields) != len(col) {
			rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: fmt.Sprintf("%d fields, the header has %d", len(fields), len(col))})
			return
		}
		fp := get("fingerprint")
		switch {
		case fp == "":
			rep.Warnings = append(rep.Warnings, Rejection{Line: line, Reason: "fingerprint: empty (not every ClientHello answered), skipped"})
			return
		case strings.Count(fp, "|") != 9:
			rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: fmt.Sprintf("fingerprint: %d ClientHello strings, want 10 joined by |", strings.Count(fp, "|")+1)})
			return
		case atsfStatusRequest(fp):
			rep.Rejected = append(rep.Rejected, Rejection{Line: line, Reason: "fingerprint: keeps status_request (generated with --keep-sr); regenerate without it to match stackprint's ATSF id"})
			return
		}
		sum := sha256.Sum256([]byte(fp))
		// The combined string is the ten per-ClientHello columns with
		// status_request removed: its parts are what near matching needs.
		s.add(rep, line, "fingerprint", KindATSF, hex.EncodeToString(sum[:]), serverName(get("ip"), get("port"), get("server_name")), strings.Split(fp, "|")...)
	})
	if hdrErr != nil {
		return nil, hdrErr
	}
	if err != nil {
		return nil, err
	}
	if col == nil {
		return nil, &importError{line: 1, msg: "empty file, want the goscanner header"}
	}
	return s.lines(FormatGoscanner), nil
}

// parseJARMPy reads jarm.py's -o CSV: host,ip,jarm and, with -v, the raw
// JARM (which contains commas). The all-zero JARM (no answer) is skipped.
func parseJARMPy(data []byte, name string, o ImportOptions, rep *ImportReport) ([]parsedLine, error) {
	s := newScanEntries(name, o)
	n := 0
	for raw := range bytes.Lines(data) {
		n++
		line := strings.TrimSpace(string(raw))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, ",", 4)
		if len(f) < 3 {
			rep.Rejected = append(rep.Rejected, Rejection{Line: n, Reason: fmt.Sprintf("%d fields, want host,ip,jarm[,raw]", len(f))})
			continue
		}
		host, ip, jarm := strings.TrimSpace(f[0]), strings.TrimSpace(f[1]), strings.TrimSpace(f[2])
		if strings.EqualFold(host, "host") && strings.EqualFold(jarm, "jarm") {
			continue // a header someone added
		}
		if strings.Trim(jarm, "0") == "" {
			rep.Warnings = append(rep.Warnings, Rejection{Line: n, Reason: fmt.Sprintf("%s: no server answered (all-zero JARM), skipped", host)})
			continue
		}
		if net.ParseIP(ip) == nil {
			ip = "" // "Failed to resolve IP"
		}
		server := host
		if ip != "" && ip != host {
			server += " (" + ip + ")"
		}
		s.add(rep, n, "jarm", KindJARM, jarm, server)
	}
	return s.lines(FormatJARMPy), nil
}

// tlsxLine is the part of a tlsx JSON line used here.
type tlsxLine struct {
	Host     string          `json:"host"`
	IP       string          `json:"ip"`
	Port     json.RawMessage `json:"port"` // "443" or 443
	JARMHash string          `json:"jarm_hash"`
}

// parseTLSX reads tlsx -json output; lines without jarm_hash (tlsx run
// without -jarm, or no answer) are skipped with a warning.
func parseTLSX(data []byte, name string, o ImportOptions, rep *ImportReport) ([]parsedLine, error) {
	s := newScanEntries(name, o)
	err := eachLine(data, func(n int, line []byte) {
		var l tlsxLine
		if err := json.Unmarshal(line, &l); err != nil {
			rep.Rejected = append(rep.Rejected, Rejection{Line: n, Reason: fmt.Sprintf("not a tlsx JSON object: %v", err)})
			return
		}
		port := strings.Trim(string(l.Port), `"`)
		server := serverName(l.IP, port, l.Host)
		if l.IP == "" {
			server = serverName(l.Host, port, "")
		}
		if strings.Trim(l.JARMHash, "0") == "" {
			rep.Warnings = append(rep.Warnings, Rejection{Line: n, Reason: fmt.Sprintf("%s: no jarm_hash (or all zeros), skipped", server)})
			return
		}
		s.add(rep, n, "jarm_hash", KindJARM, l.JARMHash, server)
	})
	if err != nil {
		return nil, err
	}
	return s.lines(FormatTLSX), nil
}

// probeLine is the part of a `stackprint probe --json` line used here.
type probeLine struct {
	SchemaVersion *int   `json:"schema_version"`
	Target        string `json:"target"`
	SNI           string `json:"observed_sni"`
	StartTLS      string `json:"starttls"`
	JARM          string `json:"jarm"`
	ATSF          *struct {
		ID     string `json:"id"`
		Hellos []struct {
			Name string `json:"name"`
			Raw  string `json:"raw"`
		} `json:"hellos"`
	} `json:"atsf"`
}

// parseProbe reads `stackprint probe --json` output, one object per line:
// each probe gives an atsf entry with its ten per-ClientHello strings
// (when all ten answered) and a jarm entry (when any probe answered).
// Through STARTTLS both are keyed "PROTOCOL:hex".
func parseProbe(data []byte, name string, o ImportOptions, rep *ImportReport) ([]parsedLine, error) {
	s := newScanEntries(name, o)
	err := eachLine(data, func(n int, line []byte) {
		var l probeLine
		if err := json.Unmarshal(line, &l); err != nil {
			rep.Rejected = append(rep.Rejected, Rejection{Line: n, Reason: fmt.Sprintf("not a stackprint probe --json object: %v", err)})
			return
		}
		if l.SchemaVersion == nil || l.Target == "" {
			rep.Rejected = append(rep.Rejected, Rejection{Line: n, Reason: "not a stackprint probe --json object: no schema_version or target"})
			return
		}
		server := l.Target
		if l.SNI != "" {
			server += "/" + l.SNI
		}
		up := ""
		if l.StartTLS != "" {
			up = l.StartTLS + ":"
		}
		got := 0
		if a := l.ATSF; a != nil && a.ID != "" {
			if len(a.Hellos) != ATSFHellos {
				rep.Rejected = append(rep.Rejected, Rejection{Line: n, Reason: fmt.Sprintf("atsf.hellos: %d, want %d", len(a.Hellos), ATSFHellos)})
				return
			}
			hellos := make([]string, ATSFHellos)
			for i, h := range a.Hellos {
				if h.Name != atsfHelloNames[i] {
					rep.Rejected = append(rep.Rejected, Rejection{Line: n, Reason: fmt.Sprintf("atsf.hellos[%d]: %q, want %s", i, h.Name, atsfHelloNames[i])})
					hellos = nil
					break
				}
				hellos[i] = StripStatusRequest(h.Raw)
			}
			if hellos == nil {
				return
			}
			s.add(rep, n, "atsf.id", KindATSF, up+a.ID, server, hellos...)
			got++
		}
		if strings.Trim(l.JARM, "0") != "" {
			s.add(rep, n, "jarm", KindJARM, up+l.JARM, server)
			got++
		}
		if got == 0 {
			rep.Warnings = append(rep.Warnings, Rejection{Line: n, Reason: fmt.Sprintf("%s: no ATSF (not all ten ClientHellos answered) and no JARM, skipped", server)})
		}
	})
	if err != nil {
		return nil, err
	}
	return s.lines(FormatProbe), nil
}

// eachLine calls fn with every non-blank line of a line-per-record import
// (trimmed) and its 1-based number; a line past MaxImportLineBytes ends
// the import with an error naming it.
func eachLine(data []byte, fn func(n int, line []byte)) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxImportLineBytes)
	n := 0
	for sc.Scan() {
		n++
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			fn(n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return &importError{line: n + 1, msg: fmt.Sprintf("line longer than %d bytes or unreadable: %v", MaxImportLineBytes, err)}
	}
	return nil
}
