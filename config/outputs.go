package config

import (
	"path/filepath"
	"time"

	"github.com/stackprint/stackprint/output"
	"github.com/stackprint/stackprint/zeeklog"
)

// validate checks the outputs keys; every path may be "" (off) but alerts
// must go somewhere.
func (o OutputsConfig) validate() []error {
	var errs []error
	bad := func(field string, v any, reason string) {
		errs = append(errs, &FieldError{Field: field, Value: v, Reason: reason})
	}
	if o.Alerts == "" && o.AlertLog == "" && o.EVE == "" {
		bad("outputs.alerts", `""`, "at least one of outputs.alerts, outputs.alert_log and outputs.eve is required, or alerts go nowhere")
	}
	switch output.AlertFormat(o.AlertsFormat) {
	case "", output.AlertNDJSON, output.AlertECS, output.AlertEVE:
	default:
		bad("outputs.alerts_format", o.AlertsFormat, `must be "ecs", "ndjson" or "eve"`)
	}
	switch zeeklog.Format(o.ZeekFormat) {
	case "", zeeklog.TSV, zeeklog.JSON:
	default:
		bad("outputs.zeek_format", o.ZeekFormat, `must be "tsv" or "json"`)
	}
	if o.RotateInterval < 0 || (o.RotateInterval > 0 && o.RotateInterval < time.Minute) {
		bad("outputs.rotate_interval", o.RotateInterval, "must be 0 (off) or at least 1m")
	}
	if o.RotateSize < 0 || (o.RotateSize > 0 && o.RotateSize < 64<<10) {
		bad("outputs.rotate_size", o.RotateSize, "must be 0 (off) or at least 65536 bytes")
	}
	seen := map[string]string{}
	for _, p := range []struct{ key, path string }{
		{"outputs.alerts", o.Alerts}, {"outputs.fingerprints", o.Fingerprints}, {"outputs.alert_log", o.AlertLog},
		{"outputs.eve", o.EVE}, {"outputs.zeek_intel", o.ZeekIntel}, {"outputs.suricata_dataset", o.SuricataDataset},
	} {
		if p.path == "" || p.path == "-" {
			continue
		}
		clean := filepath.Clean(p.path)
		if other, dup := seen[clean]; dup {
			bad(p.key, p.path, "same file as "+other)
		}
		seen[clean] = p.key
	}
	for _, p := range []struct{ key, path string }{
		{"outputs.fingerprints", o.Fingerprints}, {"outputs.alert_log", o.AlertLog}, {"outputs.eve", o.EVE},
		{"outputs.zeek_intel", o.ZeekIntel}, {"outputs.suricata_dataset", o.SuricataDataset},
	} {
		if p.path == "-" {
			bad(p.key, p.path, `standard output is only for outputs.alerts`)
		}
	}
	return errs
}
