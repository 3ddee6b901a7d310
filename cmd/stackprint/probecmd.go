package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/probe"
)

// probeJSON is the --json output of `stackprint probe`.
type probeJSON struct {
	SchemaVersion int                   `json:"schema_version"`
	Target        string                `json:"target"`
	IP            string                `json:"ip"`
	Port          uint16                `json:"port"`
	SNI           string                `json:"sni"`          // what JARM sent as server_name
	ObservedSNI   string                `json:"observed_sni"` // what ATSF, cert and HTTP sent ("" = none)
	StartTLS      string                `json:"starttls"`     // STARTTLS protocol used before every handshake ("" = direct TLS)
	Status        string                `json:"status"`
	JARM          string                `json:"jarm"`
	JARMRaw       string                `json:"jarm_raw"`
	ATSF          *stackprint.ATSF      `json:"atsf,omitempty"`
	Cert          *stackprint.CertFacts `json:"cert,omitempty"`
	HTTP          *stackprint.HTTPFacts `json:"http,omitempty"`
	Kinds         []kindJSON            `json:"kinds"`
	Conns         int                   `json:"conns"`
	DurationMS    int64                 `json:"duration_ms"`
	Error         string                `json:"error,omitempty"`
}

type kindJSON struct {
	Kind       string `json:"kind"`
	Status     string `json:"status"`
	Conns      int    `json:"conns"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

func cmdProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", stdout, stderr)
	asJSON := fs.Bool("json", false, "print one JSON object (same as --format json)")
	format := fs.String("format", "text", "text, json, or goscanner (the columns of goscanner's fingerprints.csv, with a header)")
	sni := fs.String("sni", "", "server name to send (default: the host as given; for an IP, JARM sends the IP literal as jarm.py does and the other kinds send none)")
	kinds := fs.String("kinds", strings.Join(probe.AllKinds(), ","), "comma-separated fingerprint kinds: jarm, cert, http, atsf")
	ioTimeout := fs.Duration("timeout", probe.DefaultIOTimeout, "timeout of each connect, write and read")
	deadline := fs.Duration("deadline", probe.DefaultDeadline, "hard deadline for the whole target")
	httpWait := fs.Duration("http-wait", probe.DefaultHTTPWait, "longest wait for the HTTP answer's head after GET /")
	startTLS := fs.String("starttls", "", "upgrade every connection with this STARTTLS protocol first ("+strings.Join(stackprint.StartTLSProtocols(), ", ")+"); \"none\": direct TLS on any port (default: by port: 21, 25, 110, 143, 389, 587, 5222, 5269, 5432)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("probe: want exactly one HOST:PORT, got %d arguments", len(pos))
	}
	kindList, err := probe.ParseKinds(strings.Split(*kinds, ","))
	if err != nil {
		return fmt.Errorf("probe: --kinds: %w", err)
	}
	if *asJSON {
		*format = "json"
	}
	switch *format {
	case "text", "json":
	case "goscanner":
		if !slices.Contains(kindList, stackprint.KindATSF) {
			return fmt.Errorf("probe: --format goscanner needs the atsf kind (--kinds %s)", strings.Join(kindList, ","))
		}
	default:
		return fmt.Errorf("probe: --format %q: want text, json or goscanner", *format)
	}
	t, name, err := probe.ResolveTarget(ctx, pos[0], *sni, *ioTimeout)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	ecfg := probe.EngineConfig{Kinds: kindList, IOTimeout: *ioTimeout, Deadline: *deadline, HTTPWait: *httpWait}
	switch *startTLS {
	case "":
	case "none":
		ecfg.StartTLSPorts = map[uint16]string{}
	default:
		if !stackprint.IsStartTLSProtocol(*startTLS) {
			return fmt.Errorf("probe: --starttls %q: want none or one of %s", *startTLS, strings.Join(stackprint.StartTLSProtocols(), ", "))
		}
		t.StartTLS = *startTLS
	}
	eng, err := probe.NewEngine(ecfg)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, *deadline)
	defer cancel()
	res := eng.Probe(pctx, t, name)
	if *format == "goscanner" {
		return printGoscanner(stdout, t, res)
	}
	if *format == "json" {
		out := probeJSON{
			SchemaVersion: stackprint.SchemaVersion, Target: t.Addr().String(), IP: t.IP.String(), Port: t.Port,
			SNI: name, ObservedSNI: t.SNI, StartTLS: res.StartTLS, Status: string(res.Status), JARM: res.JARM, JARMRaw: res.JARMRaw,
			ATSF: res.ATSF, Cert: res.Cert, HTTP: res.HTTP, Kinds: []kindJSON{},
			Conns: res.Conns, DurationMS: res.Duration.Milliseconds(), Error: res.Error,
		}
		for _, k := range res.Kinds {
			out.Kinds = append(out.Kinds, kindJSON{Kind: k.Kind, Status: string(k.Status), Conns: k.Conns, DurationMS: k.Duration.Milliseconds(), Error: k.Error})
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false) // ATSF strings contain '<'
		return enc.Encode(out)
	}
	printProbeText(stdout, t, name, res)
	return nil
}

// printGoscanner writes the columns of goscanner's fingerprints.csv (ip,
// port, server_name, one raw string per ClientHello, the combined
// fingerprint) with a header, so the line can be compared with or imported
// next to the reference scanner's output (db import --format goscanner).
// server_name is the name ATSF sent (empty without SNI); fingerprint is
// empty when not every ClientHello answered (goscanner drops such a
// target).
func printGoscanner(w io.Writer, t stackprint.Target, res stackprint.Result) error {
	names := probe.ATSFHelloNames()
	cw := csv.NewWriter(w)
	if err := cw.Write(append(append([]string{"ip", "port", "server_name"}, names...), "fingerprint")); err != nil {
		return err
	}
	row := []string{t.IP.String(), strconv.Itoa(int(t.Port)), t.SNI}
	raw := map[string]string{}
	fp := ""
	if res.ATSF != nil {
		for _, h := range res.ATSF.Hellos {
			raw[h.Name] = h.Raw
		}
		fp = res.ATSF.Fingerprint
	}
	for _, n := range names {
		row = append(row, raw[n])
	}
	if err := cw.Write(append(row, fp)); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// printProbeText is the human-readable form: one fact per line.
func printProbeText(w io.Writer, t stackprint.Target, name string, res stackprint.Result) {
	fmt.Fprintf(w, "target:   %s (sni %s)\nstatus:   %s\n", t.Addr(), name, res.Status)
	if res.StartTLS != "" {
		fmt.Fprintf(w, "starttls: %s\n", res.StartTLS)
	}
	if res.JARM != "" {
		fmt.Fprintf(w, "jarm:     %s\n", res.JARM)
	}
	if a := res.ATSF; a != nil {
		fp := a.ID
		if fp == "" {
			fp = "(none: not every ClientHello answered)"
		}
		fmt.Fprintf(w, "atsf:     %s\n", fp)
		for _, h := range a.Hellos {
			line := h.Raw
			if line == "" {
				line = "(no data)"
			}
			if h.Error != "" {
				line += "  [" + h.Error + "]"
			}
			fmt.Fprintf(w, "  %-11s %s\n", h.Name, line)
		}
	}
	if c := res.Cert; c != nil {
		fmt.Fprintf(w, "cert:     sha256 %s\n          sha1   %s\n", c.SHA256, c.SHA1)
		if c.ParseError != "" {
			fmt.Fprintf(w, "          not parsable: %s\n", c.ParseError)
		} else {
			fmt.Fprintf(w, "          subject %s\n          issuer  %s\n          sans    %s\n          valid   %s .. %s\n          key     %s %d, self-signed %v, chain %d\n",
				c.Subject, c.Issuer, strings.Join(c.SANs, ", "), c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339),
				c.KeyType, c.KeyBits, c.SelfSigned, c.ChainLen)
		}
	}
	if h := res.HTTP; h != nil {
		fmt.Fprintf(w, "http:     %d, Server %q\n", h.StatusCode, h.Server)
	}
	for _, k := range res.Kinds {
		if k.Status != stackprint.StatusOK {
			fmt.Fprintf(w, "failed:   %s %s: %s\n", k.Kind, k.Status, k.Error)
		}
	}
	fmt.Fprintf(w, "conns:    %d\nduration: %s\n", res.Conns, res.Duration.Round(time.Millisecond))
	if res.Error != "" {
		fmt.Fprintf(w, "error:    %s\n", res.Error)
	}
}
