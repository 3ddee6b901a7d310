package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/watch"
)

// watchStore is what the watch subcommands need: the DB file, or the
// running daemon that owns it (which then re-probes at once what changed).
type watchStore interface {
	WatchAdd(ctx context.Context, entries []watch.Entry, replace bool) ([]watch.Entry, error)
	WatchList(ctx context.Context) ([]watch.Entry, error)
	WatchRemove(ctx context.Context, key string) (bool, error)
	WatchAccept(ctx context.Context, key string) (watch.Entry, error)
	Via() string
	Live() bool
	Close() error
}

// openWatchStore is openStore for the watch commands.
func openWatchStore(ctx context.Context, t dbTarget, write bool, stderr io.Writer) (watchStore, error) {
	st, _, err := openStore(ctx, t, write, stderr)
	if err != nil {
		return nil, err
	}
	ws, ok := st.(watchStore)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("%s does not take watch-list changes: stop it, or use a stackprint binary of the same version as the daemon", st.Via())
	}
	return ws, nil
}

func cmdWatchAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("watch add", stdout, stderr)
	t := addTargetFlags(fs)
	sni := fs.String("sni", "", "server_name of the probes (default: the host name of HOST:PORT, none for an IP)")
	every := fs.Duration("every", 0, "re-probe interval, e.g. 30m (default: watch.every of the daemon's config)")
	label := fs.String("label", "", "a name for the server in alerts, e.g. web-prod")
	startTLS := fs.String("starttls", "", "upgrade every probe with this STARTTLS protocol first ("+strings.Join(stackprint.StartTLSProtocols(), ", ")+
		"; default: by port, as probe.starttls_ports says for logged connections)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("watch add: want one HOST:PORT, got %d arguments", len(pos))
	}
	ap, name, err := watch.ParseTarget(ctx, net.DefaultResolver, pos[0], *sni)
	if err != nil {
		return fmt.Errorf("watch add: %w", err)
	}
	e := watch.Entry{Addr: ap, SNI: name, Every: *every, Label: *label, Origin: "cli"}
	if e.StartTLS, err = watch.ParseStartTLS(*startTLS, ap.Port()); err != nil {
		return fmt.Errorf("watch add: --%w", err)
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("watch add: %w", err)
	}
	st, err := openWatchStore(ctx, t, true, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	added, err := st.WatchAdd(ctx, []watch.Entry{e}, false)
	if err != nil {
		return err
	}
	how := ""
	if added[0].StartTLS != "" {
		how = ", STARTTLS " + added[0].StartTLS
	}
	fmt.Fprintf(stdout, "watching %s (every %s%s) via %s\n", added[0].Key(), everyText(added[0].Every), how, st.Via())
	if st.Live() {
		fmt.Fprintln(stdout, "the daemon probes it now; its first successful probe records the baseline")
	} else {
		fmt.Fprintln(stdout, "`stackprint run` probes it at start; its first successful probe records the baseline")
	}
	return nil
}

func everyText(d time.Duration) string {
	if d == 0 {
		return "watch.every"
	}
	return d.String()
}

func cmdWatchList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("watch list", stdout, stderr)
	t := addTargetFlags(fs)
	asJSON := fs.Bool("json", false, "one JSON object per entry (baseline and state included)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	st, err := openWatchStore(ctx, t, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.WatchList(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range list {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tLABEL\tEVERY\tSTARTTLS\tSTATUS\tLAST PROBE\tJARM (BASELINE)")
	for _, e := range list {
		last := "-"
		if !e.State.LastProbe.IsZero() {
			last = e.State.LastProbe.UTC().Format(time.RFC3339) + " " + e.State.LastStatus
		}
		jarm := "-"
		if e.Baseline != nil && e.Baseline.JARM != "" {
			jarm = e.Baseline.JARM
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Key(), orDashText(e.Label), everyText(e.Every), startTLSColumn(e), e.Status(), last, jarm)
	}
	return tw.Flush()
}

// startTLSColumn is the entry's STARTTLS protocol, or the one its last
// successful probe used by port ("smtp (port)"), or "-".
func startTLSColumn(e watch.Entry) string {
	switch {
	case e.StartTLS != "":
		return e.StartTLS
	case e.State.Current != nil && e.State.Current.StartTLS != "":
		return e.State.Current.StartTLS + " (port)"
	}
	return "-"
}

func orDashText(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// findWatched resolves the TARGET argument of rm and accept.
func findWatched(ctx context.Context, st watchStore, arg, sni string) (watch.Entry, error) {
	ap, name, err := watch.ParseKey(arg, sni)
	if err != nil {
		return watch.Entry{}, err
	}
	list, err := st.WatchList(ctx)
	if err != nil {
		return watch.Entry{}, err
	}
	return watch.Find(list, ap, name, sni != "" || strings.Contains(arg, "/"))
}

// openWatched parses the TARGET argument of `watch rm|accept` and finds its
// entry. The caller closes the store.
func openWatched(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) (watchStore, watch.Entry, error) {
	fs := newFlagSet(cmd, stdout, stderr)
	t := addTargetFlags(fs)
	sni := fs.String("sni", "", "the entry's server name, when the address is watched under several")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, watch.Entry{}, err
	}
	if len(pos) != 1 {
		return nil, watch.Entry{}, fmt.Errorf("%s: want one TARGET (ip:port or ip:port/sni), got %d arguments", cmd, len(pos))
	}
	st, err := openWatchStore(ctx, t, false, stderr)
	if err != nil {
		return nil, watch.Entry{}, err
	}
	e, err := findWatched(ctx, st, pos[0], *sni)
	if err != nil {
		st.Close()
		return nil, watch.Entry{}, fmt.Errorf("%s: %w", cmd, err)
	}
	return st, e, nil
}

func cmdWatchRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	st, e, err := openWatched(ctx, "watch rm", args, stdout, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	found, err := st.WatchRemove(ctx, e.Key())
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("watch rm: %s: not watched", e.Key())
	}
	fmt.Fprintf(stdout, "no longer watching %s via %s\n", e.Key(), st.Via())
	return nil
}

func cmdWatchAccept(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	st, e, err := openWatched(ctx, "watch accept", args, stdout, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	e, err = st.WatchAccept(ctx, e.Key())
	if err != nil {
		return err
	}
	how := ""
	if e.Baseline.StartTLS != "" {
		how = ", STARTTLS " + e.Baseline.StartTLS
	}
	fmt.Fprintf(stdout, "%s: the fingerprints of its last successful probe (%s%s) are its baseline now (jarm %s)\n",
		e.Key(), cmp.Or(e.State.LastOK, e.State.LastProbe).UTC().Format(time.RFC3339), how, orDashText(e.Baseline.JARM))
	return nil
}

func cmdWatchImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("watch import", stdout, stderr)
	t := addTargetFlags(fs)
	replace := fs.Bool("replace", false, "update the settings of servers already watched (their baselines stay)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("watch import: want one FILE, got %d arguments", len(pos))
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("watch import: %w", err)
	}
	entries, err := watch.ParseList(ctx, net.DefaultResolver, pos[0], data)
	if err != nil {
		return fmt.Errorf("watch import: nothing imported:\n%w", err)
	}
	st, err := openWatchStore(ctx, t, true, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	added, err := st.WatchAdd(ctx, entries, *replace)
	if err != nil {
		return fmt.Errorf("watch import %s: nothing imported: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "imported %d servers from %s into the watch list via %s\n", len(added), pos[0], st.Via())
	return nil
}
