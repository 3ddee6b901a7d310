package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/stackprint/stackprint"
)

// ResolveTarget turns the HOST:PORT of `stackprint probe` into a target
// and the name to send. A host name is resolved once (bounded by timeout)
// and sent as SNI, as jarm.py does, unless sni names another; for an IP
// without sni the IP literal is the name.
func ResolveTarget(ctx context.Context, hostPort, sni string, timeout time.Duration) (stackprint.Target, string, error) {
	host, portStr, err := net.SplitHostPort(hostPort)
	if err != nil {
		return stackprint.Target{}, "", fmt.Errorf("target %q: %w", hostPort, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return stackprint.Target{}, "", fmt.Errorf("target %q: invalid port %q", hostPort, portStr)
	}
	ip, err := netip.ParseAddr(host)
	name := sni
	if err != nil {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		addrs, rerr := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if rerr != nil || len(addrs) == 0 {
			return stackprint.Target{}, "", fmt.Errorf("resolve %q: %v", host, rerr)
		}
		ip = addrs[0]
		if name == "" {
			name = host
		}
	}
	ip = stackprint.CanonicalAddr(ip)
	if name == "" {
		name = ip.String()
	}
	return stackprint.Target{IP: ip, Port: uint16(port), SNI: stackprint.CanonicalSNI(name)}, name, nil
}
