#!/usr/bin/env bash
# Attack shapes against the scheduler, each run for real: the daemon's
# scheduler (enrich) with a scripted prober for the timing shapes, and the
# built daemon against loopback TLS servers and tarpits for the load run.
# Prints per shape what the tests measure: time to the verdicts, probes
# and connections counted, events judged or parked, peak RSS.
#   SNI fan-out to a listed C2     → every name alerted at once, one server probe
#   busy IP (300 SNIs) + 40 others → time for the others, name probes of the busy IP
#   flooding client + one C2 host  → probe position of the other client's server
#   8 tarpits ahead of a good one  → start delay of the good server
#   200,000 lines, 20,000 targets  → judged + parked = lines, connections/s, RSS
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 -v -run 'TestEveryNameOfAListedServer|TestABusyIP|TestAFloodingClient|TestFullMemorySpills|TestTarpitsHold' ./enrich |
	grep -E '^(--- |\s+scheduler_test)' || true
go test -count=1 -run '^TestLoadLimitsHold$' -v ./cmd/stackprint | grep -E 'fed [0-9]+ lines|--- (PASS|FAIL)'
