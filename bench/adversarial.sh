#!/usr/bin/env bash
# Attack shapes against the scheduler. The built daemon at its default
# limits against loopback TLS servers, tarpits and closed ports, counted at
# the servers (cmd/stackprint/adversarial_test.go):
#   a listed C2 under 10 names in 1s      → alerts, verdict p50/p99, connections at the C2
#   2,000 names on one IP + 1,000 servers → first other probe, others' share of the budget,
#                                           the busy IP's connections/s
#   24 tarpits ahead of 20 good servers   → time of the good ones against them alone
#   50,000 decoys, then a C2 from another → C2 alert latency, waiting in memory/on disk,
#   host; SIGKILL; restart                  drain rate at default limits, all judged after
#   200,000 lines, 20,000 targets         → judged + parked = lines, connections/s, RSS
# then the scheduler alone (enrich) with a scripted prober.
#
#   bench/adversarial.sh
#   STACKPRINT_ADV_BIN=/path/to/other/stackprint bench/adversarial.sh   figures of another build
#       (the shapes only print for it; the load run and enrich use this tree)
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 -timeout 30m -v -run '^TestAdversarial' ./cmd/stackprint | grep -E 'shape |after the restart|--- (PASS|FAIL)'
[[ -n "${STACKPRINT_ADV_BIN:-}" ]] && exit 0
go test -count=1 -v -run 'TestEveryNameOfAListedServer|TestABusyIP|TestAFloodingClient|TestFullMemorySpills|TestTarpitsHold' ./enrich |
	grep -E '^(--- |\s+scheduler_test)' || true
go test -count=1 -run '^TestLoadLimitsHold$' -v ./cmd/stackprint | grep -E 'fed [0-9]+ lines|--- (PASS|FAIL)'
