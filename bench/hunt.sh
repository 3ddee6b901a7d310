#!/usr/bin/env bash
# Hunt benchmark (issue 15 item 3): `stackprint hunt` against peers on the
# same targets in the same run. bench/huntlab serves N TLS targets on
# loopback addresses (six Go crypto/tls configurations repeated, plus a few
# openssl s_server variants when openssl is installed) and N/10 tarpits
# (accept, never answer), one target per address; then every client
# fingerprints the whole list once:
#
#   stackprint hunt --kinds jarm     JARM alone (the baseline of the ratios)
#   tlsx -jarm                       projectdiscovery tlsx, built at $TLSX_VERSION
#   jarm.py                          when JARM_PY names a copy (it is on no registry),
#                                    as C processes over C shards of the list
#   stackprint hunt                  the full fingerprint: jarm, cert, http, atsf
#   reference ATSF scanner           not installable (not served by the Go module proxy): skipped
#
# and prints one table: targets/s (wall) and client CPU per target
# (user+sys of the client process and its children, getrusage), with the
# ratios against stackprint's JARM run, the lab servers' CPU per target
# during each client's run (from /proc), the JARM agreement between
# stackprint and tlsx, what the tarpits cost, and the ATSF client CPU of
# the cut handshake against the full-handshake baseline
# (BenchmarkATSFProbe, same run).
#
#   bench/hunt.sh                N=4000 targets + 400 tarpits, concurrency 64, 2 s I/O timeout
#   C=128 TIMEOUT=3 bench/hunt.sh 2000
#   JARM_PY=/path/to/jarm.py bench/hunt.sh
#   TLSX_BIN=/path/to/tlsx bench/hunt.sh      # skip building tlsx
#
# Every client runs with the same concurrency and I/O timeout; stackprint
# keeps its per-IP politeness (20 connections/s per address, which one
# target per address never reaches) and runs without a global rate limit.
# tlsx retries a failed target once (-retry 1). Servers and clients share
# the machine: figures are printed, never asserted, and only ratios within
# one run are comparable. Everything but the builds runs in an empty
# network namespace of its own (unshare -n, root): nothing can leave the
# machine, and the loopback addresses are the namespace's.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-4000}
TARPITS=${TARPITS:-$((N / 10))}
C=${C:-64}
TIMEOUT=${TIMEOUT:-2}
PORT=${PORT:-8443}
TLSX_VERSION=${TLSX_VERSION:-v1.1.9}

if [[ ${HUNT_BENCH_PHASE:-} != run ]]; then
	work=$(mktemp -d /tmp/stackprint-huntbench.XXXXXX)
	trap 'rm -rf "$work"' EXIT
	echo "hunt bench: building stackprint, huntlab, the probe benchmark and tlsx $TLSX_VERSION" >&2
	go build -o "$work/stackprint" ./cmd/stackprint
	go build -o "$work/huntlab" ./bench/huntlab
	go test -c -o "$work/probe.test" ./probe
	tlsx=${TLSX_BIN:-}
	if [[ -z $tlsx ]]; then
		cache=${XDG_CACHE_HOME:-$HOME/.cache}/stackprint-bench
		tlsx=$cache/tlsx-$TLSX_VERSION
		if [[ ! -x $tlsx ]]; then
			# `go install …@version` fails while the proxy refuses tlsx's
			# version list (its deprecation check); a throwaway module with
			# the pinned version builds the same command.
			mod=$(mktemp -d /tmp/stackprint-tlsx.XXXXXX)
			printf 'module tlsxbuild\n\ngo 1.26\n' >"$mod/go.mod"
			printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/projectdiscovery/tlsx/cmd/tlsx"\n' >"$mod/tools.go"
			mkdir -p "$cache"
			if (cd "$mod" && go get "github.com/projectdiscovery/tlsx@$TLSX_VERSION" && go mod tidy &&
				go build -o "$tlsx" github.com/projectdiscovery/tlsx/cmd/tlsx) >"$work/tlsx-build.log" 2>&1; then
				:
			else
				echo "hunt bench: tlsx $TLSX_VERSION did not build (skipped; see below)" >&2
				tail -5 "$work/tlsx-build.log" >&2
				tlsx=
			fi
			rm -rf "$mod"
		fi
	fi
	HUNT_BENCH_PHASE=run WORK=$work TLSX=$tlsx exec unshare -n -- bash "$0" "$@"
fi

# Phase 2: inside the empty network namespace.
ip link set lo up
work=$WORK
srv=
cleanup() {
	exec 3>&- 2>/dev/null || true # the lab stops its servers when its stdin closes
	if [[ -n $srv ]]; then
		for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
		kill "$srv" 2>/dev/null || true
		wait "$srv" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/stdin"
"$work/huntlab" serve -n "$N" -tarpits "$TARPITS" -port "$PORT" -targets "$work/targets.txt" \
	<"$work/stdin" >"$work/servers" 2>"$work/servers.err" &
srv=$!
exec 3>"$work/stdin"
for _ in $(seq 600); do
	grep -q '^READY' "$work/servers" 2>/dev/null && break
	if ! kill -0 "$srv" 2>/dev/null; then break; fi
	sleep 0.1
done
if ! grep -q '^READY' "$work/servers"; then
	echo "hunt bench: lab did not start:" >&2
	cat "$work/servers.err" >&2
	exit 1
fi
total=$(wc -l <"$work/targets.txt")
echo "hunt bench: $(sed -n 's/^READY //p' "$work/servers"), port $PORT, concurrency $C, I/O timeout ${TIMEOUT}s, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"

# srvcpu: user+system CPU of the lab (huntlab and its openssl s_server
# children) so far, in clock ticks: the servers share the cores with the
# client, so their CPU per target bounds what any client can reach.
srvcpu() {
	local p t=0
	for p in "$srv" $(pgrep -P "$srv" || true); do
		t=$((t + $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)))
	done
	echo "$t"
}
ticks=$(getconf CLK_TCK)

# measure NAME MODE OKCOUNTER -- CMD…: one table row.
rows=()
base_tps= base_cpu=
measure() {
	local name=$1 mode=$2 counter=$3
	shift 4
	local m s0 s1
	s0=$(srvcpu)
	m=$("$work/huntlab" measure -- "$@" 2>&1 >/dev/null | grep '^MEASURE' | tail -1)
	s1=$(srvcpu)
	read -r _ wall user sys code <<<"$m"
	local ok
	ok=$($counter)
	local tps cpu
	tps=$(awk -v n="$total" -v w="$wall" 'BEGIN { printf "%.1f", n / w }')
	cpu=$(awk -v n="$total" -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", (u + s) * 1000 / n }')
	if [[ -z $base_tps ]]; then base_tps=$tps base_cpu=$cpu; fi
	last_wall=$wall
	rows+=("$(printf '%-20s %-20s %7d %7d %8.1f %9s %13s %10s %10s %5s %14s' "$name" "$mode" "$total" "$ok" "$wall" "$tps" "$cpu" \
		"$(awk -v a="$tps" -v b="$base_tps" 'BEGIN { printf "%.2fx", a / b }')" \
		"$(awk -v a="$cpu" -v b="$base_cpu" 'BEGIN { printf "%.2fx", a / b }')" "$code" \
		"$(awk -v d=$((s1 - s0)) -v t="$ticks" -v n="$total" 'BEGIN { printf "%.2f", d * 1000 / t / n }')")")
	printf '%s\n' "${rows[-1]}" >&2
}
skipped=()

sp_jarm_ok() { grep -c '"jarm":"[0-9a-f]' "$work/sp-jarm.jsonl" || true; }
measure "stackprint hunt" "jarm" sp_jarm_ok -- "$work/stackprint" hunt --targets "$work/targets.txt" --kinds jarm \
	--allow 127.0.0.0/8 --no-match --rate 1000000 --burst 100000 --concurrency "$C" --timeout "${TIMEOUT}s" \
	--progress never --out "$work/sp-jarm.jsonl"

tlsx_ok() { grep -c '"jarm_hash":"[0-9a-f]' "$work/tlsx.jsonl" 2>/dev/null || true; }
if [[ -n ${TLSX:-} && -x ${TLSX:-} ]]; then
	measure "tlsx $TLSX_VERSION" "jarm" tlsx_ok -- "$TLSX" -l "$work/targets.txt" -jarm -json -silent -duc \
		-c "$C" -timeout "$TIMEOUT" -retry 1 -o "$work/tlsx.jsonl"
else
	skipped+=("tlsx: not built (see above)")
fi

jarmpy_ok() { awk -F, 'length($3) == 62 && $3 !~ /^0+$/' "$work/jarmpy.csv" 2>/dev/null | wc -l | tr -d ' ' || true; }
if [[ -n ${JARM_PY:-} && -f ${JARM_PY:-} ]]; then
	# jarm.py probes one target at a time (and waits 20 s on a tarpit): it
	# runs as $C processes over $C shards of the list, the same concurrency
	# as every other client; their CPU is counted with the shell's children.
	# The interpreter itself, not a version manager's shim (pyenv's costs
	# ~0.5 s of CPU per start).
	py=$(python3 -c 'import sys; print(sys.executable)')
	tr ':' ',' <"$work/targets.txt" >"$work/targets.csv"
	mkdir -p "$work/jarmpy.d"
	split -n "r/$C" -d -a 4 "$work/targets.csv" "$work/jarmpy.d/in."
	measure "jarm.py (x$C)" "jarm" jarmpy_ok -- sh -c 'for f in "$1"/in.*; do "$4" "$2" -i "$f" -o "$f.out" & done; wait; cat "$1"/in.*.out.csv >"$3"' \
		jarmpy "$work/jarmpy.d" "$JARM_PY" "$work/jarmpy.csv" "$py"
else
	skipped+=("jarm.py: JARM_PY is not set to a copy of jarm.py (it is on no package registry this project may use)")
fi

sp_full_ok() { grep -c '"atsf":"[0-9a-f]' "$work/sp-full.jsonl" || true; }
measure "stackprint hunt" "jarm,cert,http,atsf" sp_full_ok -- "$work/stackprint" hunt --targets "$work/targets.txt" \
	--allow 127.0.0.0/8 --no-match --rate 1000000 --burst 100000 --concurrency "$C" --timeout "${TIMEOUT}s" \
	--progress never --out "$work/sp-full.jsonl"
skipped+=("reference ATSF scanner (tumi8/goscanner): not served by the Go module proxy, so not installable here")

echo
printf '%-20s %-20s %7s %7s %8s %9s %13s %10s %10s %5s %14s\n' client kinds targets ok wall_s targets/s cpu_ms/target tps_ratio cpu_ratio exit srv_cpu_ms/t
printf '%s\n' "${rows[@]}"
echo "(ok: targets with a JARM, or with a complete ATSF for the full run; ratios against stackprint's JARM run;"
echo " srv_cpu_ms/t: the lab servers' CPU per target during that client's run, on the same cores)"
# What the cores allow each row at most with nothing else running: the
# client and the lab servers together need cpu_ms/target + srv_cpu_ms/t.
for r in "${rows[@]}"; do
	awk -v n="$(nproc)" '{
		name = $1; for (i = 2; i <= NF - 10; i++) name = name " " $i
		c = $(NF - 4); s = $NF
		if (c + s > 0) printf "CPU ceiling of %s (%s): %.0f targets/s on %d idle CPUs (client %.2f + servers %.2f ms per target)\n", name, $(NF - 9), n * 1000 / (c + s), n, c, s
	}' <<<"$r"
done
for s in "${skipped[@]}"; do echo "skipped: $s"; done

if ! command -v jq >/dev/null; then
	echo "(jq not installed: no JARM agreement or tarpit figures)"
fi
# JARM agreement between stackprint and tlsx on the same targets.
if [[ -s $work/tlsx.jsonl ]] && command -v jq >/dev/null; then
	jq -r 'select(.jarm_hash != null and .jarm_hash != "") | "\(.ip):\(.port) \(.jarm_hash)"' "$work/tlsx.jsonl" 2>/dev/null | sort >"$work/tlsx.pairs" || true
	jq -r 'select(.jarm != null) | "\(.ip):\(.port) \(.jarm)"' "$work/sp-jarm.jsonl" | sort >"$work/sp.pairs"
	if [[ -s $work/tlsx.pairs ]]; then
		both=$(join "$work/sp.pairs" "$work/tlsx.pairs" | wc -l)
		same=$(join "$work/sp.pairs" "$work/tlsx.pairs" | awk '$2 == $3' | wc -l)
		echo "JARM agreement stackprint vs tlsx: $same of $both targets both hashed"
	fi
fi

# JARM agreement between stackprint and jarm.py (its CSV has no port: one
# target per address, so the address is the key).
if [[ -s $work/jarmpy.csv ]] && command -v jq >/dev/null; then
	jq -r 'select(.jarm != null) | "\(.ip) \(.jarm)"' "$work/sp-jarm.jsonl" | sort >"$work/sp.ippairs"
	awk -F, 'NF == 3 && length($3) == 62 && $3 ~ /^[0-9a-f]+$/ && $3 !~ /^0+$/ { print $2, $3 }' "$work/jarmpy.csv" | sort >"$work/jarmpy.pairs"
	both=$(join "$work/sp.ippairs" "$work/jarmpy.pairs" | wc -l)
	same=$(join "$work/sp.ippairs" "$work/jarmpy.pairs" | awk '$2 == $3' | wc -l)
	echo "JARM agreement stackprint vs jarm.py: $same of $both targets both hashed"
fi

# What the tarpits cost the full run: their probe time against the
# workers' time, and the connections each took.
command -v jq >/dev/null && jq -r 'select(.ip | startswith("127.22.")) | "\(.status) \(.conns) \(.duration_ms)"' "$work/sp-full.jsonl" |
	awk -v c="$C" -v wall="$last_wall" '
		{ n++; conns += $2; ms += $3; st[$1]++ }
		END {
			if (n == 0) { print "tarpits: none"; exit }
			s = ""; for (k in st) s = s k "=" st[k] " "
			printf "tarpits (full run): %d, %s%.1f connections and %.0f ms each, %.0f%% of the workers'\'' time\n", n, s, conns / n, ms / n, 100 * ms / 1000 / (c * wall)
		}'

# ATSF client CPU: the cut handshake against the full-handshake baseline,
# same run (Go and OpenSSL servers in processes of their own).
echo
echo "ATSF client CPU per probe (BenchmarkATSFProbe, ${ATSF_BENCHTIME:=100x} each):"
"$work/probe.test" -test.run '^$' -test.bench ATSFProbe -test.benchtime "$ATSF_BENCHTIME" 2>&1 | grep '^BenchmarkATSFProbe' |
	awk '{ split($1, p, "/"); cpu[p[2] "/" p[3]] = $5; printf "  %-28s %-10s %8s cpu-ms/op %10s B/op\n", p[2], p[3], $5, $7 }
		END { for (k in cpu) if (k ~ /\/cut/) { b = k; sub(/\/cut.*/, "/baseline", b); for (j in cpu) if (index(j, b) == 1) printf "  %-28s cut/baseline %.2fx\n", substr(k, 1, index(k, "/") - 1), cpu[k] / cpu[j] } }'
