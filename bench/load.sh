#!/usr/bin/env bash
# Load and abuse run: 200,000 ssl.log lines naming 20,000 distinct loopback
# targets (2 % tarpits) at 50,000 lines/s against the built daemon. Prints
# throughput, probe-rate and per-IP figures counted at the servers, queue
# bound, accounting and the daemon's peak RSS (the test also asserts them).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 -run '^TestLoadLimitsHold$' -v ./cmd/stackprint | grep -E 'fed [0-9]+ lines|PASS|FAIL|ok'
