package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/rules"
)

func rulesCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules check", stdout, stderr)
	cfgPath := fs.String("c", "", "config whose rules to check when no FILE is given (default: the embedded default)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	var opts rules.Options
	if len(files) == 0 {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		if opts, err = cfg.Rules.Options(); err != nil {
			return err
		}
	} else {
		opts.Files = files
	}
	set, err := rules.Load(opts)
	if err != nil {
		probs := flatten(err)
		for _, p := range probs {
			fmt.Fprintln(stderr, p)
		}
		return fmt.Errorf("rules check: %d problem(s)", len(probs))
	}
	// Per file, in load order; globs and directories show what they
	// expanded to. Built-in rules are summed in the last line.
	var order []string
	perFile := map[string]int{}
	for _, r := range set.Rules {
		if strings.HasPrefix(r.File, "builtin:") {
			continue
		}
		if perFile[r.File] == 0 {
			order = append(order, r.File)
		}
		perFile[r.File]++
	}
	for _, f := range order {
		fmt.Fprintf(stdout, "%s: %d rules ok\n", f, perFile[f])
	}
	fmt.Fprintf(stdout, "rules ok: %d loaded, %d active\n", len(set.Rules), len(set.Active()))
	return nil
}

func rulesList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules list", stdout, stderr)
	cfgPath := fs.String("c", "", "config file (default: the embedded default)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	opts, err := cfg.Rules.Options()
	if err != nil {
		return err
	}
	set, err := rules.Load(opts)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tSID\tSUPPRESS\tSTATE\tNAME")
	for _, r := range set.Rules {
		state := "on"
		switch {
		case r.Disabled:
			state = "disabled"
		case r.Simulate || opts.Simulation:
			state = "simulated"
		}
		sup := "-"
		if r.Suppress > 0 {
			sup = r.Suppress.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.Severity, r.SignatureID, sup, state, r.Name)
	}
	return tw.Flush()
}

// flatten lists the leaves of joined errors, one problem each.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
