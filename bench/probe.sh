#!/usr/bin/env bash
# Probe benchmark: starts N Go TLS servers, each on its own
# loopback IP (127.0.3.1 on; ECDSA P-256, ALPN h2,http/1.1, answering
# HEAD) in one server process, then fingerprints every one of them once at
# concurrency C from a separate client process, first with JARM alone (the
# baseline), then with every kind (jarm, cert, http, atsf). For each run it
# prints targets/s, client CPU ms per target (user+sys of the client
# process, getrusage), the client's peak RSS and the servers' CPU ms per
# target (user+sys of the server process over the run, from /proc: client
# and servers share the cores), plus the ratios of the full set against
# JARM alone measured in the same run.
#
#   bench/probe.sh            N=200 servers, C=8
#   bench/probe.sh 500 16
#   RUNS=3 bench/probe.sh     best of 3 per configuration
#
# The per-IP connection rate limit is off in the client (the figure is the
# prober's cost, not the politeness policy; with the default 20 conn/s per
# IP a full probe of one server takes at least ~50 ms). Client and servers
# share the machine, so the servers' CPU competes with the client's:
# figures are printed, never asserted. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-200}
C=${2:-8}
RUNS=${RUNS:-1}
work=$(mktemp -d /tmp/stackprint-probebench.XXXXXX)
srv=
cleanup() {
	exec 3>&- 2>/dev/null || true
	if [[ -n $srv ]]; then
		kill "$srv" 2>/dev/null || true
		wait "$srv" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

bin=$work/probe.test
go test -c -o "$bin" ./probe

# The servers run until their stdin (a FIFO held open on fd 3) closes.
mkfifo "$work/stdin"
STACKPRINT_PROBE_TEST_HELPER=benchservers STACKPRINT_PROBE_TEST_HELPER_N=$N \
	"$bin" <"$work/stdin" >"$work/servers" 2>"$work/servers.err" &
srv=$!
exec 3>"$work/stdin"
for _ in $(seq 100); do
	grep -q '^LISTEN ' "$work/servers" 2>/dev/null && break
	sleep 0.1
done
targets=$(sed -n 's/^LISTEN //p' "$work/servers")
if [[ -z $targets ]]; then
	echo "probe bench: servers did not start:" >&2
	cat "$work/servers.err" >&2
	exit 1
fi

echo "probe bench: $N servers, concurrency $C, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"
printf '%-22s %7s %5s %9s %12s %12s %8s %-12s %s\n' kinds targets conc targets/s cpu_ms/target peak_rss_MiB conns/t statuses server_cpu_ms/target
# srvcpu: user+system CPU of the server process so far, in clock ticks.
srvcpu() { sed 's/.*) //' "/proc/$srv/stat" | awk '{ print $12 + $13 }'; }
ticks=$(getconf CLK_TCK)
run() { # kinds → best line of RUNS (highest targets/s), with the servers' CPU per target
	local best= line s0 s1
	for _ in $(seq "$RUNS"); do
		s0=$(srvcpu)
		line=$(STACKPRINT_PROBE_TEST_HELPER=benchclient STACKPRINT_PROBE_TEST_HELPER_KINDS=$1 \
			STACKPRINT_PROBE_TEST_HELPER_C=$C STACKPRINT_PROBE_TEST_HELPER_TARGETS="$targets" "$bin")
		s1=$(srvcpu)
		line=$(awk -v l="$line" -v d=$((s1 - s0)) -v t="$ticks" -v n="$N" 'BEGIN { printf "%s %.2f", l, d * 1000 / t / n }')
		if [[ -z $best ]] || awk -v a="$(awk '{print $4}' <<<"$line")" -v b="$(awk '{print $4}' <<<"$best")" 'BEGIN { exit !(a > b) }'; then
			best=$line
		fi
	done
	echo "$best"
}
jarm=$(run jarm)
echo "$jarm"
full=$(run jarm,cert,http,atsf)
echo "$full"
atsf=$(run atsf)
echo "$atsf"
awk -v j="$jarm" -v f="$full" 'BEGIN {
	split(j, a, " +"); split(f, b, " +")
	printf "full set vs JARM alone: %.2fx the CPU per target, %.2fx the time per target, %.2fx the peak RSS\n", b[5] / a[5], a[4] / b[4], b[6] / a[6]
}'
# What the cores allow at most with nothing else running: client and
# servers together need cpu_ms/target + server_cpu_ms/target.
for l in "$jarm" "$full" "$atsf"; do
	awk -v n="$(nproc)" '{ c = $5; s = $NF; if (c + s > 0) printf "CPU ceiling of %s: %.0f targets/s on %d idle CPUs (client %.2f + server %.2f ms per target)\n", $1, n * 1000 / (c + s), n, c, s }' <<<"$l"
done
