// Command stackprint is the daemon and its CLI: it follows Zeek and
// Suricata logs, fingerprints the TLS servers clients talk to, matches the
// fingerprints against a local DB and writes alerts. This package is the
// composition root: flags, config, wiring and signals, no pipeline logic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

const usage = `stackprint — active TLS server fingerprinting for Zeek and Suricata sensors

Usage:
  stackprint run [-c FILE]                 follow the configured logs (the daemon)
  stackprint demo                          run the whole pipeline against local test servers
  stackprint probe [--json] [--sni NAME] [--kinds K,…] HOST:PORT
                                           fingerprint one server (JARM, ATSF, certificate, HTTP Server)
  stackprint db add --kind jarm --value H --label L [--source S] [--confidence low|medium|high]
  stackprint db list [--kind K] [--json]
  stackprint db rm --kind K --value V
  stackprint db import|export|stats|learn  see "stackprint db" for the list
  stackprint scan --no-probe FILE…         one pass over existing logs (parse, scope, dedup)
  stackprint rules check [FILE…]           compile and type-check rule files
  stackprint rules list                    the active rules
  stackprint config check [-c FILE]        validate a config (and its conf.d/*.yaml) and exit
  stackprint config show [-c FILE]         print the effective config
  stackprint version

Run "stackprint COMMAND -h" for the flags of a command.

Examples:
  stackprint demo
  stackprint run -c /etc/stackprint/stackprint.yaml
  stackprint probe --json 192.0.2.10:443
`

func main() {
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "stackprint:", err)
		os.Exit(1)
	}
}

// signalContext cancels on the first SIGINT/SIGTERM so shutdown runs in
// order; a second signal aborts at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "stackprint: second signal, aborting")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "probe":
		return cmdProbe(ctx, rest, stdout, stderr)
	case "db":
		return cmdDB(ctx, rest, stdout, stderr)
	case "config":
		return cmdConfig(rest, stdout, stderr)
	case "rules":
		return cmdRules(ctx, rest, stdout, stderr)
	case "scan":
		return cmdScan(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func versionString() string {
	v, commit, gov := buildInfo()
	return fmt.Sprintf("stackprint %s commit %s %s", v, commit, gov)
}

// parseInterleaved lets flags follow positional arguments
// ("probe HOST:PORT --json"), which the flag package alone does not.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// examples are shown by each command's -h, keyed by the flag set's name.
var examples = map[string]string{
	"run": `  stackprint run                        # embedded default config (configs/stackprint.yaml)
  stackprint run -c /etc/stackprint/stackprint.yaml
  kill -HUP $(pidof stackprint)         # reload scope and rules from the config file`,
	"demo": `  stackprint demo                       # TLS servers on 127.0.0.x, Zeek log, pipeline, alerts
  stackprint demo --keep -v             # keep the files and show the daemon's log`,
	"probe": `  stackprint probe 192.0.2.10:443       # SNI = the IP literal, like jarm.py
  stackprint probe --json --sni www.example.org 192.0.2.10:443
  stackprint probe example.org:443      # resolves once; SNI = example.org`,
	"db add": `  stackprint db add --kind jarm --value 07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d \
      --label cobalt-strike --source my-intel --confidence high`,
	"db list":   `  stackprint db list --kind jarm` + "\n" + `  stackprint db list --json -c /etc/stackprint/stackprint.yaml`,
	"db rm":     `  stackprint db rm --kind jarm --value 07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d`,
	"db import": `  stackprint db import fingerprints.csv  # header: kind,value,label,source,confidence`,
	"config check": `  stackprint config check -c /etc/stackprint/stackprint.yaml
  stackprint config check               # the embedded default`,
	"config show": `  stackprint config show -c /etc/stackprint/stackprint.yaml   # default + file + conf.d/*.yaml`,
	"scan":        `  stackprint scan --no-probe conn.log ssl.log eve.json`,
	"rules check": `  stackprint rules check configs/rules/*.yaml`,
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		if ex := examples[name]; ex != "" {
			fmt.Fprintf(stderr, "\nExamples:\n%s\n", ex)
		}
	}
	return fs
}

func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	switch cfg.Level {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if strings.EqualFold(cfg.Format, "json") {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(newRateLimitHandler(h, 5, 10*time.Second))
}

func cmdConfig(args []string, stdout, stderr io.Writer) error {
	const synopsis = "stackprint config check|show [-c FILE]"
	if len(args) == 0 || (args[0] != "check" && args[0] != "show") {
		return fmt.Errorf("usage: %s", synopsis)
	}
	fs := newFlagSet("config "+args[0], "stackprint config "+args[0]+" [-c FILE]", stderr)
	path := fs.String("c", "", "config file; *.yaml in conf.d beside it are read after it (default: the embedded default)")
	if _, err := parseInterleaved(fs, args[1:]); err != nil {
		return err
	}
	srcs, err := configSources(*path)
	if err != nil {
		return err
	}
	cfg, err := parseSources(srcs)
	if err != nil {
		return err
	}
	if args[0] == "check" {
		fmt.Fprintln(stdout, "config ok")
		return nil
	}
	fmt.Fprintln(stdout, "# effective stackprint config, from:")
	for _, s := range srcs {
		fmt.Fprintln(stdout, "#  ", s.name)
	}
	var doc yaml.Node
	if err := doc.Encode(cfg); err != nil {
		return fmt.Errorf("config show: %w", err)
	}
	escapeEnvRefs(&doc) // what is printed reads back as the same config
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("config show: %w", err)
	}
	return enc.Close()
}
