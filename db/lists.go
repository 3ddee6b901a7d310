package db

import (
	"encoding/csv"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/stackprint/stackprint"
)

// ListEntry is one target of a block or top list (db learn).
type ListEntry struct {
	Line int
	Key  string     // host:port as written to the learn progress
	IP   netip.Addr // valid when the list gave an address
	Host string     // canonical host name when it gave a name
	Port uint16
	Hint string // block lists: the malware family; top lists: the rank
}

// The list formats ParseTargetList reads.
const (
	ListFeodo  = "feodo"  // abuse.ch Feodo Tracker ipblocklist.csv
	ListTranco = "tranco" // Tranco rank,domain
	ListPlain  = "plain"  // ip[:port] or host[:port] per line
)

// ParseTargetList reads a block or top list: the abuse.ch Feodo Tracker
// CSV (a header naming dst_ip and dst_port, quoted or not, possibly as a
// # comment), a Tranco list (rank,domain), or plain ip[:port] /
// host[:port] lines (# comments). Entries without a port get defaultPort.
// Invalid lines are returned as rejections; duplicates are dropped.
func ParseTargetList(data []byte, defaultPort uint16) (entries []ListEntry, rejected []Rejection, format string, err error) {
	lines := strings.Split(strings.TrimPrefix(string(data), "\ufeff"), "\n")
	format = ListPlain
	var col map[string]int
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
		if strings.Contains(h, "dst_ip") || strings.Contains(h, "dstip") {
			format, col = ListFeodo, map[string]int{}
			for i, f := range splitCSV(h) {
				col[strings.ReplaceAll(f, "_", "")] = i
			}
			break
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		if f := splitCSV(l); len(f) == 2 && isDigits(f[0]) {
			format = ListTranco
		}
		break
	}
	if format == ListFeodo {
		if _, ok := col["dstip"]; !ok {
			return nil, nil, format, fmt.Errorf("feodo list: header has no dst_ip column")
		}
	}
	seen := map[string]bool{}
	for i, raw := range lines {
		n := i + 1
		l := strings.TrimSpace(raw)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		var (
			e   ListEntry
			err error
		)
		switch format {
		case ListFeodo:
			f := splitCSV(l)
			if strings.Contains(strings.ToLower(l), "dst_ip") || strings.Contains(strings.ToLower(l), "dstip") {
				continue // the header
			}
			get := func(name string) string {
				if j, ok := col[name]; ok && j < len(f) {
					return f[j]
				}
				return ""
			}
			host := get("dstip")
			if p := get("dstport"); p != "" {
				host = net.JoinHostPort(host, p)
			}
			e, err = parseListTarget(host, defaultPort)
			e.Hint = get("malware")
		case ListTranco:
			f := splitCSV(l)
			if len(f) != 2 || !isDigits(f[0]) {
				err = fmt.Errorf("want rank,domain")
				break
			}
			e, err = parseListTarget(f[1], defaultPort)
			e.Hint = "rank " + f[0]
		default:
			if j := strings.Index(l, " #"); j >= 0 {
				l = strings.TrimSpace(l[:j])
			}
			e, err = parseListTarget(l, defaultPort)
		}
		if err != nil {
			rejected = append(rejected, Rejection{Line: n, Reason: err.Error()})
			continue
		}
		e.Line = n
		if seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		entries = append(entries, e)
	}
	return entries, rejected, format, nil
}

func splitCSV(l string) []string {
	r := csv.NewReader(strings.NewReader(l))
	r.TrimLeadingSpace = true
	r.LazyQuotes = true
	f, err := r.Read()
	if err != nil {
		return strings.Split(l, ",")
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseListTarget parses ip, ip:port, [v6]:port, host or host:port.
func parseListTarget(s string, defaultPort uint16) (ListEntry, error) {
	s = strings.TrimSpace(s)
	host, port := s, defaultPort
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, perr := strconv.ParseUint(p, 10, 16)
		if perr != nil || n == 0 {
			return ListEntry{}, fmt.Errorf("port %q: want 1..65535", p)
		}
		host, port = h, uint16(n)
	}
	host = strings.Trim(host, "[]")
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = stackprint.CanonicalAddr(ip)
		return ListEntry{Key: netip.AddrPortFrom(ip, port).String(), IP: ip, Port: port}, nil
	}
	name := stackprint.CanonicalSNI(host)
	if !validHostname(name) {
		return ListEntry{}, fmt.Errorf("%q: not an IP address or host name", s)
	}
	return ListEntry{Key: net.JoinHostPort(name, strconv.Itoa(int(port))), Host: name, Port: port}, nil
}

func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
