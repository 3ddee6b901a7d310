package hunt

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/stackprint/stackprint"
)

// maxPrefixAddrs bounds the addresses one CIDR line may expand to (a
// /8 in IPv4): a larger prefix is almost always a typo (an IPv6 /64).
const maxPrefixAddrs = 1 << 24

// maxLineBytes bounds one input line; a longer one is a bad line.
const maxLineBytes = 64 << 10

// Spec is one input line's targets before expansion: an address range or
// a host name, with the port and SNI the line named (0 and "": the run's
// ports and the --sni-from names).
type Spec struct {
	Prefix netip.Prefix // a single address is a /32 or /128; invalid with Host
	Host   string       // a host name to resolve (also the SNI)
	Port   uint16
	SNI    string
	File   string // the input it came from
	Line   int
}

// Where is FILE:LINE.
func (s Spec) Where() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// BadLine is an input line that named no target.
type BadLine struct {
	File   string
	Line   int
	Reason string
}

func (b BadLine) String() string { return fmt.Sprintf("%s:%d: %s", b.File, b.Line, b.Reason) }

// Count is the number of targets s expands to with ports (for the
// progress total).
func (s Spec) Count(ports []uint16) int {
	n := 1
	if s.Prefix.IsValid() {
		n = 1 << (s.Prefix.Addr().BitLen() - s.Prefix.Bits())
	}
	if s.Port == 0 {
		n *= len(ports)
	}
	return n
}

// csvColumns maps a header's column names to what they say; the first
// name of each list present wins. zmap's scanned host is the answer's
// saddr/sport.
var (
	ipColumns   = []string{"saddr", "ip", "ip_address", "ip_str", "address", "addr", "host", "hostname", "target"}
	portColumns = []string{"sport", "port", "dport"}
	sniColumns  = []string{"sni", "server_name", "servername", "domain", "name"}
)

// parser reads one input. Every line is read on its own: masscan -oL
// ("open tcp 443 192.0.2.1 1700000000"), masscan -oJ (one JSON object a
// line), a CSV with a header (zmap -O csv, or any with an ip column and
// optionally port and sni), and plain lines: an address, a CIDR,
// ADDR:PORT, [V6]:PORT, HOST:PORT or HOST, optionally followed by a comma
// or blanks and a port and an SNI.
type parser struct {
	name   string
	line   int
	header map[string]int // set once a CSV header was read
	ipCol  int
	port   int // column, -1 absent
	sni    int
	ok     int // zmap's success column, -1 absent
}

// ReadSpecs parses r (named name in messages) and calls spec for each
// target line and bad for each line that names none. It stops at the
// first error spec returns, or a read error.
func ReadSpecs(r io.Reader, name string, spec func(Spec) error, bad func(BadLine)) error {
	p := &parser{name: name, ipCol: -1, port: -1, sni: -1, ok: -1}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		long := false
		for errors.Is(err, bufio.ErrBufferFull) {
			long = true
			_, err = br.ReadSlice('\n')
		}
		if len(line) > 0 || long {
			p.line++
			switch {
			case long || len(line) > maxLineBytes:
				bad(BadLine{name, p.line, fmt.Sprintf("line longer than %d bytes", maxLineBytes)})
			default:
				s, skip, perr := p.parse(strings.TrimSpace(string(line)))
				switch {
				case perr != nil:
					bad(BadLine{name, p.line, perr.Error()})
				case !skip:
					s.File, s.Line = name, p.line
					if err := spec(s); err != nil {
						return err
					}
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
}

// parse reads one trimmed line; skip is set for lines that are valid but
// name no target (comments, JSON brackets, banners, headers).
func (p *parser) parse(l string) (s Spec, skip bool, err error) {
	switch {
	case l == "" || l[0] == '#':
		return s, true, nil // blank, comment, masscan's "#masscan" and "# end"
	case l == "[" || l == "]" || l == "],":
		return s, true, nil // masscan -oJ's array
	case l[0] == '{':
		return p.json(strings.TrimSuffix(l, ","))
	}
	if f := strings.Fields(l); len(f) >= 4 && (f[0] == "open" || f[0] == "closed" || f[0] == "banner") && (f[1] == "tcp" || f[1] == "udp") {
		return p.masscanList(f)
	}
	if p.header != nil {
		return p.csvRow(l)
	}
	if strings.Contains(l, ",") {
		rec, err := csvFields(l)
		if err != nil {
			return s, false, err
		}
		if p.isHeader(rec) {
			return s, true, nil
		}
		return p.fields(rec)
	}
	return p.fields(strings.Fields(l))
}

// masscanList reads a masscan -oL line: STATE PROTO PORT IP TIMESTAMP.
func (p *parser) masscanList(f []string) (Spec, bool, error) {
	if f[0] != "open" || f[1] != "tcp" {
		return Spec{}, true, nil // a banner or a closed port: nothing to probe
	}
	port, err := parsePort(f[2])
	if err != nil {
		return Spec{}, false, fmt.Errorf("masscan list line: %w", err)
	}
	ip, err := netip.ParseAddr(f[3])
	if err != nil {
		return Spec{}, false, fmt.Errorf("masscan list line: address %q: %w", f[3], err)
	}
	return Spec{Prefix: single(ip), Port: port}, false, nil
}

// masscanJSON is one object of masscan -oJ (older versions put the port
// list on one line per object too).
type masscanJSON struct {
	IP    string `json:"ip"`
	Port  uint16 `json:"port"`
	SNI   string `json:"sni"`
	Ports []struct {
		Port   uint16 `json:"port"`
		Proto  string `json:"proto"`
		Status string `json:"status"`
	} `json:"ports"`
}

func (p *parser) json(l string) (Spec, bool, error) {
	var m masscanJSON
	if err := json.Unmarshal([]byte(l), &m); err != nil {
		return Spec{}, false, fmt.Errorf("JSON object: %w", err)
	}
	if m.IP == "" {
		if strings.Contains(l, `"finished"`) {
			return Spec{}, true, nil // masscan's closing status object
		}
		return Spec{}, false, errors.New(`JSON object without "ip"`)
	}
	ip, err := netip.ParseAddr(m.IP)
	if err != nil {
		return Spec{}, false, fmt.Errorf("JSON ip %q: %w", m.IP, err)
	}
	s := Spec{Prefix: single(ip), Port: m.Port, SNI: m.SNI}
	for _, pt := range m.Ports {
		if pt.Proto != "" && pt.Proto != "tcp" || pt.Status != "" && pt.Status != "open" {
			return s, true, nil // masscan only lists one port a line
		}
		s.Port = pt.Port
	}
	if len(m.Ports) > 0 && s.Port == 0 {
		return s, false, errors.New("JSON port 0")
	}
	if err := checkSNI(s.SNI); err != nil {
		return s, false, err
	}
	return s, false, nil
}

// isHeader takes rec as the file's CSV header if it names an address
// column and no field parses as an address.
func (p *parser) isHeader(rec []string) bool {
	cols := map[string]int{}
	for i, c := range rec {
		c = strings.ToLower(strings.TrimSpace(c))
		if _, err := netip.ParseAddr(c); err == nil {
			return false
		}
		if _, ok := cols[c]; !ok {
			cols[c] = i
		}
	}
	find := func(names []string) int {
		for _, n := range names {
			if i, ok := cols[n]; ok {
				return i
			}
		}
		return -1
	}
	if p.ipCol = find(ipColumns); p.ipCol < 0 {
		return false
	}
	p.header, p.port, p.sni = cols, find(portColumns), find(sniColumns)
	if i, ok := cols["success"]; ok {
		p.ok = i
	}
	return true
}

func (p *parser) csvRow(l string) (Spec, bool, error) {
	rec, err := csvFields(l)
	if err != nil {
		return Spec{}, false, err
	}
	get := func(i int) string {
		if i < 0 || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	if p.ok >= 0 {
		switch strings.ToLower(get(p.ok)) {
		case "0", "false", "f", "no":
			return Spec{}, true, nil // zmap: no SYN-ACK
		}
	}
	if get(p.ipCol) == "" {
		return Spec{}, false, errors.New("CSV row without an address")
	}
	return p.fields([]string{get(p.ipCol), get(p.port), get(p.sni)})
}

func csvFields(l string) ([]string, error) {
	r := csv.NewReader(strings.NewReader(l))
	r.FieldsPerRecord = -1
	rec, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("CSV: %w", err)
	}
	return rec, nil
}

// fields reads ADDR [PORT] [SNI] (PORT may be absent when ADDR carries
// one; a second field that is no number is the SNI).
func (p *parser) fields(f []string) (Spec, bool, error) {
	f = slices.DeleteFunc(slices.Clone(f), func(s string) bool { return strings.TrimSpace(s) == "" })
	if len(f) == 0 {
		return Spec{}, true, nil
	}
	s, err := parseAddrToken(strings.TrimSpace(f[0]))
	if err != nil {
		return s, false, err
	}
	rest := f[1:]
	if len(rest) > 0 {
		if port, err := parsePort(strings.TrimSpace(rest[0])); err == nil {
			if s.Port != 0 && s.Port != port {
				return s, false, fmt.Errorf("two ports: %d and %d", s.Port, port)
			}
			s.Port, rest = port, rest[1:]
		} else if _, aerr := strconv.Atoi(strings.TrimSpace(rest[0])); aerr == nil {
			return s, false, err
		}
	}
	switch len(rest) {
	case 0:
	case 1:
		s.SNI = stackprint.CanonicalSNI(strings.TrimSpace(rest[0]))
		if err := checkSNI(s.SNI); err != nil {
			return s, false, err
		}
	default:
		return s, false, fmt.Errorf("unexpected fields after the target: %q", strings.Join(rest, " "))
	}
	if s.Host != "" && s.SNI == "" {
		s.SNI = stackprint.CanonicalSNI(s.Host)
	}
	return s, false, nil
}

// parseAddrToken reads ADDR, CIDR, ADDR:PORT, [V6]:PORT, HOST:PORT or HOST.
func parseAddrToken(t string) (Spec, error) {
	if strings.Contains(t, "/") {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return Spec{}, fmt.Errorf("CIDR %q: %w", t, err)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		if p.Addr().BitLen()-p.Bits() > 24 {
			return Spec{}, fmt.Errorf("CIDR %s: more than %d addresses", p, maxPrefixAddrs)
		}
		return Spec{Prefix: p}, nil
	}
	if ip, err := netip.ParseAddr(t); err == nil {
		return Spec{Prefix: single(ip)}, nil
	}
	if ap, err := netip.ParseAddrPort(t); err == nil {
		if ap.Port() == 0 {
			return Spec{}, fmt.Errorf("target %q: port 0", t)
		}
		return Spec{Prefix: single(ap.Addr()), Port: ap.Port()}, nil
	}
	host, portStr, err := net.SplitHostPort(t)
	var port uint16
	if err == nil {
		if port, err = parsePort(portStr); err != nil {
			return Spec{}, fmt.Errorf("target %q: %w", t, err)
		}
	} else {
		host = t
	}
	if !isHostName(host) {
		return Spec{}, fmt.Errorf("not an address, CIDR, HOST:PORT or host name: %q", t)
	}
	return Spec{Host: strings.TrimSuffix(strings.ToLower(host), "."), Port: port}, nil
}

// unmapBits is what an IPv4-mapped prefix loses when unmapped.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

func single(ip netip.Addr) netip.Prefix {
	ip = stackprint.CanonicalAddr(ip)
	return netip.PrefixFrom(ip, ip.BitLen())
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return uint16(n), nil
}

// isHostName accepts an LDH DNS name with at least one letter (so a
// mistyped address is not taken for a name).
func isHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	letter := false
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			switch {
			case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
				letter = true
			case c >= '0' && c <= '9' || c == '-' || c == '_':
			default:
				return false
			}
		}
	}
	return letter
}

// checkSNI refuses a name that cannot go in a state line or a header.
func checkSNI(s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("SNI %q contains blanks or control characters", s)
	}
	if len(s) > 255 {
		return fmt.Errorf("SNI longer than 255 bytes")
	}
	return nil
}

// SNIMap gives the names to probe an address with (--sni-from): by
// ADDR:PORT first, then by address.
type SNIMap struct {
	byAddrPort map[netip.AddrPort][]string
	byAddr     map[netip.Addr][]string
}

// ReadSNIMap reads lines "ADDR[:PORT] NAME…" (blanks or commas between
// fields; # comments). Bad lines go to bad.
func ReadSNIMap(r io.Reader, name string, bad func(BadLine)) (*SNIMap, error) {
	m := &SNIMap{byAddrPort: map[netip.AddrPort][]string{}, byAddr: map[netip.Addr][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		f := strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if len(f) < 2 {
			bad(BadLine{name, n, "want ADDR[:PORT] NAME"})
			continue
		}
		var names []string
		var badName error
		for _, x := range f[1:] {
			x = stackprint.CanonicalSNI(x)
			if err := checkSNI(x); err != nil || x == "" {
				badName = fmt.Errorf("name %q: not a server name", x)
				break
			}
			names = append(names, x)
		}
		if badName != nil {
			bad(BadLine{name, n, badName.Error()})
			continue
		}
		if ip, err := netip.ParseAddr(f[0]); err == nil {
			ip = stackprint.CanonicalAddr(ip)
			m.byAddr[ip] = append(m.byAddr[ip], names...)
		} else if ap, err := netip.ParseAddrPort(f[0]); err == nil {
			ap = netip.AddrPortFrom(stackprint.CanonicalAddr(ap.Addr()), ap.Port())
			m.byAddrPort[ap] = append(m.byAddrPort[ap], names...)
		} else {
			bad(BadLine{name, n, fmt.Sprintf("address %q: not ADDR or ADDR:PORT", f[0])})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return m, nil
}

// Names returns the SNIs to probe ap with; nil: none known.
func (m *SNIMap) Names(ap netip.AddrPort) []string {
	if m == nil {
		return nil
	}
	if n := m.byAddrPort[ap]; len(n) > 0 {
		return n
	}
	return m.byAddr[ap.Addr()]
}

// expand calls fn for every address:port of s (addresses outer, ports
// inner) with each name it is probed with, until fn returns false.
func expand(s Spec, ip netip.Addr, ports []uint16, names *SNIMap, fn func(stackprint.Target) bool) bool {
	ps := ports
	if s.Port != 0 {
		ps = []uint16{s.Port}
	}
	for _, port := range ps {
		ap := netip.AddrPortFrom(ip, port)
		sni := []string{s.SNI}
		if s.SNI == "" {
			if n := names.Names(ap); len(n) > 0 {
				sni = n
			}
		}
		for _, name := range sni {
			if !fn(stackprint.Target{IP: ip, Port: port, SNI: name}) {
				return false
			}
		}
	}
	return true
}
