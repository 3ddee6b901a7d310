#!/usr/bin/env bash
# Alert latency of a cached malicious server: from appending its ssl.log line
# to its alert being in alerts.ndjson (built daemon, loopback TLS server).
# Prints p50/p90/p99/max over 300 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 -run '^$' -bench '^BenchmarkAlertLatency$' -benchtime 1x ./cmd/stackprint | grep -E 'alerts:|ms'
