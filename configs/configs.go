// Package configs ships the documented default configuration, embedded in
// the binary so `stackprint run` works without a file.
package configs

import _ "embed"

// DefaultYAML is configs/stackprint.yaml, byte for byte.
//
//go:embed stackprint.yaml
var DefaultYAML []byte
