// Package rules ships stackprint's default detection rules, embedded in the
// binary so the daemon alerts without any rule file on disk. The YAML files
// here are the reference for writing rules; `stackprint rules check FILE`
// validates a copy.
package rules

import "embed"

// FS holds the default rule files (*.yaml), loaded in name order.
//
//go:embed *.yaml
var FS embed.FS
