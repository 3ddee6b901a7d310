#!/usr/bin/env bash
# Memory with a long backlog: the daemon at its default limits follows a
# generated Zeek conn.log naming 1,000,000 distinct servers (bench/gen:
# public addresses in 11.0.0.0/8, so in scope and waiting for a probe).
# Everything runs inside an empty network namespace (unshare -n): the
# probes it starts fail at once and nothing leaves the machine. Prints, once
# every line is read, the events waiting in memory and on disk, the peak
# RSS (VmHWM), the heap in use and the DB file size.
#
#   bench/backlog.sh                 1,430,000 lines (1,000,000 TLS servers)
#   LINES=300000 SERVERS=200000 bench/backlog.sh
#   GOMEMLIMIT=256MiB bench/backlog.sh   as the systemd unit sets it
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-1430000}
SERVERS=${SERVERS:-1000000}
work=$(mktemp -d /tmp/stackprint-backlog.XXXXXX)
trap 'rm -rf "$work"' EXIT
go build -o "$work/stackprint" ./cmd/stackprint
go run ./bench/gen -lines "$LINES" -servers "$SERVERS" -out "$work" >/dev/null
cat >"$work/stackprint.yaml" <<YAML
db: {path: $work/state.db}
inputs: [{name: conn, path: $work/conn.log, format: zeek}]
outputs: {alerts: $work/alerts.ndjson, fingerprints: $work/stackprint.log}
metrics: {listen: "127.0.0.1:19464"}
log: {level: warn}
YAML
tls=$(grep -c $'\tssl\t' "$work/conn.log" || true)
unshare -n -- env WORK="$work" TLS="$tls" bash -c '
	set -euo pipefail
	ip link set lo up
	"$WORK/stackprint" run -c "$WORK/stackprint.yaml" 2>"$WORK/stderr" &
	pid=$!
	t0=$(date +%s.%N)
	m() { curl -s 127.0.0.1:19464/metrics | awk -v k="$1" "index(\$0, k\" \")==1 {printf \"%d\n\", \$2}"; }
	for _ in $(seq 1 1200); do
		sleep 0.5
		n=$(m "stackprint_lines_read_total{input=\"conn\"}" || true)
		[[ -n "$n" ]] && (( n >= $(wc -l <"$WORK/conn.log") - 10 )) && break
	done
	t1=$(date +%s.%N)
	sleep 2
	mem=$(m "stackprint_events_waiting{where=\"memory\"}"); disk=$(m "stackprint_events_waiting{where=\"disk\"}")
	heap=$(m go_memstats_heap_inuse_bytes)
	hwm=$(awk "/VmHWM/ {print \$2}" /proc/$pid/status)
	anon=$(awk "/RssAnon/ {print \$2}" /proc/$pid/status); file=$(awk "/RssFile/ {print \$2}" /proc/$pid/status)
	kill -TERM $pid; wait $pid || true
	printf "lines read in %.1fs; TLS events %s; waiting: %s in memory, %s on disk; peak RSS %d MiB (now: anonymous %d MiB, file-backed %d MiB, the DB map); heap in use %d MiB; DB file %d MiB (load %s)\n" \
		"$(awk -v a="$t0" -v b="$t1" "BEGIN{print b-a}")" "$TLS" "$mem" "$disk" $((hwm/1024)) $((anon/1024)) $((file/1024)) $((heap/1048576)) $(( $(stat -c %s "$WORK/state.db") / 1048576 )) "$(cut -d" " -f1 /proc/loadavg)"
'
