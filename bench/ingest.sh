#!/usr/bin/env bash
# Ingest benchmark (issue 4 §5): generates the same connections as a Zeek
# conn.log (TSV), a Zeek conn.log in JSON and a Suricata eve.json
# (bench/gen, deterministic), then times `stackprint scan --no-probe` on
# each on one core (GOMAXPROCS=1 and, when taskset exists, one CPU) and
# prints lines/s, the ratio against `wc -l` on the same file in the same
# run, and the peak RSS.
#
#   bench/ingest.sh                     2,000,000 lines, 1,000,000 servers
#   LINES=200000 SERVERS=100000 bench/ingest.sh
#   BENCH_DIR=/var/tmp/bench KEEP=1 bench/ingest.sh   keep the files
#   CAPACITY=1000000 bench/ingest.sh    dedup LRU capacity (default: config)
#
# Timings are printed, never asserted: they depend on the machine and on
# what else runs on it (the load average is printed with the figures).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-2000000}
SERVERS=${SERVERS:-1000000}
RUNS=${RUNS:-3}
work=${BENCH_DIR:-$(mktemp -d /tmp/stackprint-bench.XXXXXX)}
mkdir -p "$work"
if [[ -z "${KEEP:-}" && -z "${BENCH_DIR:-}" ]]; then
	trap 'rm -rf "$work"' EXIT
fi

bin=$work/stackprint
go build -o "$bin" ./cmd/stackprint
if ! "$bin" scan -h 2>&1 | grep -q -- '-no-probe'; then
	echo "ingest: this stackprint binary has no scan command (cmd/stackprint/main.go must dispatch \"scan\" to cmdScan)" >&2
	exit 1
fi

if [[ ! -s $work/eve.json || $(cat "$work/.params" 2>/dev/null) != "$LINES $SERVERS" ]]; then
	echo "ingest: generating $LINES connections, $SERVERS distinct TLS servers, in $work"
	go run ./bench/gen -lines "$LINES" -servers "$SERVERS" -out "$work"
	echo "$LINES $SERVERS" >"$work/.params"
fi

one_cpu=()
if command -v taskset >/dev/null 2>&1; then
	one_cpu=(taskset -c 0)
fi
cap_flag=()
if [[ -n "${CAPACITY:-}" ]]; then
	cap_flag=(--capacity "$CAPACITY")
fi

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }

echo "ingest: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"
printf '%-10s %10s %9s %12s %12s %9s %8s %9s\n' format lines seconds lines/s wc_lines/s ratio rss_MB distinct
for spec in "zeek-tsv conn.log" "zeek-json conn.json" "eve eve.json"; do
	read -r name file <<<"$spec"
	path=$work/$file
	cat "$path" >/dev/null # page cache warm for both
	best_wc=
	best=
	summary=
	for ((r = 0; r < RUNS; r++)); do
		t0=$(now)
		wc -l "$path" >/dev/null
		t1=$(now)
		wc_s=$(calc "$t1 - $t0")
		if [[ -z $best_wc ]] || (($(calc "($wc_s < $best_wc)"))); then best_wc=$wc_s; fi
		out=$(GOMAXPROCS=1 "${one_cpu[@]}" "$bin" scan --no-probe "${cap_flag[@]}" "$path")
		s=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$out")
		if [[ -z $best ]] || (($(calc "($s < $best)"))); then best=$s; summary=$out; fi
	done
	lines=$(sed -n 's/.* lines=\([0-9]*\).*/\1/p' <<<"$summary")
	rss=$(sed -n 's/.* max_rss_mb=\([0-9.]*\).*/\1/p' <<<"$summary")
	distinct=$(sed -n 's/.* distinct_targets=\([0-9]*\).*/\1/p' <<<"$summary")
	lps=$(calc "$lines / $best")
	wc_lps=$(calc "$lines / $best_wc")
	ratio=$(calc "$best / $best_wc")
	printf '%-10s %10d %9.3f %12.0f %12.0f %8.1fx %8.1f %9d\n' "$name" "$lines" "$best" "$lps" "$wc_lps" "$ratio" "$rss" "$distinct"
	echo "  $summary"
done
echo "ingest: best of $RUNS runs each; ratio = scan seconds / wc -l seconds on the same file"
