package tailer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/zeeklog"
)

// Event kinds produced by this package.
const (
	KindZeekSSL  = "zeek_ssl"
	KindZeekConn = "zeek_conn"
	KindEveTLS   = "eve_tls"
	KindEveFlow  = "eve_flow"
	KindEveAlert = "eve_alert"
)

// lineClass is what a parser made of one line.
type lineClass uint8

const (
	classMeta  lineClass = iota // header, comment or blank line
	classSkip                   // a valid record that is not a TLS event
	classEvent                  // a TLS event
)

// logKind is which Zeek log a record belongs to.
type logKind uint8

const (
	logOther logKind = iota
	logSSL
	logConn
)

// kindFromPath maps a Zeek path (#path or _path) to a log kind.
// json-streaming names its streams json_streaming_<path>.
func kindFromPath(p []byte) logKind {
	p = bytes.TrimPrefix(p, []byte("json_streaming_"))
	switch string(p) {
	case "ssl":
		return logSSL
	case "conn":
		return logConn
	}
	return logOther
}

// Column slots the parser needs from a Zeek record.
const (
	slotTS = iota
	slotUID
	slotOrigH
	slotOrigP
	slotRespH
	slotRespP
	slotProto
	slotService
	slotConnState
	slotServerName
	numSlots
)

// slotName is the canonical (dotted) name of a slot, used in errors about
// fields that are absent altogether.
func slotName(s int) string {
	return [numSlots]string{"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "conn_state", "server_name"}[s]
}

// slotOf maps a Zeek field name, with either scope separator, to its slot.
func slotOf(name []byte) int {
	switch string(name) {
	case "ts":
		return slotTS
	case "uid":
		return slotUID
	case "id.orig_h", "id_orig_h":
		return slotOrigH
	case "id.orig_p", "id_orig_p":
		return slotOrigP
	case "id.resp_h", "id_resp_h":
		return slotRespH
	case "id.resp_p", "id_resp_p":
		return slotRespP
	case "proto":
		return slotProto
	case "service":
		return slotService
	case "conn_state":
		return slotConnState
	case "server_name":
		return slotServerName
	}
	return -1
}

// isSSLField reports fields that only ssl.log has. They identify an ssl
// record when no path is known (plain LogAscii::use_json output has no
// _path and often no server_name: see the maccdc2012 sample).
func isSSLField(name []byte) bool {
	switch string(name) {
	case "server_name", "ssl_history", "cipher", "curve", "resumed", "established",
		"cert_chain_fps", "cert_chain_fuids", "next_protocol", "sni_matches_cert":
		return true
	}
	return false
}

// requiredSlots are the slots without which an ssl or conn record cannot
// name a server.
func requiredSlots() [5]int { return [5]int{slotTS, slotOrigH, slotOrigP, slotRespH, slotRespP} }

var (
	errNoHeader   = errors.New("zeek TSV data line before any #fields header")
	errFieldCount = errors.New("wrong number of fields")
)

// ZeekParser parses Zeek ssl.log and conn.log lines, TSV or JSON, and
// ignores every other Zeek log. It is stateful: TSV header lines set the
// separators and the columns of the data lines that follow them, and every
// header block (starting at #separator, or a bare #fields) replaces the
// previous one. Call Reset when a new file starts.
//
// A ZeekParser is not safe for concurrent use.
type ZeekParser struct {
	source string

	mode byte // 0 undecided, 't' TSV, 'j' JSON: decided by the first line of a file

	hdr zeeklog.Header // TSV header state

	// Derived from the header, recomputed lazily after it changes.
	dirty     bool
	kind      logKind
	col       [numSlots]int // column index per slot, -1 when absent
	colSlot   []int8        // slot per column, -1 when unused
	maxCol    int           // highest column index any slot needs
	schemaErr error

	vals [numSlots][]byte // per-line scratch

	names map[string]string // Log::default_field_name_map, reversed: log name → standard name

	strs strArena // the strings events keep
}

// SetFieldNames makes the parser read the fields renamed by Zeek's
// Log::default_field_name_map: m maps the name in the log to the standard
// name (e.g. "resp_ip" → "id.resp_h").
func (p *ZeekParser) SetFieldNames(m map[string]string) {
	p.names = m
	p.dirty = true
}

// slot maps a field name, renamed or not, to its slot.
func (p *ZeekParser) slot(name []byte) int {
	if p.names != nil {
		if std, ok := p.names[string(name)]; ok {
			return slotOf([]byte(std))
		}
	}
	return slotOf(name)
}

// NewZeekParser returns a parser whose events carry Source = source.
func NewZeekParser(source string) *ZeekParser {
	p := &ZeekParser{source: source}
	p.Reset()
	return p
}

// Reset forgets the header and the detected format: call it when a new file
// starts (rotation, truncation).
func (p *ZeekParser) Reset() {
	p.mode = 0
	p.hdr.Reset()
	p.dirty = true
}

// ParseLine parses one line (without its trailing newline). It returns
// (event, true, nil) for a TLS event, (zero, false, nil) for a header,
// comment, blank or non-TLS line, and an error naming the offending field
// (a *FieldError where a field is to blame) for a malformed line.
// Source is set; File and Offset are left to the caller.
func (p *ZeekParser) ParseLine(line []byte) (stackprint.Event, bool, error) {
	ev, c, err := p.parse(line)
	return ev, c == classEvent, err
}

func (p *ZeekParser) reset() { p.Reset() }

func (p *ZeekParser) parse(line []byte) (stackprint.Event, lineClass, error) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) == 0 {
		return stackprint.Event{}, classMeta, nil
	}
	switch {
	case line[0] == '#':
		// The writer escapes a leading '#' of a data record as \x23, so a
		// line starting with '#' is always meta.
		p.mode = 't'
		return stackprint.Event{}, classMeta, p.header(line)
	case p.mode == 't' && !(line[0] == '{' && p.noTSVBrace()):
		return p.tsvLine(line)
	}
	trimmed := bytes.TrimLeft(line, " \t")
	switch {
	case len(trimmed) == 0:
		return stackprint.Event{}, classMeta, nil
	case p.mode == 0 && trimmed[0] != '{' && p.plainHeader(line):
		// tsv=T: one line of column names, no '#' meta lines.
		p.mode = 't'
		return stackprint.Event{}, classMeta, nil
	case trimmed[0] == '{':
		// JSON, also after a TSV header when the writer switched formats
		// (a TSV record cannot start with '{' where its ts column is).
		p.mode = 'j'
		return p.jsonLine(line)
	case p.mode == 'j':
		return stackprint.Event{}, classSkip, errJSONNotObject
	}
	return stackprint.Event{}, classSkip, errNoHeader
}

// plainHeader recognises the single header line of Zeek's tsv=T mode (the
// column names, tab-separated, without #fields) and takes it as #fields.
func (p *ZeekParser) plainHeader(line []byte) bool {
	hasTS, hasResp := false, false
	for f := range bytes.SplitSeq(line, []byte{'\t'}) {
		switch s := p.slot(f); s {
		case slotTS:
			hasTS = true
		case slotRespH:
			hasResp = true
		}
	}
	if !hasTS || !hasResp {
		return false
	}
	p.hdr.SetPlainFields(line)
	p.dirty = true
	return true
}

// noTSVBrace reports whether a TSV record under the current header cannot
// start with '{': there is no #fields yet, or the first column is ts.
func (p *ZeekParser) noTSVBrace() bool {
	return len(p.hdr.Fields) == 0 || p.slot(p.hdr.Fields[0]) == slotTS
}

// ---- TSV ----

// header processes one '#' line. Any of them may change what the columns
// mean, so the schema is worked out again before the next record.
func (p *ZeekParser) header(line []byte) error {
	p.dirty = true
	if _, err := p.hdr.Line(line); err != nil {
		if he, ok := errors.AsType[*zeeklog.HeaderError](err); ok {
			return fieldErr(he.Key, he.Value, he.Err)
		}
		return err
	}
	return nil
}

// tsvString decodes a TSV string value; unset and empty both give "".
func (p *ZeekParser) tsvString(raw []byte) string {
	if bytes.Equal(raw, p.hdr.Unset) || bytes.Equal(raw, p.hdr.Empty) {
		return ""
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	return string(zeeklog.AppendUnescaped(nil, raw))
}

func (p *ZeekParser) finishSchema() {
	p.dirty = false
	p.schemaErr = nil
	for i := range p.col {
		p.col[i] = -1
	}
	p.maxCol = -1
	p.colSlot = p.colSlot[:0]
	sslish := false
	for i, f := range p.hdr.Fields {
		s := p.slot(f)
		if s >= 0 && p.col[s] < 0 {
			p.col[s] = i
		} else {
			s = -1
		}
		p.colSlot = append(p.colSlot, int8(s))
		if isSSLField(f) {
			sslish = true
		}
	}
	switch {
	case p.hdr.PathSet:
		p.kind = kindFromPath(p.hdr.Path)
	case sslish:
		p.kind = logSSL
	case p.col[slotConnState] >= 0:
		p.kind = logConn
	default:
		p.kind = logOther
	}
	if p.kind == logOther {
		return
	}
	for _, s := range requiredSlots() {
		if p.col[s] < 0 {
			p.schemaErr = &FieldError{Field: slotName(s), Err: fmt.Errorf("%w from the #fields header", ErrMissingField)}
			return
		}
	}
	if p.kind == logConn && p.col[slotProto] < 0 {
		p.schemaErr = &FieldError{Field: "proto", Err: fmt.Errorf("%w from the #fields header", ErrMissingField)}
		return
	}
	for _, c := range p.col {
		p.maxCol = max(p.maxCol, c)
	}
}

func (p *ZeekParser) tsvLine(line []byte) (stackprint.Event, lineClass, error) {
	if len(p.hdr.Fields) == 0 {
		return stackprint.Event{}, classSkip, errNoHeader
	}
	if p.dirty {
		p.finishSchema()
	}
	if p.kind == logOther {
		return stackprint.Event{}, classSkip, nil
	}
	if p.schemaErr != nil {
		return stackprint.Event{}, classSkip, p.schemaErr
	}
	p.vals = [numSlots][]byte{}
	var n int
	if len(p.hdr.Separator) == 1 {
		n = p.splitTSV(line, p.hdr.Separator[0])
	} else {
		// Split only the columns needed, then count the rest.
		rest, more := line, true
		for c := 0; c <= p.maxCol && more; c++ {
			var f []byte
			f, rest, more = bytes.Cut(rest, p.hdr.Separator)
			n++
			if s := p.colSlot[c]; s >= 0 {
				p.vals[s] = f
			}
		}
		if more {
			n += bytes.Count(rest, p.hdr.Separator) + 1
		}
	}
	if n != len(p.hdr.Fields) {
		if n < len(p.hdr.Fields) {
			return stackprint.Event{}, classSkip, &FieldError{Field: string(p.hdr.Fields[n]),
				Err: fmt.Errorf("%w: line has %d of the %d #fields columns", ErrMissingField, n, len(p.hdr.Fields))}
		}
		return stackprint.Event{}, classSkip, fmt.Errorf("%w: line has %d columns, #fields declares %d", errFieldCount, n, len(p.hdr.Fields))
	}
	return p.record(p.kind, &p.vals, true)
}

// splitTSV files the columns of line that slots need into p.vals and
// returns the number of columns. One pass, eight bytes at a time: the
// separators of the needed columns are found with a word mask, the rest
// only counted.
func (p *ZeekParser) splitTSV(line []byte, sep byte) int {
	pat := swarLo * uint64(sep)
	col, start := 0, 0
	i := 0
	for ; i+8 <= len(line); i += 8 {
		m := swarEq(binary.LittleEndian.Uint64(line[i:]), pat)
		if col > p.maxCol {
			col += bits.OnesCount64(m)
			continue
		}
		for m != 0 {
			j := i + bits.TrailingZeros64(m)>>3
			m &= m - 1
			if col <= p.maxCol {
				if s := p.colSlot[col]; s >= 0 {
					p.vals[s] = line[start:j]
				}
			}
			col++
			start = j + 1
		}
	}
	for ; i < len(line); i++ {
		if line[i] == sep {
			if col <= p.maxCol {
				if s := p.colSlot[col]; s >= 0 {
					p.vals[s] = line[start:i]
				}
			}
			col++
			start = i + 1
		}
	}
	if col <= p.maxCol {
		if s := p.colSlot[col]; s >= 0 {
			p.vals[s] = line[start:]
		}
	}
	return col + 1
}

// record turns the raw values of one ssl or conn record into an event. For
// TSV the values are raw TSV fields; for JSON they are JSON values (strings
// quoted, numbers bare; nil when absent or null). It allocates only the
// strings the event keeps (uid, a server name, a service other than ssl).
func (p *ZeekParser) record(kind logKind, v *[numSlots][]byte, tsv bool) (stackprint.Event, lineClass, error) {
	var svc []byte
	if kind == logConn {
		// Filter first: most conn records are not TLS.
		var err error
		svc, _, err = p.service(v[slotService], tsv)
		if err != nil {
			return stackprint.Event{}, classSkip, fieldErr(p.fieldName(slotService, tsv), v[slotService], err)
		}
		if !hasSSLService(svc) {
			return stackprint.Event{}, classSkip, nil
		}
		proto, ok, err := p.str(v, slotProto, tsv)
		if err != nil {
			return stackprint.Event{}, classSkip, err
		}
		if !ok {
			return stackprint.Event{}, classSkip, fieldErr(p.fieldName(slotProto, tsv), nil, ErrMissingField)
		}
		if !asciiEqualFold(proto, "tcp") {
			return stackprint.Event{}, classSkip, nil
		}
		st, _, err := p.str(v, slotConnState, tsv)
		if err != nil {
			return stackprint.Event{}, classSkip, err
		}
		if string(st) == "S0" || string(st) == "REJ" {
			return stackprint.Event{}, classSkip, nil
		}
	}

	ev := stackprint.Event{Source: p.source, Kind: KindZeekSSL}
	if kind == logConn {
		ev.Kind = KindZeekConn
		ev.Service = serviceName(svc)
	}
	for _, s := range requiredSlots() {
		if v[s] == nil || (tsv && p.isUnset(v[s])) {
			return stackprint.Event{}, classSkip, fieldErr(p.fieldName(s, tsv), nil, ErrMissingField)
		}
	}
	ts, err := p.zeekTime(v[slotTS], tsv)
	if err != nil {
		return stackprint.Event{}, classSkip, fieldErr(p.fieldName(slotTS, tsv), v[slotTS], err)
	}
	ev.TS = ts
	uid, ok, err := p.str(v, slotUID, tsv)
	if err != nil {
		return stackprint.Event{}, classSkip, err
	}
	if ok {
		ev.UID = p.strs.str(uid)
	}
	if ev.Orig, err = p.endpoint(v, slotOrigH, slotOrigP, tsv); err != nil {
		return stackprint.Event{}, classSkip, err
	}
	if ev.Resp, err = p.endpoint(v, slotRespH, slotRespP, tsv); err != nil {
		return stackprint.Event{}, classSkip, err
	}
	if kind == logSSL {
		sni, ok, err := p.str(v, slotServerName, tsv)
		if err != nil {
			return stackprint.Event{}, classSkip, err
		}
		if ok && len(sni) > 0 {
			ev.SNI = canonicalSNI(sni, &p.strs)
		}
	}
	return ev, classEvent, nil
}

// fieldName is the name of slot s for messages: as the #fields header
// spells it for TSV, else the canonical name.
func (p *ZeekParser) fieldName(s int, tsv bool) string {
	if tsv && p.col[s] >= 0 {
		return string(p.hdr.Fields[p.col[s]])
	}
	return slotName(s)
}

func (p *ZeekParser) isUnset(raw []byte) bool { return string(raw) == string(p.hdr.Unset) }
func (p *ZeekParser) isEmpty(raw []byte) bool { return string(raw) == string(p.hdr.Empty) }

// str decodes the string in slot s: the bytes and whether the field is set
// (a TSV empty marker is set and empty). Unescaping allocates; the common
// value without escapes aliases the line.
func (p *ZeekParser) str(v *[numSlots][]byte, s int, tsv bool) ([]byte, bool, error) {
	raw := v[s]
	if raw == nil {
		return nil, false, nil
	}
	if tsv {
		switch {
		case p.isUnset(raw):
			return nil, false, nil
		case p.isEmpty(raw):
			return nil, true, nil
		case hasBackslash(raw):
			return zeeklog.AppendUnescaped(nil, raw), true, nil
		}
		return raw, true, nil
	}
	if !isJSONString(raw) {
		return nil, false, fieldErr(p.fieldName(s, tsv), raw, errNotString)
	}
	b, err := jsonStringBytes(raw)
	if err != nil {
		return nil, false, fieldErr(p.fieldName(s, tsv), raw, err)
	}
	return b, true, nil
}

// endpoint parses an address and port pair of slots.
func (p *ZeekParser) endpoint(v *[numSlots][]byte, hs, ps int, tsv bool) (netip.AddrPort, error) {
	hb := v[hs]
	if !tsv {
		var err error
		if hb, err = jsonStringBytes(hb); err != nil {
			return netip.AddrPort{}, fieldErr(p.fieldName(hs, tsv), v[hs], errBadAddr)
		}
	}
	a, ok := parseAddr(hb)
	if !ok {
		return netip.AddrPort{}, fieldErr(p.fieldName(hs, tsv), v[hs], errBadAddr)
	}
	pb := v[ps]
	if !tsv && isJSONString(pb) { // tolerate "443" and "443/tcp"
		pb, _ = jsonStringBytes(pb)
		pb, _, _ = bytes.Cut(pb, []byte{'/'})
	}
	port, ok := parsePort(pb)
	if !ok {
		return netip.AddrPort{}, fieldErr(p.fieldName(ps, tsv), v[ps], errBadPort)
	}
	return netip.AddrPortFrom(a, port), nil
}

// hasBackslash reports whether b holds a '\\' (short values without the
// call into bytes.IndexByte).
func hasBackslash(b []byte) bool {
	if len(b) > 16 {
		return bytes.IndexByte(b, '\\') >= 0
	}
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// asciiEqualFold reports whether b is s in any ASCII case (s lower case).
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// service returns the conn service list as one comma-separated string
// (TSV string, JSON string or JSON array).
func (p *ZeekParser) service(raw []byte, tsv bool) ([]byte, bool, error) {
	if raw == nil {
		return nil, false, nil
	}
	if tsv {
		if p.isUnset(raw) || p.isEmpty(raw) {
			return nil, false, nil
		}
		if hasBackslash(raw) {
			return zeeklog.AppendUnescaped(nil, raw), true, nil
		}
		return raw, true, nil
	}
	switch {
	case isNull(raw):
		return nil, false, nil
	case isJSONString(raw):
		b, err := jsonStringBytes(raw)
		return b, true, err
	case raw[0] == '[':
		// An array of strings: join its elements with commas.
		var out []byte
		i := 1
		for {
			i = skipSpace(raw, i)
			if i >= len(raw) {
				return nil, false, errJSONEnd
			}
			if raw[i] == ']' {
				return out, true, nil
			}
			if raw[i] == ',' {
				i++
				continue
			}
			end, err := skipValue(raw, i)
			if err != nil {
				return nil, false, err
			}
			s, err := jsonStringBytes(raw[i:end])
			if err != nil {
				return nil, false, err
			}
			if len(out) > 0 {
				out = append(out, ',')
			}
			out = append(out, s...)
			i = end
		}
	}
	return nil, false, errNotString
}

// serviceName is the service list without the ssl entries, lower case
// ("smtp,ssl" → "smtp"): the protocol TLS was started from, if any.
func serviceName(svc []byte) string {
	if asciiEqualFold(svc, "ssl") {
		return "" // the common case, without splitting
	}
	if !isASCII(svc) {
		return serviceNameUnicode(svc)
	}
	var out []byte
	for rest := svc; ; {
		e, more := nextElem(&rest)
		if len(e) > 0 && !asciiEqualFold(e, "ssl") && !asciiEqualFold(e, "-ssl") {
			if len(out) > 0 {
				out = append(out, ',')
			}
			for _, c := range e {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				out = append(out, c)
			}
		}
		if !more {
			return string(out)
		}
	}
}

// nextElem cuts the next comma-separated element off *rest, trimmed of
// white space; more is false for the last one.
func nextElem(rest *[]byte) (e []byte, more bool) {
	i := bytes.IndexByte(*rest, ',')
	if i < 0 {
		e, *rest = *rest, nil
	} else {
		e, *rest, more = (*rest)[:i], (*rest)[i+1:], true
	}
	return bytes.TrimSpace(e), more
}

// hasSSLService reports whether the comma-separated service list names the
// ssl analyzer as confirmed: "ssl" is an element and "-ssl" (removed after
// a DPD violation) is not.
func hasSSLService(svc []byte) bool {
	if len(svc) == 0 {
		return false
	}
	if asciiEqualFold(svc, "ssl") {
		return true
	}
	if !isASCII(svc) {
		return hasSSLServiceUnicode(svc)
	}
	found := false
	for rest := svc; ; {
		e, more := nextElem(&rest)
		switch {
		case asciiEqualFold(e, "ssl"):
			found = true
		case asciiEqualFold(e, "-ssl"):
			return false
		}
		if !more {
			return found
		}
	}
}

// serviceNameUnicode and hasSSLServiceUnicode are serviceName and
// hasSSLService for a list with non-ASCII bytes: Unicode case folding and
// white space, as the ASCII versions would have if they could.
func serviceNameUnicode(svc []byte) string {
	var out []string
	for e := range bytes.SplitSeq(svc, []byte{','}) {
		e = bytes.ToLower(bytes.TrimSpace(e))
		if len(e) == 0 || bytes.Equal(e, []byte("ssl")) || bytes.Equal(e, []byte("-ssl")) {
			continue
		}
		out = append(out, string(e))
	}
	return strings.Join(out, ",")
}

func hasSSLServiceUnicode(svc []byte) bool {
	found := false
	for e := range bytes.SplitSeq(svc, []byte{','}) {
		e = bytes.TrimSpace(e)
		switch {
		case bytes.EqualFold(e, []byte("ssl")):
			found = true
		case bytes.EqualFold(e, []byte("-ssl")):
			return false
		}
	}
	return found
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// zeekTime parses a Zeek time value: TSV epoch seconds; JSON epoch seconds
// (float or integer), integer milliseconds (by magnitude), or an ISO8601
// string.
func (p *ZeekParser) zeekTime(raw []byte, tsv bool) (time.Time, error) {
	if tsv {
		return parseEpoch(raw, false)
	}
	if isJSONString(raw) {
		s, err := jsonStringBytes(raw)
		if err != nil {
			return time.Time{}, err
		}
		if t, err := parseISOTime(s); err == nil {
			return t, nil
		}
		return parseEpoch(s, true)
	}
	return parseEpoch(raw, true)
}

// ---- JSON ----

func (p *ZeekParser) jsonLine(line []byte) (stackprint.Event, lineClass, error) {
	it, err := newObjIter(line, 0)
	if err != nil {
		if len(bytes.TrimSpace(line)) == 0 {
			return stackprint.Event{}, classMeta, nil
		}
		return stackprint.Event{}, classSkip, err
	}
	v := &p.vals
	*v = [numSlots][]byte{}
	kind := logOther
	pathSeen, sslish := false, false
	for {
		key, kesc, ok, err := it.nextKey()
		if err != nil {
			return stackprint.Event{}, classSkip, err
		}
		if !ok {
			break
		}
		val, err := it.value(key)
		if err != nil {
			return stackprint.Event{}, classSkip, err
		}
		key = decodeKey(key, kesc)
		if string(key) == "_path" {
			pb, err := jsonStringBytes(val)
			if err != nil {
				return stackprint.Event{}, classSkip, fieldErr("_path", val, err)
			}
			kind, pathSeen = kindFromPath(pb), true
			if kind == logOther {
				// Another log in a shared stream: stop here, cheaply.
				return stackprint.Event{}, classSkip, nil
			}
			continue
		}
		s := p.slot(key)
		if s >= 0 {
			if isNull(val) {
				val = nil
			}
			v[s] = val
		}
		if !sslish && (s < 0 || s == slotServerName) && isSSLField(key) {
			sslish = true
		}
	}
	if j := skipSpace(line, it.i); j != len(line) {
		return stackprint.Event{}, classSkip, fmt.Errorf("trailing data after the JSON object at byte %d", j)
	}
	if !pathSeen {
		switch {
		case sslish:
			kind = logSSL
		case v[slotConnState] != nil || v[slotService] != nil && v[slotUID] != nil:
			kind = logConn
		}
	}
	if kind == logOther {
		return stackprint.Event{}, classSkip, nil
	}
	return p.record(kind, v, false)
}

// tsvSet decodes a TSV set or vector value: split on the set separator
// first, then unescape each element (so \x2c inside an element is a literal
// comma). It returns nil for unset and an empty non-nil slice for empty.
func (p *ZeekParser) tsvSet(raw []byte) []string {
	if bytes.Equal(raw, p.hdr.Unset) {
		return nil
	}
	if bytes.Equal(raw, p.hdr.Empty) {
		return []string{}
	}
	var out []string
	for e := range bytes.SplitSeq(raw, p.hdr.SetSeparator) {
		if bytes.Equal(e, p.hdr.Unset) {
			out = append(out, "") // an unset element of a vector
			continue
		}
		out = append(out, string(zeeklog.AppendUnescaped(nil, e)))
	}
	return out
}
