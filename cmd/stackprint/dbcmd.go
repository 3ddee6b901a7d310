package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stackprint/stackprint/admin"
	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/db"
	"github.com/stackprint/stackprint/explain"
	"github.com/stackprint/stackprint/internal/fileio"
)

// dbStore is what the db subcommands need from the fingerprint DB. The
// admin client (a daemon runs and owns the file) and admin.Local (the
// file, opened directly) both provide it; retro counts the retroactive
// alerts a running daemon raised.
type dbStore interface {
	Add(ctx context.Context, r db.Record) (stored db.Record, retro int, err error)
	Remove(ctx context.Context, kind, value string) (bool, error)
	List(ctx context.Context, kind string) ([]db.Record, error)
	Import(ctx context.Context, name string, data []byte, o db.ImportOptions) (db.ImportReport, int, error)
	Export(ctx context.Context, o db.ExportOptions) ([]byte, int, error)
	Stats(ctx context.Context) (db.Stats, error)
	LearnFinished(ctx context.Context, role string) (map[string]bool, error)
	RecordLearn(ctx context.Context, lr db.LearnResult) (bool, error)
	LearnScores(ctx context.Context) ([]db.LearnStats, error)
	ResetLearn(ctx context.Context) error
	Promote(ctx context.Context, o db.PromoteOptions) ([]db.Record, int, error)
	Check(ctx context.Context) ([]string, error)
	Backup(ctx context.Context, path string) (int64, error)
	Explain(ctx context.Context, query string) (explain.Report, error)
	// Via names where changes go, for messages; Live is true for a daemon.
	Via() string
	Live() bool
	Close() error
}

// dbTarget are the flags every db subcommand takes to find the DB.
type dbTarget struct {
	cfgPath, dbPath, socket *string
}

func addTargetFlags(fs *flag.FlagSet) dbTarget {
	return dbTarget{
		cfgPath: fs.String("c", "", "config file naming db.path and db.admin_socket (default: the embedded default)"),
		dbPath:  fs.String("db", "", "fingerprint DB file (overrides the config)"),
		socket:  fs.String("socket", "", "the daemon's admin socket (default: db.admin_socket, or admin.sock next to the DB)"),
	}
}

// resolve returns the DB file, the admin socket and the lock timeout.
func (t dbTarget) resolve() (path, socket string, timeout time.Duration, cfg *config.Config, err error) {
	cfg, err = config.Load(*t.cfgPath)
	if err != nil {
		return "", "", 0, nil, err
	}
	dbc := cfg.DB
	if *t.dbPath != "" {
		// Another file than the config's: its socket is next to it too,
		// unless named.
		dbc.Path, dbc.AdminSocket = *t.dbPath, ""
	}
	if *t.socket != "" {
		dbc.AdminSocket = *t.socket
	}
	return dbc.Path, dbc.AdminSocketPath(), dbc.LockTimeout, cfg, nil
}

// openStore reaches the running daemon over its admin socket, or opens the
// file when no daemon answers (admin.OpenFile). write says whether the
// command may create the file.
func openStore(ctx context.Context, t dbTarget, write bool, stderr io.Writer) (dbStore, *config.Config, error) {
	mode := admin.ReadWrite
	if write {
		mode = admin.Create
	}
	return dialOrOpen(ctx, t, mode, stderr)
}

// openStoreReadOnly is openStore for commands that only read: without a
// daemon the file is opened with a shared lock and never created.
func openStoreReadOnly(ctx context.Context, t dbTarget, stderr io.Writer) (dbStore, *config.Config, error) {
	return dialOrOpen(ctx, t, admin.ReadOnly, stderr)
}

func dialOrOpen(ctx context.Context, t dbTarget, mode admin.Mode, stderr io.Writer) (dbStore, *config.Config, error) {
	path, socket, timeout, cfg, err := t.resolve()
	if err != nil {
		return nil, nil, err
	}
	c, err := admin.Dial(ctx, socket)
	if err == nil {
		return c, cfg, nil
	}
	if !errors.Is(err, admin.ErrNoDaemon) {
		return nil, nil, err
	}
	l, from, err := admin.OpenFile(path, socket, timeout, mode)
	if err != nil {
		return nil, nil, err
	}
	if from != 0 {
		fmt.Fprintf(stderr, "migrated %s from schema version %d to %d\n", path, from, db.SchemaVersion)
	}
	return l, cfg, nil
}

func cmdDBAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db add", stdout, stderr)
	t := addTargetFlags(fs)
	kind := fs.String("kind", "", "fingerprint kind: jarm, atsf, cert_sha256, cert_sha1")
	value := fs.String("value", "", "fingerprint value (hex; certificate hashes may have colons)")
	label := fs.String("label", "", "what the fingerprint identifies, e.g. a malware family")
	source := fs.String("source", "", "where the entry comes from")
	confidence := fs.String("confidence", "medium", "low, medium or high (alert severity follows it)")
	category := fs.String("category", "", "category, e.g. c2")
	notes := fs.String("notes", "", "free text")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	r := db.Record{Kind: *kind, Value: *value, Label: *label, Source: *source, Confidence: *confidence, Category: *category, Notes: *notes}
	if err := db.ValidateRecord(&r); err != nil {
		return fmt.Errorf("db add: %w", err)
	}
	st, _, err := openStore(ctx, t, true, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	stored, retro, err := st.Add(ctx, r)
	if err != nil {
		return fmt.Errorf("db add: %w", err)
	}
	if ds, ok := db.DefaultStack(stored.Kind, stored.Value); ok {
		fmt.Fprintf(stderr, "warning: %s %s equals a default stack (%s): it matches every server running it\n", stored.Kind, stored.Value, ds)
	}
	fmt.Fprintf(stdout, "added %s %s (%s, %s confidence) via %s\n", stored.Kind, stored.Value, stored.Label, stored.Confidence, st.Via())
	if st.Live() {
		fmt.Fprintf(stdout, "retro-hunt: %d retroactive alerts\n", retro)
	}
	return nil
}

func cmdDBRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db rm", stdout, stderr)
	t := addTargetFlags(fs)
	kind := fs.String("kind", "", "fingerprint kind: jarm, atsf, cert_sha256, cert_sha1")
	value := fs.String("value", "", "fingerprint value")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	k, err := db.NormaliseKey(*kind, *value)
	if err != nil {
		return fmt.Errorf("db rm: %w", err)
	}
	st, _, err := openStore(ctx, t, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	ok, err := st.Remove(ctx, k.Kind, k.Value)
	if err != nil {
		return fmt.Errorf("db rm: %w", err)
	}
	if !ok {
		return fmt.Errorf("db rm: no %s entry %q", k.Kind, k.Value)
	}
	fmt.Fprintf(stdout, "removed %s %s via %s\n", k.Kind, k.Value, st.Via())
	return nil
}

func cmdDBList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db list", stdout, stderr)
	t := addTargetFlags(fs)
	kind := fs.String("kind", "", "only this kind: jarm, atsf, cert_sha256, cert_sha1")
	asJSON := fs.Bool("json", false, "one JSON record per line (what db import reads)")
	var f db.ListFilter
	fs.StringVar(&f.ValuePrefix, "value", "", "only values starting with this (hex, case-insensitive; colons allowed)")
	fs.StringVar(&f.Label, "label", "", "only labels containing this (case-insensitive)")
	fs.StringVar(&f.Source, "source", "", "only this source (case-insensitive)")
	fs.StringVar(&f.Category, "category", "", "only this category (case-insensitive), e.g. c2")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	st, _, err := openStore(ctx, t, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := st.List(ctx, *kind)
	if err != nil {
		return fmt.Errorf("db list: %w", err)
	}
	recs = f.Apply(recs)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVALUE\tLABEL\tCATEGORY\tSOURCE\tCONFIDENCE\tBLOCK/TOP\tSCORE\tLAST SEEN")
	for _, r := range recs {
		score := "-"
		if s, ok := r.Score(); ok {
			score = fmt.Sprintf("%.2f", s)
		}
		last := "-"
		if !r.LastSeen.IsZero() {
			last = r.LastSeen.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", r.Kind, r.Value, r.Label, dash(r.Category), dash(r.Source), r.Confidence, r.BlockCount, r.TopCount, score, last)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdDBImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db import", stdout, stderr)
	t := addTargetFlags(fs)
	format := fs.String("format", "", "csv (ours, with a header), jsonl, jarm (hash,label[,source]), sslbl (abuse.ch SSLBL CSV), goscanner (fingerprints.csv, keeps the ten per-ClientHello answers), jarmpy (jarm.py -o CSV), tlsx (JSON lines with jarm_hash) or probe (stackprint probe --json lines: atsf with its ten answers, jarm); default: detected")
	label := fs.String("label", "", "label for lines that have none (scan outputs; default: scan: and the first server seen with the fingerprint)")
	partial := fs.Bool("partial", false, "import the valid lines of a file that has invalid ones (default: all or nothing per file)")
	source := fs.String("source", "", "source for lines that name none (default: the feed's name, or import:FILE)")
	confidence := fs.String("confidence", "", "confidence for lines that set none (default: medium; low for default stacks; high for SSLBL)")
	category := fs.String("category", "", "category for lines that set none")
	replace := fs.Bool("replace", false, "overwrite entries that came from another source (default: keep them and say so)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return fmt.Errorf("db import: want at least one FILE")
	}
	o := db.ImportOptions{Format: *format, Partial: *partial, Source: *source, Confidence: *confidence, Category: *category, Label: *label, Replace: *replace}
	st, _, err := openStore(ctx, t, true, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	var failed []string
	for _, name := range files {
		data, err := readImportFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			failed = append(failed, name)
			continue
		}
		rep, retro, err := st.Import(ctx, name, data, o)
		for _, w := range rep.Warnings {
			fmt.Fprintf(stderr, "%s:%d: warning: %s\n", name, w.Line, w.Reason)
		}
		for _, r := range rep.Rejected {
			fmt.Fprintf(stderr, "%s:%d: rejected: %s\n", name, r.Line, r.Reason)
		}
		if err != nil {
			fmt.Fprintf(stderr, "db import: %v\n", err)
			failed = append(failed, name)
			continue
		}
		msg := fmt.Sprintf("imported %d entries from %s (%s) via %s", rep.Accepted, name, rep.Format, st.Via())
		if n := len(rep.Rejected); n > 0 {
			msg += fmt.Sprintf("; %d lines rejected", n)
		}
		for _, k := range rep.Kept {
			fmt.Fprintf(stderr, "%s: kept existing %s %s (another source; --replace overwrites it)\n", name, k.Kind, k.Value)
		}
		if n := len(rep.Kept); n > 0 {
			msg += fmt.Sprintf("; %d existing entries of other sources kept", n)
		}
		if st.Live() {
			msg += fmt.Sprintf("; retro-hunt: %d retroactive alerts", retro)
		}
		fmt.Fprintln(stdout, msg)
	}
	if len(failed) > 0 {
		return fmt.Errorf("db import: nothing imported from %s", strings.Join(failed, ", "))
	}
	return nil
}

// readImportFile reads FILE ("-" = standard input) up to db.MaxImportBytes.
func readImportFile(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("db import: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, db.MaxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("db import %s: %w", name, err)
	}
	if len(data) > db.MaxImportBytes {
		return nil, fmt.Errorf("db import %s: larger than %d MiB", name, db.MaxImportBytes>>20)
	}
	return data, nil
}

func cmdDBExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db export", stdout, stderr)
	t := addTargetFlags(fs)
	format := fs.String("format", "", "jsonl, csv, zeek-intel (Intel::ADDR of matched servers, Intel::CERT_HASH of SHA-1s) or suricata-dataset (type ip)")
	out := fs.String("o", "-", "output file, replaced atomically (temp file, fsync, rename); - = standard output")
	kind := fs.String("kind", "", "jsonl/csv: only this kind")
	minConf := fs.String("min-confidence", "", "leave out records below low, medium or high")
	since := fs.Duration("since", 0, "zeek-intel/suricata-dataset: only servers seen with a matching fingerprint within this long (0 = ever)")
	intelSource := fs.String("intel-source", "stackprint", "zeek-intel: meta.source")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *format == "" {
		fs.Usage()
		return fmt.Errorf("db export: --format is required (%s)", strings.Join(db.ExportFormats(), ", "))
	}
	o := db.ExportOptions{Format: *format, Kind: *kind, MinConfidence: *minConf, IntelSource: *intelSource}
	if *since > 0 {
		o.Since = time.Now().Add(-*since).UTC()
	}
	st, _, err := openStore(ctx, t, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	data, n, err := st.Export(ctx, o)
	if err != nil {
		return fmt.Errorf("db export: %w", err)
	}
	if *out == "-" {
		_, err := stdout.Write(data)
		return err
	}
	err = fileio.WriteFileAtomic(*out, data, 0o644)
	if err != nil {
		return fmt.Errorf("db export: %w", err)
	}
	fmt.Fprintf(stderr, "exported %d items (%s) to %s\n", n, *format, *out)
	return nil
}

func cmdDBStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db stats", stdout, stderr)
	t := addTargetFlags(fs)
	asJSON := fs.Bool("json", false, "one JSON object")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	st, _, err := openStore(ctx, t, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := st.Stats(ctx)
	if err != nil {
		return fmt.Errorf("db stats: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(stdout, "file:            %s (%s, schema version %d) via %s\n", s.Path, humanBytes(s.FileSize), s.SchemaVersion, st.Via())
	fmt.Fprintf(stdout, "fingerprints:    %d\n", s.Fingerprints)
	for _, g := range []struct {
		name string
		m    map[string]int
	}{{"by kind", s.ByKind}, {"by category", s.ByCategory}, {"by source", s.BySource}, {"by confidence", s.ByConfidence}} {
		fmt.Fprintf(stdout, "  %s:\n", g.name)
		for _, k := range sortedKeys(g.m) {
			fmt.Fprintf(stdout, "    %-40s %d\n", k, g.m[k])
		}
	}
	fmt.Fprintf(stdout, "observations:    %d targets\n", s.Observations)
	fmt.Fprintf(stdout, "learned:         %d fingerprints from %d list entries\n", s.Learned, s.LearnTargets)
	fmt.Fprintf(stdout, "pending events:  %d\n", s.Pending)
	if li := s.LastImport; li != nil {
		fmt.Fprintf(stdout, "last import:     %s %s (%s): %d accepted, %d rejected\n", li.Time.Format(time.RFC3339), li.Name, li.Format, li.Accepted, li.Rejected)
	} else {
		fmt.Fprintf(stdout, "last import:     never\n")
	}
	return nil
}

// sortedKeys orders by count, highest first, then name.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func cmdDBCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db check", stdout, stderr)
	t := addTargetFlags(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	st, _, err := openStoreReadOnly(ctx, t, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	problems, err := st.Check(ctx)
	if err != nil {
		return fmt.Errorf("db check: %w", err)
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, "problem:", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("db check: %d problems in %s; restore a backup, or stop the daemon and run `stackprint db recover NEWFILE`", len(problems), st.Via())
	}
	fmt.Fprintf(stdout, "db ok: %s\n", st.Via())
	return nil
}

func cmdDBBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db backup", stdout, stderr)
	t := addTargetFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("db backup: want one FILE to write")
	}
	// The daemon writes the file itself: the path must not depend on its
	// working directory.
	out, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	st, _, err := openStoreReadOnly(ctx, t, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.Backup(ctx, out)
	if err != nil {
		return fmt.Errorf("db backup: %w", err)
	}
	fmt.Fprintf(stdout, "backed up %s to %s (%s)\n", st.Via(), out, humanBytes(n))
	return nil
}

func cmdDBRecover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db recover", stdout, stderr)
	t := addTargetFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("db recover: want the NEWFILE to write")
	}
	path, socket, _, _, err := t.resolve()
	if err != nil {
		return err
	}
	if c, err := admin.Dial(ctx, socket); err == nil {
		c.Close()
		return fmt.Errorf("db recover: a daemon runs on %s: stop it first (recover reads the file directly)", socket)
	}
	rep, err := db.Recover(path, pos[0])
	for _, p := range rep.Problems {
		fmt.Fprintln(stderr, "recover:", p)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recovered %d keys in %d buckets of %s into %s (%d fingerprints salvaged from pages); %s is unchanged: "+
		"check %s with `stackprint db check --db %s`, then point db.path at it\n",
		rep.Keys, rep.Buckets, path, pos[0], rep.Salvaged, path, pos[0], pos[0])
	return nil
}

func cmdDBCompact(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db compact", stdout, stderr)
	t := addTargetFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("db compact: no arguments expected, got %q", pos)
	}
	path, socket, _, _, err := t.resolve()
	if err != nil {
		return err
	}
	if c, err := admin.Dial(ctx, socket); err == nil {
		c.Close()
		return fmt.Errorf("db compact: a daemon runs on %s: stop it first (compact replaces the file)", socket)
	}
	rep, err := db.Compact(path, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "compacted %s: %s → %s\n", path, humanBytes(rep.Before), humanBytes(rep.After))
	return nil
}
