// Package daemon is the running stackprint: New builds every stage from
// the config (tailers → enrich → probe → db → rules → observe → output),
// Run follows the inputs until its context ends, Reload applies a new
// config on SIGHUP, Ready answers /readyz and the systemd watchdog, and
// the Prometheus metrics are read from the stages at scrape time.
//
// It is the composition root of the pipeline, kept out of package main so
// the CLI is flags, printing and calls, and so `run`, `demo` and the tests
// build exactly the same daemon. The lifecycle is a set of errgroups, one
// per shutdown tier (inputs, pipeline, ledger, housekeeping), each stopped
// only after the tier feeding it has returned.
package daemon
