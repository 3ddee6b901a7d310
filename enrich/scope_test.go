package enrich

import (
	"net/netip"
	"testing"
)

func TestScopeCheck(t *testing.T) {
	lo := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name        string
		allow, deny []netip.Prefix
		ports       []uint16
		addr        string
		want        bool
	}{
		{name: "public v4", addr: "8.8.8.8:443", want: true},
		{name: "public v6", addr: "[2606:4700::1111]:443", want: true},
		{name: "loopback denied by default", addr: "127.0.0.1:443"},
		{name: "loopback allowed when listed", allow: lo, addr: "127.0.0.1:443", want: true},
		{name: "metadata service", addr: "169.254.169.254:80"},
		{name: "metadata service even with loopback allowed", allow: lo, addr: "169.254.169.254:443"},
		{name: "rfc1918 10/8", addr: "10.1.2.3:443"},
		{name: "rfc1918 172.16/12", addr: "172.20.0.1:443"},
		{name: "rfc1918 192.168/16", addr: "192.168.1.1:443"},
		{name: "cgnat", addr: "100.64.0.1:443"},
		{name: "multicast", addr: "224.0.0.1:443"},
		{name: "documentation", addr: "203.0.113.7:443"},
		{name: "benchmarking", addr: "198.18.0.1:443"},
		{name: "reserved", addr: "240.0.0.1:443"},
		{name: "broadcast", addr: "255.255.255.255:443"},
		{name: "this network", addr: "0.0.0.0:443"},
		{name: "v6 loopback", addr: "[::1]:443"},
		{name: "v6 ula", addr: "[fd00::1]:443"},
		{name: "v6 link local", addr: "[fe80::1]:443"},
		{name: "v6 doc", addr: "[2001:db8::1]:443"},
		{name: "v6 6to4 can embed private v4", addr: "[2002:a01:203::1]:443"},
		{name: "v4-mapped private", addr: "[::ffff:10.1.2.3]:443"},
		{name: "deny beats allow", allow: lo, deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.66/32")}, addr: "127.0.0.66:443"},
		{name: "operator deny of public", deny: []netip.Prefix{netip.MustParsePrefix("8.8.8.0/24")}, addr: "8.8.8.8:443"},
		{name: "port filter rejects", ports: []uint16{443}, addr: "8.8.8.8:8443"},
		{name: "port filter accepts", ports: []uint16{443}, addr: "8.8.8.8:443", want: true},
		{name: "port zero", addr: "8.8.8.8:0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := NewScope(tc.allow, tc.deny, tc.ports).Check(netip.MustParseAddrPort(tc.addr))
			if got != tc.want {
				t.Fatalf("Check(%s) = %v (%s), want %v", tc.addr, got, why, tc.want)
			}
			if !got && why == "" {
				t.Fatalf("denied without a reason")
			}
		})
	}
}
