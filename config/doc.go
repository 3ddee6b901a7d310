// Package config is stackprint's configuration: the types that mirror
// configs/stackprint.yaml, loading (the embedded default, the file, its
// conf.d drop-ins, ${VAR} expansion) and validation. Every problem is
// reported in one pass with the file:line and the field path that set it
// (inputs[2].format), so an operator fixes a config in one edit.
//
// It is its own package because the daemon, `config check` and every CLI
// command that finds the DB load it the same way: what check accepts is
// what run accepts. It validates against the packages that consume the
// values (probe, rules, output), so it sits above them and below the
// daemon.
package config
