package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/stackprint/stackprint/db"
)

const dbUsage = `Usage:
  stackprint db add --kind jarm --value H --label L [--source S] [--confidence low|medium|high] [--category C] [--notes N]
  stackprint db list [--kind K] [--json]
  stackprint db rm --kind K --value V
  stackprint db import FILE
Common flags: -c FILE (config naming db.path) or --db PATH.`

// cmdDB opens the DB file directly; while `stackprint run` holds it, the
// lock timeout turns into a clear error instead of a hang.
func cmdDB(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, dbUsage)
		return fmt.Errorf("db: missing subcommand")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("db "+sub, "stackprint db "+sub+" [flags]", stderr)
	cfgPath := fs.String("c", "", "config file whose db.path to use")
	dbPath := fs.String("db", "", "fingerprint DB file (overrides the config)")
	kind := fs.String("kind", "", "fingerprint kind: jarm, atsf, cert_sha256, cert_sha1")
	value := fs.String("value", "", "fingerprint value")
	label := fs.String("label", "", "what the fingerprint identifies, e.g. a malware family")
	source := fs.String("source", "", "where the entry comes from")
	confidence := fs.String("confidence", "medium", "low, medium or high")
	category := fs.String("category", "", "category, e.g. c2")
	notes := fs.String("notes", "", "free text")
	asJSON := fs.Bool("json", false, "list as JSON lines")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	path := *dbPath
	timeout := 2 * time.Second
	if path == "" {
		cfg, err := LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		path, timeout = cfg.DB.Path, cfg.DB.LockTimeout
	}
	if sub == "add" || sub == "import" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return fmt.Errorf("create db directory: %w", err)
		}
	}
	d, err := db.Open(path, db.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	defer d.Close()
	switch sub {
	case "add":
		r := db.Record{Kind: *kind, Value: *value, Label: *label, Source: *source, Confidence: *confidence, Category: *category, Notes: *notes}
		if err := d.Add(r); err != nil {
			return fmt.Errorf("db add: %w", err)
		}
		fmt.Fprintf(stdout, "added %s %s (%s)\n", *kind, *value, *label)
	case "rm":
		ok, err := d.Remove(*kind, *value)
		if err != nil {
			return fmt.Errorf("db rm: %w", err)
		}
		if !ok {
			return fmt.Errorf("db rm: no %s entry %q", *kind, *value)
		}
		fmt.Fprintf(stdout, "removed %s %s\n", *kind, *value)
	case "list":
		recs, err := d.List(*kind)
		if err != nil {
			return fmt.Errorf("db list: %w", err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for _, r := range recs {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tVALUE\tLABEL\tSOURCE\tCONFIDENCE")
		for _, r := range recs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Value, r.Label, r.Source, r.Confidence)
		}
		return tw.Flush()
	case "import":
		if len(pos) != 1 {
			return fmt.Errorf("db import: want exactly one FILE")
		}
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("db import: %w", err)
		}
		defer f.Close()
		rep, err := d.Import(f, pos[0])
		for _, r := range rep.Rejected {
			fmt.Fprintf(stderr, "%s:%d: rejected: %s\n", pos[0], r.Line, r.Reason)
		}
		if err != nil {
			return fmt.Errorf("db import: %w", err)
		}
		fmt.Fprintf(stdout, "imported %d entries from %s\n", rep.Accepted, pos[0])
	default:
		fmt.Fprintln(stderr, dbUsage)
		return fmt.Errorf("db: unknown subcommand %q", sub)
	}
	return nil
}
