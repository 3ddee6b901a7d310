package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/probe"
)

// probeJSON is the --json output of `stackprint probe`.
type probeJSON struct {
	SchemaVersion int    `json:"schema_version"`
	Target        string `json:"target"`
	IP            string `json:"ip"`
	Port          uint16 `json:"port"`
	SNI           string `json:"sni"`
	Status        string `json:"status"`
	JARM          string `json:"jarm"`
	JARMRaw       string `json:"jarm_raw"`
	Conns         int    `json:"conns"`
	DurationMS    int64  `json:"duration_ms"`
	Error         string `json:"error,omitempty"`
}

func cmdProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", "stackprint probe [--json] [--sni NAME] [--timeout D] [--deadline D] HOST:PORT", stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	sni := fs.String("sni", "", "server name to send (default: the host as given; for an IP, the IP literal as jarm.py does)")
	ioTimeout := fs.Duration("timeout", 5*time.Second, "timeout of each connect, write and read")
	deadline := fs.Duration("deadline", 15*time.Second, "hard deadline for the whole target")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("probe: want exactly one HOST:PORT, got %d arguments", len(pos))
	}
	host, portStr, err := net.SplitHostPort(pos[0])
	if err != nil {
		return fmt.Errorf("probe: target %q: %w", pos[0], err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return fmt.Errorf("probe: target %q: invalid port %q", pos[0], portStr)
	}
	ip, err := netip.ParseAddr(host)
	name := *sni
	if err != nil {
		// A host name: resolve once and send the name as SNI, as jarm.py does.
		rctx, cancel := context.WithTimeout(ctx, *ioTimeout)
		addrs, rerr := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if rerr != nil || len(addrs) == 0 {
			return fmt.Errorf("probe: resolve %q: %v", host, rerr)
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
	t := stackprint.Target{IP: ip, Port: uint16(port), SNI: stackprint.CanonicalSNI(name)}
	pctx, cancel := context.WithTimeout(ctx, *deadline)
	defer cancel()
	res := probe.NewJARM(probe.JARMConfig{IOTimeout: *ioTimeout, Deadline: *deadline}).Probe(pctx, t, name)
	if *asJSON {
		b, err := json.Marshal(probeJSON{
			SchemaVersion: stackprint.SchemaVersion, Target: t.Addr().String(), IP: ip.String(), Port: t.Port,
			SNI: name, Status: string(res.Status), JARM: res.JARM, JARMRaw: res.JARMRaw, Conns: res.Conns,
			DurationMS: res.Duration.Milliseconds(), Error: res.Error,
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	fmt.Fprintf(stdout, "target:   %s (sni %s)\nstatus:   %s\njarm:     %s\nconns:    %d\nduration: %s\n",
		t.Addr(), name, res.Status, res.JARM, res.Conns, res.Duration.Round(time.Millisecond))
	if res.Error != "" {
		fmt.Fprintf(stdout, "error:    %s\n", res.Error)
	}
	return nil
}
