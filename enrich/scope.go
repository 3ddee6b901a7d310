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
	allow, deny, builtin []netip.Prefix
	ports                map[uint16]bool
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
	s := &Scope{allow: norm(allow), deny: norm(deny), builtin: builtinDeny()}
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
	for _, p := range s.deny {
		if p.Contains(ip) {
			return false, "denied by scope.deny " + p.String()
		}
	}
	return true, ""
}

// Check reports whether ip:port may be probed, and why not.
func (s *Scope) Check(ap netip.AddrPort) (bool, string) {
	// Zones go too: Prefix.Contains never matches a zoned address.
	ip := ap.Addr().Unmap().WithZone("")
	if !ip.IsValid() {
		return false, "invalid address"
	}
	if ap.Port() == 0 {
		return false, "port 0"
	}
	if s.ports != nil && !s.ports[ap.Port()] {
		return false, fmt.Sprintf("port %d not in scope.ports", ap.Port())
	}
	for _, p := range s.deny {
		if p.Contains(ip) {
			return false, "denied by scope.deny " + p.String()
		}
	}
	for _, p := range s.allow {
		if p.Contains(ip) {
			return true, ""
		}
	}
	for _, p := range s.builtin {
		if p.Contains(ip) {
			return false, "non-public range " + p.String() + " (not in scope.allow)"
		}
	}
	if ip.Is6() && !netip.MustParsePrefix("2000::/3").Contains(ip) {
		return false, "IPv6 outside global unicast 2000::/3"
	}
	return true, ""
}
