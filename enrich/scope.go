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

// NewScope builds a scope from operator prefixes and an optional port list.
func NewScope(allow, deny []netip.Prefix, ports []uint16) *Scope {
	s := &Scope{allow: allow, deny: deny, builtin: builtinDeny()}
	if len(ports) > 0 {
		s.ports = make(map[uint16]bool, len(ports))
		for _, p := range ports {
			s.ports[p] = true
		}
	}
	return s
}

// Check reports whether ip:port may be probed, and why not.
func (s *Scope) Check(ap netip.AddrPort) (bool, string) {
	ip := ap.Addr().Unmap()
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
