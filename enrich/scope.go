package enrich

import (
	"fmt"
	"net/netip"
)

// builtinDeny lists every range that is not public unicast: an active
// scanner must never be turned against them unless the operator says so.
// Sources: IANA IPv4/IPv6 special-purpose registries.
func builtinDeny() []netip.Prefix {
	ss := []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
		"2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20", "5f00::/16",
		"fc00::/7", "fe80::/10", "ff00::/8",
	}
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Scope decides which servers may be probed. Order: operator deny, operator
// allow, built-in deny, then public unicast only. Deny beats allow.
type Scope struct {
	allow, deny, builtin    []netip.Prefix // IPv6
	allow4, deny4, builtin4 v4prefixes
	ports                   map[uint16]bool
}

// mappedV4 is the IPv4-mapped IPv6 range. Addresses in it are unmapped
// before a check, so a prefix inside it must be unmapped too.
var mappedV4 = netip.MustParsePrefix("::ffff:0:0/96")

// NormalizePrefix returns p masked and, when p lies inside ::ffff:0:0/96,
// as the IPv4 prefix it denotes (::ffff:10.1.0.0/112 is 10.1.0.0/16).
// Check unmaps every address, so a mapped prefix would otherwise never
// match anything. It fails for an IPv6 prefix shorter than /96 that covers
// the mapped range (::/0, ::/64): whether it is meant to cover IPv4 too
// cannot be told, and Check would apply it to IPv6 only.
func NormalizePrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, fmt.Errorf("invalid prefix")
	}
	p = netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
	if !p.Addr().Is6() {
		return p, nil
	}
	if p.Bits() >= mappedV4.Bits() && p.Addr().Is4In6() {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-mappedV4.Bits()), nil
	}
	if p.Overlaps(mappedV4) {
		return p, fmt.Errorf("%s covers the IPv4-mapped range %s: write IPv4 ranges as IPv4 prefixes (0.0.0.0/0) and IPv6 ranges without it (2000::/3)", p, mappedV4)
	}
	return p, nil
}

// NewScope builds a scope from operator prefixes and an optional port list.
// Prefixes are normalised (NormalizePrefix); one that cannot be is kept as
// given and matches IPv6 addresses only: validate with NormalizePrefix.
func NewScope(allow, deny []netip.Prefix, ports []uint16) *Scope {
	norm := func(ps []netip.Prefix) []netip.Prefix {
		out := make([]netip.Prefix, len(ps))
		for i, p := range ps {
			out[i], _ = NormalizePrefix(p)
		}
		return out
	}
	s := &Scope{}
	s.allow4, s.allow = split4(norm(allow))
	s.deny4, s.deny = split4(norm(deny))
	s.builtin4, s.builtin = split4(builtinDeny())
	if len(ports) > 0 {
		s.ports = make(map[uint16]bool, len(ports))
		for _, p := range ports {
			s.ports[p] = true
		}
	}
	return s
}

// CheckDenied is Check for a server the operator listed explicitly (the
// watch list): only scope.deny applies; scope.allow, scope.ports and the
// built-in deny list of non-public ranges do not.
func (s *Scope) CheckDenied(ap netip.AddrPort) (bool, string) {
	ip := ap.Addr().Unmap().WithZone("")
	if !ip.IsValid() {
		return false, "invalid address"
	}
	if ap.Port() == 0 {
		return false, "port 0"
	}
	if ip.Is4() {
		b := ip.As4()
		if i := s.deny4.find(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])); i >= 0 {
			return false, "denied by scope.deny " + s.deny4[i].p.String()
		}
		return true, ""
	}
	for _, p := range s.deny {
		if p.Contains(ip) {
			return false, "denied by scope.deny " + p.String()
		}
	}
	return true, ""
}

// Check reports whether ip:port may be probed, and why not.
func (s *Scope) Check(ap netip.AddrPort) (bool, string) {
	ok, why, p := s.check(ap)
	switch why {
	case whyNone:
		return ok, ""
	case whyInvalid:
		return false, "invalid address"
	case whyPort0:
		return false, "port 0"
	case whyPort:
		return false, fmt.Sprintf("port %d not in scope.ports", ap.Port())
	case whyDeny:
		return false, "denied by scope.deny " + p.String()
	case whyBuiltin:
		return false, "non-public range " + p.String() + " (not in scope.allow)"
	default:
		return false, "IPv6 outside global unicast 2000::/3"
	}
}

// Allows is Check without the reason (no allocation).
func (s *Scope) Allows(ap netip.AddrPort) bool {
	ok, _, _ := s.check(ap)
	return ok
}

const (
	whyNone = iota
	whyInvalid
	whyPort0
	whyPort
	whyDeny
	whyBuiltin
	whyNotGlobal6
)

var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// check is Check with the reason as a code and the prefix it names. IPv4
// addresses are compared as masked 32-bit words: the scope is checked
// for every new target the sensors log, at ingest speed.
func (s *Scope) check(ap netip.AddrPort) (bool, int, netip.Prefix) {
	ip := ap.Addr().Unmap().WithZone("")
	if !ip.IsValid() {
		return false, whyInvalid, netip.Prefix{}
	}
	if ap.Port() == 0 {
		return false, whyPort0, netip.Prefix{}
	}
	if s.ports != nil && !s.ports[ap.Port()] {
		return false, whyPort, netip.Prefix{}
	}
	if ip.Is4() {
		b := ip.As4()
		a := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if i := s.deny4.find(a); i >= 0 {
			return false, whyDeny, s.deny4[i].p
		}
		if s.allow4.find(a) >= 0 {
			return true, whyNone, netip.Prefix{}
		}
		if i := s.builtin4.find(a); i >= 0 {
			return false, whyBuiltin, s.builtin4[i].p
		}
		return true, whyNone, netip.Prefix{}
	}
	for _, p := range s.deny {
		if p.Contains(ip) {
			return false, whyDeny, p
		}
	}
	for _, p := range s.allow {
		if p.Contains(ip) {
			return true, whyNone, netip.Prefix{}
		}
	}
	for _, p := range s.builtin {
		if p.Contains(ip) {
			return false, whyBuiltin, p
		}
	}
	if !globalUnicast6.Contains(ip) {
		return false, whyNotGlobal6, netip.Prefix{}
	}
	return true, whyNone, netip.Prefix{}
}

// v4prefix is an IPv4 prefix as a masked word.
type v4prefix struct {
	addr, mask uint32
	p          netip.Prefix
}

type v4prefixes []v4prefix

// split4 returns the IPv4 prefixes of ps as words, and the others.
func split4(ps []netip.Prefix) (v4prefixes, []netip.Prefix) {
	var v4 v4prefixes
	var rest []netip.Prefix
	for _, p := range ps {
		if !p.Addr().Is4() {
			rest = append(rest, p)
			continue
		}
		b := p.Masked().Addr().As4()
		var mask uint32
		if p.Bits() > 0 {
			mask = ^uint32(0) << (32 - p.Bits())
		}
		v4 = append(v4, v4prefix{addr: uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), mask: mask, p: p})
	}
	return v4, rest
}

// find returns the index of the first prefix holding a, or -1.
func (ps v4prefixes) find(a uint32) int {
	for i, p := range ps {
		if a&p.mask == p.addr {
			return i
		}
	}
	return -1
}
