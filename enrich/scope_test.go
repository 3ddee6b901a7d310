package enrich

import (
	"net/netip"
	"strings"
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

// Every way of writing a prefix must match every way of writing an address
// inside it, and nothing outside it: a deny that never matches is silent.
func TestScopeEveryPrefixFormMatchesEveryAddressForm(t *testing.T) {
	v4Forms := []string{ // all denote 10.1.0.0/16
		"10.1.0.0/16", "10.1.2.3/16", "::ffff:10.1.0.0/112", "::ffff:10.1.2.3/112", "::ffff:a01:0/112", "0:0:0:0:0:ffff:a01:0/112",
	}
	v4In := []string{"10.1.2.3", "::ffff:10.1.2.4", "::ffff:a01:fffe", "0:0:0:0:0:ffff:10.1.255.255"}
	v4Out := []string{"10.2.0.1", "::ffff:10.2.0.1", "10.0.255.255"}
	v6Forms := []string{"2001:db8:1::/48", "2001:db8:1:ff::/48", "2001:0db8:0001:0000::/48"}
	v6In := []string{"2001:db8:1::5", "2001:db8:1:ffff::1", "fe80::1%eth0"}
	v6Out := []string{"2001:db8:2::5", "::ffff:10.1.2.3"}
	check := func(t *testing.T, allow, deny []netip.Prefix, addr string, want bool) {
		t.Helper()
		ap := netip.AddrPortFrom(netip.MustParseAddr(addr), 443)
		if got, why := NewScope(allow, deny, nil).Check(ap); got != want {
			t.Errorf("allow %v deny %v: Check(%s) = %v (%s), want %v", allow, deny, ap, got, why, want)
		}
	}
	wide := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("fe80::/10")}
	for _, f := range v4Forms {
		p := netip.MustParsePrefix(f)
		for _, a := range v4In {
			check(t, wide, []netip.Prefix{p}, a, false) // deny matches
			check(t, []netip.Prefix{p}, nil, a, true)   // allow matches
		}
		for _, a := range v4Out {
			check(t, wide, []netip.Prefix{p}, a, true)
			check(t, []netip.Prefix{p}, nil, a, false)
		}
	}
	for _, f := range v6Forms {
		p := netip.MustParsePrefix(f)
		for _, a := range v6In[:2] {
			check(t, wide, []netip.Prefix{p}, a, false)
			check(t, []netip.Prefix{p}, nil, a, true)
		}
		for _, a := range v6Out {
			check(t, wide, []netip.Prefix{p}, a, true)
		}
	}
	// A zoned link-local address is matched by its prefix, not slipped past.
	check(t, wide, []netip.Prefix{netip.MustParsePrefix("fe80::/10")}, v6In[2], false)
	check(t, []netip.Prefix{netip.MustParsePrefix("fe80::/10")}, nil, v6In[2], true)
}

func TestNormalizePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"::ffff:10.1.0.0/112": "10.1.0.0/16", "::ffff:10.1.2.3/128": "10.1.2.3/32", "::ffff:0:0/96": "0.0.0.0/0",
		"10.1.2.3/16": "10.1.0.0/16", "2001:db8::1/32": "2001:db8::/32", "::1/128": "::1/128",
	} {
		got, err := NormalizePrefix(netip.MustParsePrefix(in))
		if err != nil || got.String() != want {
			t.Errorf("NormalizePrefix(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"::/0", "::/64", "::ffff:0:0/95"} {
		if _, err := NormalizePrefix(netip.MustParsePrefix(in)); err == nil || !strings.Contains(err.Error(), "IPv4-mapped") {
			t.Errorf("NormalizePrefix(%s) error = %v, want one naming the IPv4-mapped range", in, err)
		}
	}
}
