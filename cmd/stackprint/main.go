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
	"os"
	"os/signal"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/daemon"
	"github.com/stackprint/stackprint/internal/logging"
)

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

func versionString() string {
	v, commit, gov := daemon.BuildInfo()
	return fmt.Sprintf("stackprint %s commit %s %s", v, commit, gov)
}

// cmdConfig is `stackprint config check|show`.
func cmdConfig(sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config "+sub, stdout, stderr)
	path := fs.String("c", "", "config file; *.yaml in conf.d beside it are read after it (default: the embedded default)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	srcs, err := config.Sources(*path)
	if err != nil {
		return err
	}
	cfg, err := config.ParseSources(srcs)
	if err != nil {
		return err
	}
	if sub == "check" {
		fmt.Fprintln(stdout, "config ok")
		return nil
	}
	fmt.Fprintln(stdout, "# effective stackprint config, from:")
	for _, s := range srcs {
		fmt.Fprintln(stdout, "#  ", s.Name)
	}
	var doc yaml.Node
	if err := doc.Encode(cfg); err != nil {
		return fmt.Errorf("config show: %w", err)
	}
	config.EscapeEnvRefs(&doc) // what is printed reads back as the same config
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("config show: %w", err)
	}
	return enc.Close()
}

// cmdRun is `stackprint run`: the daemon until a signal stops it.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stdout, stderr)
	path := fs.String("c", "", "config file (default: the embedded default, configs/stackprint.yaml)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log := logging.New(cfg.Log.Level, cfg.Log.Format, stderr)
	if os.Geteuid() == 0 {
		log.Warn("running as root; a dedicated unprivileged user is recommended")
	}
	d, err := daemon.New(cfg, log, daemon.Options{ConfigPath: *path})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
