package watch

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Resolver looks a host name up (net.Resolver has this method).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ParseTarget reads HOST:PORT as `watch add` takes it. A host name is
// resolved once (the first address) and becomes the SNI unless sni names
// another; an IP literal is used as is.
func ParseTarget(ctx context.Context, res Resolver, target, sni string) (netip.AddrPort, string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(target))
	if err != nil {
		return netip.AddrPort{}, "", fmt.Errorf("target %q: want HOST:PORT ([v6]:PORT for IPv6)", target)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, "", fmt.Errorf("target %q: port %q: want 1-65535", target, port)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if res == nil {
			return netip.AddrPort{}, "", fmt.Errorf("target %q: not an IP address", target)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		addrs, rerr := res.LookupNetIP(rctx, "ip", host)
		cancel()
		if rerr != nil || len(addrs) == 0 {
			return netip.AddrPort{}, "", fmt.Errorf("target %q: resolve %s: %v", target, host, cmpErr(rerr, errors.New("no address")))
		}
		ip = addrs[0]
		if sni == "" {
			sni = host
		}
	}
	return netip.AddrPortFrom(ip, uint16(p)), sni, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// LineError is one rejected line of a watch list file.
type LineError struct {
	File   string
	Line   int
	Reason string
}

func (e LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// ListHeader is the optional first line of a watch list file (files
// written before the starttls column, with the first four, still load).
const ListHeader = "target,sni,every,label,starttls"

// ParseList reads a watch list file: one server per line as CSV
// `target[,sni[,every[,label[,starttls]]]]` (target HOST:PORT, every a Go
// duration such as 30m, starttls a protocol as `watch add --starttls`
// takes it, empty fields for the defaults), blank lines and lines
// starting with # skipped, an optional header line. Every bad line is
// reported (LineError, file:line); entries come back only when there is
// none, so an import is all or nothing. A target listed twice is an error.
func ParseList(ctx context.Context, res Resolver, name string, data []byte) ([]Entry, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.Comment = '#'
	r.TrimLeadingSpace = true
	var (
		out  []Entry
		errs []error
		seen = map[string]int{}
	)
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				errs = append(errs, LineError{name, pe.Line, pe.Err.Error()})
				if len(errs) > 100 {
					break
				}
				continue
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		bad := func(format string, a ...any) {
			errs = append(errs, LineError{name, line, fmt.Sprintf(format, a...)})
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		if len(rec) == 1 && rec[0] == "" {
			continue
		}
		if strings.EqualFold(strings.Join(rec, ","), ListHeader) || (len(out) == 0 && len(errs) == 0 && strings.EqualFold(rec[0], "target")) {
			continue
		}
		if len(rec) > 5 {
			bad("%d fields, want at most 5 (%s)", len(rec), ListHeader)
			continue
		}
		rec = append(rec, "", "", "", "")[:5]
		e := Entry{Label: rec[3], Origin: fmt.Sprintf("import %s:%d", name, line)}
		ap, sni, err := ParseTarget(ctx, res, rec[0], rec[1])
		if err != nil {
			bad("%v", err)
			continue
		}
		e.Addr, e.SNI = ap, sni
		if rec[2] != "" {
			d, err := time.ParseDuration(rec[2])
			if err != nil || d <= 0 {
				bad("every %q: want a duration such as 30m or 1h", rec[2])
				continue
			}
			e.Every = d
		}
		if e.StartTLS, err = ParseStartTLS(rec[4], ap.Port()); err != nil {
			bad("%v", err)
			continue
		}
		if err := e.Validate(); err != nil {
			bad("%s", strings.TrimPrefix(err.Error(), "watch: "))
			continue
		}
		if prev, dup := seen[e.Key()]; dup {
			bad("%s listed twice (first on line %d)", e.Key(), prev)
			continue
		}
		seen[e.Key()] = line
		out = append(out, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
