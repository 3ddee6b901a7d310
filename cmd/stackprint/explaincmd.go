package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/stackprint/stackprint/admin"
	"github.com/stackprint/stackprint/explain"
	"github.com/stackprint/stackprint/rules"
)

func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("explain", stdout, stderr)
	t := addTargetFlags(fs)
	asJSON := fs.Bool("json", false, "one JSON object (explain.Report) instead of text")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("explain: want one TARGET (ip, ip:port, ip:port/sni), ALERT_ID or FINGERPRINT, got %d arguments", len(pos))
	}
	st, cfg, err := openStoreReadOnly(ctx, t, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	if l, ok := st.(*admin.Local); ok {
		// The daemon knows its running rules; on a stopped DB they are
		// the config's.
		if opts, err := cfg.Rules.Options(); err == nil {
			if set, err := rules.Load(opts); err == nil {
				l.SetRules(explain.FromRuleSet(set))
			} else {
				fmt.Fprintf(stderr, "warning: rules do not load (%v); alerts are shown without their rule\n", err)
			}
		}
	}
	rep, err := st.Explain(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return explain.Text(stdout, rep)
}
