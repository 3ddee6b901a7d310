#!/usr/bin/env bash
# Daemon memory: the built daemon, fed generated logs, at its default limits
# except where said. Everything runs inside an empty network namespace
# (unshare -n): nothing leaves the machine.
#
#   1. Dedup cache, no probing: a Zeek conn.log (bench/gen) naming 100,000
#      and then 1,000,000 distinct TLS servers in 11.0.0.0/8, all out of
#      scope (scope.deny), dedup.capacity = the number of servers, so every
#      server ends in the cache. Printed once every line is read.
#   2. Probing: N (4,000) Go TLS servers on loopback (the probe package's
#      bench servers, at most 8,000 per process on 127.3.0.1 on: a second
#      process takes the same IPs with other ports), named by an ssl.log
#      appended STEP (500) new targets at a time, each batch written once
#      the last one is probed, so the events waiting at once stay the same
#      whatever N is. At the checkpoints CHECK (1000 2000 4000 8000 16000,
#      up to N, and N) the figures. The limits that bound what probing
#      keeps are those of LIMITS (a YAML fragment, default: the daemon's
#      defaults with observations_max 1000, dedup.capacity 2000 and
#      hot_results 1000, so that 4,000 targets are past all of them),
#      printed with the figures.
#
# Each line prints the peak RSS (VmHWM) and the RSS now, split into
# anonymous memory (of it, the Go heap's spans not returned to the OS; the
# rest is stacks, GC metadata and the dedup index) and file-backed pages (the binary's and the
# bbolt map of the DB), the Go heap in use, the DB and dedup result file
# sizes (the result file is read with pread, never mapped) and the dedup
# cache's size (servers and names). With PROFILE_DIR set, a heap profile
# of each line is saved there (/debug/pprof/heap; `go tool pprof -top FILE`)
# with the metrics and smaps_rollup.
#
#   bench/memory.sh
#   SERVERS="100000" N=400 bench/memory.sh
#   PART=probe N=16000 bench/memory.sh            probing only, 16,000 targets
#   LIMITS="db: {observations_max: 1000000}" PART=probe bench/memory.sh
#   KINDS=jarm,cert,http,atsf bench/memory.sh    probing with every kind (default jarm)
#   STACKPRINT=/path/to/stackprint bench/memory.sh   figures of another build
#   PART=cache|probe bench/memory.sh             one part only
set -euo pipefail
cd "$(dirname "$0")/.."
SERVERS=${SERVERS:-100000 1000000}
N=${N:-4000}
KINDS=${KINDS:-jarm}
STEP=${STEP:-500}
CHECK=${CHECK:-1000 2000 4000 8000 16000}
LIMITS=${LIMITS:-"{db: {observations_max: 1000}, dedup: {capacity: 2000, hot_results: 1000}}"}
PART=${PART:-all}
work=$(mktemp -d /tmp/stackprint-memory.XXXXXX)
trap 'rm -rf "$work"' EXIT
bin=${STACKPRINT:-$work/stackprint}
[[ -n ${STACKPRINT:-} ]] || go build -o "$bin" ./cmd/stackprint
if [[ -n ${PROFILE_DIR:-} ]]; then
	mkdir -p "$PROFILE_DIR"
	# One heap sample per 4 KiB allocated instead of 512 KiB: a heap of a
	# few MiB is then profiled to the allocation site.
	export GODEBUG=${GODEBUG:+$GODEBUG,}memprofilerate=4096
fi
echo "memory: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"

# The measuring side, run inside the namespace: wait for a condition on the
# metrics, then print one line of figures.
cat >"$work/lib.sh" <<'LIB'
m() { # metric value (sum over label sets when the name has no labels given)
	curl -s "127.0.0.1:$PORT/metrics" | awk -v k="$1" '
		index($0, k" ")==1 || index($0, k"{")==1 { s += $NF; n++ } END { if (n) printf "%d\n", s }'
}
figures() { # label pid db
	local hwm anon file dbmap heap gosys dbsz rsz
	hwm=$(awk '/VmHWM/ {print $2}' /proc/$2/status)
	anon=$(awk '/RssAnon/ {print $2}' /proc/$2/status)
	file=$(awk '/RssFile/ {print $2}' /proc/$2/status)
	# The bbolt map: the resident pages of the mappings of the DB file (and
	# of the dedup result file beside it, in builds that mapped it).
	dbmap=$(awk -v f="$(readlink -f "$3")" '/^[0-9a-f]+-[0-9a-f]+ / { on = ($NF == f || $NF == f ".results") } on && /^Rss:/ { s += $2 } END { print s + 0 }' /proc/$2/smaps)
	heap=$(m go_memstats_heap_inuse_bytes)
	# The Go heap's spans not returned to the OS (in use, or idle and kept
	# for the next allocations).
	gosys=$(($(m go_memstats_heap_sys_bytes) - $(m go_memstats_heap_released_bytes)))
	dbsz=$(stat -c %s "$3")
	rsz=$(stat -c %s "$3.results" 2>/dev/null || echo 0)
	printf '%-30s peak RSS %6.1f MiB  now: anon %6.1f (Go heap %5.1f), file %5.1f (DB maps %5.1f) MiB  heap in use %5.1f MiB  DB file %6.1f MiB (+ results %5.1f)  cache %s\n' \
		"$1" "$(mib "$hwm")" "$(mib "$anon")" "$(mib $((gosys / 1024)))" "$(mib "$file")" "$(mib "$dbmap")" "$(mib $((heap / 1024)))" "$(mib $((dbsz / 1024)))" "$(mib $((rsz / 1024)))" "$(m stackprint_dedup_cache_size)"
	if [[ -n ${PROFILE_DIR:-} ]]; then
		local base
		base=$PROFILE_DIR/$(tr -c 'a-zA-Z0-9\n' _ <<<"$1" | tr -s _ | head -c 40)
		curl -s "127.0.0.1:$PORT/debug/pprof/heap" >"$base.heap.pb.gz"
		curl -s "127.0.0.1:$PORT/metrics" >"$base.metrics"
		cp "/proc/$2/smaps_rollup" "$base.smaps_rollup"
	fi
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
wait_metric() { # name minimum timeout_s
	local v
	for _ in $(seq 1 $((2 * $3))); do
		if [[ -n ${DAEMON_PID:-} ]] && ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "memory: the daemon exited:" >&2
			tail -5 "$DAEMON_ERR" >&2
			return 1
		fi
		v=$(m "$1" || true)
		[[ -n $v ]] && ((v >= $2)) && return 0
		sleep 0.5
	done
	echo "memory: timed out waiting for $1 >= $2 (at ${v:-none})" >&2
	return 1
}
LIB

if [[ $PART == all || $PART == cache ]]; then
	for servers in $SERVERS; do
		dir=$work/cache-$servers
		mkdir -p "$dir"
		lines=$((servers * 10 / 7 + 1000))
		go run ./bench/gen -lines "$lines" -servers "$servers" -out "$dir" >/dev/null
		rm -f "$dir/conn.json" "$dir/eve.json"
		cat >"$dir/stackprint.yaml" <<YAML
db: {path: $dir/state.db}
inputs: [{name: conn, path: $dir/conn.log, format: zeek}]
outputs: {alerts: $dir/alerts.ndjson, fingerprints: $dir/stackprint.log}
metrics: {listen: "127.0.0.1:19465", pprof: true}
scope: {deny: [11.0.0.0/8]}
dedup: {capacity: $((servers > 100000 ? servers : 100000))}
log: {level: warn}
YAML
		unshare -n -- env BIN="$bin" DIR="$dir" PORT=19465 LIB="$work/lib.sh" PROFILE_DIR="${PROFILE_DIR:-}" SERVERS="$servers" bash -c '
			set -euo pipefail
			ip link set lo up
			. "$LIB"
			"$BIN" run -c "$DIR/stackprint.yaml" 2>"$DIR/stderr" &
			pid=$! DAEMON_PID=$! DAEMON_ERR=$DIR/stderr
			wait_metric "stackprint_lines_read_total{input=\"conn\"}" "$(wc -l <"$DIR/conn.log")" 1200
			sleep 2
			figures "$SERVERS servers out of scope" $pid "$DIR/state.db"
			kill -TERM $pid; wait $pid || true
		'
		rm -rf "$dir"
	done
fi

if [[ $PART == all || $PART == probe ]]; then
	dir=$work/probe
	mkdir -p "$dir"
	go test -c -o "$dir/probe.test" ./probe
	cat >"$dir/stackprint.yaml" <<YAML
db: {path: $dir/state.db}
inputs: [{name: ssl, path: $dir/ssl.log, format: zeek}]
outputs: {alerts: $dir/alerts.ndjson, fingerprints: $dir/stackprint.log}
metrics: {listen: "127.0.0.1:19466", pprof: true}
scope: {allow: [127.0.0.0/8]}
scheduler: {probes_per_second: 1000, burst: 100, max_in_flight: 64}
probe: {kinds: [${KINDS//,/, }], conns_per_ip_per_second: 1000, conns_per_ip_burst: 100, deadline: 15s}
log: {level: warn}
YAML
	mkdir -p "$dir/conf.d"
	printf '%s\n' "$LIMITS" >"$dir/conf.d/limits.yaml"
	echo "memory: probing with the limits $LIMITS, $STEP new targets at a time"
	checks=""
	for c in $CHECK; do ((c < N)) && checks+="$c "; done
	checks+=$N
	unshare -n -- env DIR="$dir" BIN="$bin" PORT=19466 LIB="$work/lib.sh" PROFILE_DIR="${PROFILE_DIR:-}" N="$N" KINDS="$KINDS" STEP="$STEP" CHECKS="$checks" bash -c '
		set -euo pipefail
		ip link set lo up
		. "$LIB"
		ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
		mkfifo "$DIR/stdin"
		# Up to 8,000 servers per process; the processes share the IPs
		# (127.3.0.1 on), each listening on ports of its own.
		procs=$(((N + 7999) / 8000))
		targets=()
		exec 3<>"$DIR/stdin"
		for ((k = 0; k < procs; k++)); do
			n=$(((N - k * 8000) < 8000 ? N - k * 8000 : 8000))
			STACKPRINT_PROBE_TEST_HELPER=benchservers STACKPRINT_PROBE_TEST_HELPER_N=$n \
				"$DIR/probe.test" <"$DIR/stdin" >"$DIR/servers.$k" 2>"$DIR/servers.$k.err" 3>&- &
			for _ in $(seq 600); do grep -q "^LISTEN " "$DIR/servers.$k" 2>/dev/null && break; sleep 0.1; done
			read -r -a more <<<"$(sed -n "s/^LISTEN //p" "$DIR/servers.$k")"
			if ((${#more[@]} != n)); then echo "memory: servers did not start" >&2; cat "$DIR/servers.$k.err" >&2; exit 1; fi
			targets+=("${more[@]}")
		done
		printf "#separator \\\\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tssl\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tserver_name\testablished\n#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tbool\n" >"$DIR/ssl.log"
		"$BIN" run -c "$DIR/stackprint.yaml" 2>"$DIR/stderr" &
		pid=$! DAEMON_PID=$! DAEMON_ERR=$DIR/stderr
		sleep 1
		done_=0
		start=$(date +%s)
		for check in $CHECKS; do
			while ((done_ < check)); do
				step=$((done_ + STEP < check ? done_ + STEP : check))
				for ((i = done_; i < step; i++)); do
					hp=${targets[i]}
					printf "1764230400.%06d\tC%08d\t10.1.%d.%d\t%d\t%s\t%s\t-\tT\n" $i $i $((i / 250 % 250)) $((i % 250 + 1)) $((40000 + i % 20000)) "${hp%:*}" "${hp##*:}"
				done >>"$DIR/ssl.log"
				done_=$step
				wait_metric stackprint_probes_total "$step" 900
			done
			sleep 1
			figures "$check targets probed ($KINDS)" $pid "$DIR/state.db"
		done
		echo "memory: $N targets probed in $(($(date +%s) - start)) s; the daemon used $(awk "{printf \"%.1f\", (\$14 + \$15) / $(getconf CLK_TCK)}" /proc/$pid/stat) CPU s"
		kill -TERM $pid; wait $pid || true
		exec 3>&-
		wait 2>/dev/null || true
	'
fi
