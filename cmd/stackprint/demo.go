package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/daemon"
	"github.com/stackprint/stackprint/internal/lab"
	"github.com/stackprint/stackprint/internal/logging"
	"github.com/stackprint/stackprint/output"
	"github.com/stackprint/stackprint/probe"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stdout, stderr)
	keep := fs.Bool("keep", false, "keep the temporary directory (logs, DB, outputs) and print its path")
	verbose := fs.Bool("v", false, "show the daemon's own log")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	start := time.Now()

	dir, err := os.MkdirTemp("", "stackprint-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if *keep {
		defer fmt.Fprintf(stdout, "\nfiles kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	fmt.Fprintln(stdout, "stackprint demo: TLS servers on 127.0.0.x → Zeek ssl.log → stackprint pipeline → alerts")
	fmt.Fprintln(stdout)
	servers, err := lab.StartDemoServers(ctx, dir, stderr)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	c2 := servers[1]

	// The operator's DB: the demo "C2" server's JARM, probed the same way
	// public lists are built (IP literal as SNI).
	dbPath := filepath.Join(dir, "stackprint.db")
	seed := probe.NewJARM(probe.JARMConfig{IOTimeout: 3 * time.Second, Deadline: 10 * time.Second}).
		Probe(ctx, stackprint.Target{IP: c2.Addr.Addr(), Port: c2.Addr.Port()}, c2.Addr.Addr().String())
	if !seed.HasJARM() {
		return fmt.Errorf("demo: could not fingerprint the seed server %s: %s %s", c2.Addr, seed.Status, seed.Error)
	}
	if err := lab.SeedDemoDB(dbPath, seed.JARM); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fingerprint DB seeded: jarm %s = \"demo-c2 (test C2)\", confidence high\n\n", seed.JARM)

	conns := lab.DemoConns(servers)
	logPath := filepath.Join(dir, "ssl.log")
	half := len(conns) / 2
	if err := lab.WriteZeekSSL(logPath, conns[:half], true); err != nil {
		return err
	}

	cfg, err := lab.DemoConfig(dir, dbPath, logPath)
	if err != nil {
		return err
	}
	if *verbose {
		cfg.Log.Level = "debug"
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}

	var mu sync.Mutex
	var alerts []stackprint.Alert
	var records []stackprint.Result
	d, err := daemon.New(cfg, logging.New(cfg.Log.Level, cfg.Log.Format, stderr), daemon.Options{
		OnAlert: func(a stackprint.Alert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() },
		OnRecord: func(_ stackprint.Event, r stackprint.Result, _ []stackprint.Match) {
			mu.Lock()
			records = append(records, r)
			mu.Unlock()
		},
	})
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()

	// Append the rest while the daemon follows the file.
	time.Sleep(300 * time.Millisecond)
	if err := lab.WriteZeekSSL(logPath, conns[half:], false); err != nil {
		stopRun()
		<-done
		return err
	}
	for int(d.Stats().Events) < len(conns) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	werr := d.WaitIdle(ctx)
	stopRun()
	if err := <-done; err != nil {
		return fmt.Errorf("demo pipeline: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("demo: pipeline did not finish: %w", werr)
	}

	mu.Lock()
	defer mu.Unlock()
	names := map[netip.AddrPort]string{}
	for _, s := range servers {
		names[s.Addr] = s.Name
	}
	slices.SortFunc(records, func(a, b stackprint.Result) int { return strings.Compare(a.Target.String(), b.Target.String()) })
	where := " (removed at exit; --keep keeps the files)"
	if *keep {
		where = ""
	}
	fmt.Fprintf(stdout, "fingerprint records, one per target, as written to %s%s:\n", cfg.Outputs.Fingerprints, where)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TARGET\tSERVER\tSTATUS\tJARM\tATSF ID")
	for _, r := range records {
		n := names[r.Target.Addr()]
		if n == "" {
			n = "-"
		}
		j := r.JARM
		if r.Status == stackprint.StatusOutOfScope {
			j = "(not probed: " + r.Error + ")"
		}
		atsf := "-"
		if r.HasATSF() {
			atsf = r.ATSF.ID[:16] + "…"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.Target, n, r.Status, j, atsf)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nalerts, as written to %s:\n\n", cfg.Outputs.Alerts)
	for _, a := range alerts {
		fmt.Fprintln(stdout, output.FormatAlertText(a))
	}
	st := d.Stats()
	fmt.Fprintf(stdout, "%d log lines → %d events: %d targets probed, %d out of scope, %d deduplicated; %d alerts in %.1fs\n",
		len(conns), st.Events, st.Probed, st.OutOfScope, st.Deduped, len(alerts), time.Since(start).Seconds())
	if len(alerts) == 0 {
		return fmt.Errorf("demo: expected alerts for the seeded C2 server, got none")
	}
	return nil
}
