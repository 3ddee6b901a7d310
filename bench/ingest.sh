#!/usr/bin/env bash
# Ingest benchmark: generates the same connections as a Zeek
# conn.log (TSV), a Zeek conn.log in JSON and a Suricata eve.json
# (bench/gen, deterministic), then times `stackprint scan --no-probe` on
# each on one core (GOMAXPROCS=1) and prints lines/s (wall clock, and per
# CPU second), the ratio against `wc -l` on the same file in the same run,
# and the peak RSS.
#
# Two workloads of 2,000,000 connections (7 in 10 TLS) each:
#   servers=20000     TLS servers recur, as on a real sensor: the speed figures
#   servers=1000000   one million distinct servers: every TLS line is a dedup
#                     miss and an eviction (the index is bounded by
#                     dedup.capacity, 100,000 by default): the miss path
#                     against the hit path above
#
#   bench/ingest.sh
#   LINES=200000 SERVERS="1000 100000" bench/ingest.sh
#   BENCH_DIR=/var/tmp/bench bench/ingest.sh   keep (and reuse) the files
#   CAPACITY=1000000 bench/ingest.sh           dedup LRU capacity (default: config)
#   STACKPRINT=/usr/local/bin/stackprint bench/ingest.sh   an existing binary
#   BASELINE=/tmp/stackprint.old bench/ingest.sh   also time another binary,
#                                              run for run beside this one (before/after
#                                              under the same load): rows "FORMAT@base"
#
# Timings are printed, never asserted: they depend on the machine and on
# what else runs on it (the load average is printed with the figures).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-2000000}
SERVERS=${SERVERS:-20000 1000000}
RUNS=${RUNS:-3}
work=${BENCH_DIR:-$(mktemp -d /tmp/stackprint-bench.XXXXXX)}
mkdir -p "$work"
if [[ -z "${BENCH_DIR:-}" ]]; then
	trap 'rm -rf "$work"' EXIT
fi

bin=${STACKPRINT:-}
if [[ -z $bin ]]; then
	bin=$work/stackprint
	go build -o "$bin" ./cmd/stackprint
fi
help=$("$bin" scan -h 2>&1 || true)
if ! grep -q -- '-no-probe' <<<"$help"; then
	echo "ingest: this stackprint binary has no scan command (cmd/stackprint/main.go must dispatch \"scan\" to cmdScan)" >&2
	exit 1
fi

cap_flag=()
if [[ -n "${CAPACITY:-}" ]]; then
	cap_flag=(--capacity "$CAPACITY")
fi

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }

# measure NAME BINARY PATH: best of RUNS runs of BINARY on PATH, one row.
measure() {
	local name=$1 b=$2 path=$3 best_wc= best= summary= r t0 t1 wc_s out s
	for ((r = 0; r < RUNS; r++)); do
		t0=$(now)
		wc -l "$path" >/dev/null
		t1=$(now)
		wc_s=$(calc "$t1 - $t0")
		if [[ -z $best_wc ]] || (($(calc "($wc_s < $best_wc)"))); then best_wc=$wc_s; fi
		out=$(GOMAXPROCS=1 "$b" scan --no-probe "${cap_flag[@]}" "$path")
		s=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$out")
		if [[ -z $best ]] || (($(calc "($s < $best)"))); then best=$s; summary=$out; fi
	done
	local lines rss distinct cpu cpu_lps lps wc_lps ratio
	lines=$(sed -n 's/.* lines=\([0-9]*\).*/\1/p' <<<"$summary")
	rss=$(sed -n 's/.* max_rss_mb=\([0-9.]*\).*/\1/p' <<<"$summary")
	distinct=$(sed -n 's/.* distinct_targets=\([0-9]*\).*/\1/p' <<<"$summary")
	cpu=$(sed -n 's/.* cpu_seconds=\([0-9.]*\).*/\1/p' <<<"$summary")
	cpu_lps=$(calc "$lines / $cpu")
	lps=$(calc "$lines / $best")
	wc_lps=$(calc "$lines / $best_wc")
	ratio=$(calc "$best / $best_wc")
	printf '%-15s %10d %9.3f %12.0f %12.0f %12.0f %8.1fx %8.1f %9d\n' "$name" "$lines" "$best" "$lps" "$cpu_lps" "$wc_lps" "$ratio" "$rss" "$distinct"
	echo "  $summary"
}

for servers in $SERVERS; do
dir=$work/$LINES-$servers
if [[ ! -s $dir/eve.json ]]; then
	mkdir -p "$dir"
	echo "ingest: generating $LINES connections to $servers distinct TLS servers in $dir"
	go run ./bench/gen -lines "$LINES" -servers "$servers" -out "$dir"
fi
echo
echo "ingest: $LINES connections, $servers TLS servers; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"
printf '%-15s %10s %9s %12s %12s %12s %9s %8s %9s\n' format lines seconds lines/s lines/cpu_s wc_lines/s ratio rss_MB distinct
for spec in "zeek-tsv conn.log" "zeek-json conn.json" "eve eve.json"; do
	read -r name file <<<"$spec"
	path=$dir/$file
	cat "$path" >/dev/null # page cache warm for both
	if [[ -n "${BASELINE:-}" ]]; then
		measure "$name@base" "$BASELINE" "$path"
	fi
	measure "$name" "$bin" "$path"
done
done
echo
echo "ingest: best of $RUNS runs each; ratio = scan seconds / wc -l seconds on the same file"
echo "ingest: targets on one core, recurring servers: zeek-tsv >= 1,700,000 lines/s, zeek-json >= 800,000, eve >= 900,000;"
echo "ingest:   1,000,000 distinct servers: zeek-tsv >= 1,500,000, zeek-json >= 700,000, eve >= 800,000; RSS < 100 MB"
