#!/usr/bin/env bash
# No container engine (or hadolint, which is not a Go module) runs in CI, so
# this checks packaging/Dockerfile the way it can: the structure (multi-stage,
# pinned bases, non-root numeric USER, volumes, exec-form ENTRYPOINT), and
# the build stage's exact `go build` line, run here, gives a static binary
# that starts with the config file the image ships.
set -euo pipefail
cd "$(dirname "$0")/.."
df=packaging/Dockerfile
fail() { echo "check-docker: $*" >&2; exit 1; }

froms=$(grep -c '^FROM ' "$df")
((froms >= 2)) || fail "not multi-stage ($froms FROM lines)"
grep '^FROM ' "$df" | while read -r _ image _; do
	[[ "$image" == *:* && "$image" != *:latest ]] || fail "base image $image is not pinned to a tag"
done
grep -qE '^USER [1-9][0-9]*:[1-9][0-9]*$' "$df" || fail "no numeric non-root USER"
grep -q '^VOLUME \["/var/lib/stackprint", "/var/log/stackprint"\]$' "$df" || fail "state and log volumes missing"
grep -q '^ENTRYPOINT \["/usr/bin/stackprint"\]$' "$df" || fail "ENTRYPOINT is not the exec form of /usr/bin/stackprint"
for src in $(grep -E '^COPY [^-]' "$df" | awk '{for (i = 2; i < NF; i++) print $i}'); do
	[[ -e "$src" ]] || fail "COPY source $src does not exist"
done

build=$(grep -E '^RUN CGO_ENABLED=0 go build ' "$df" | sed 's/^RUN //')
[[ -n "$build" ]] || fail "no 'RUN CGO_ENABLED=0 go build' line"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "check-docker: $build  (output in $out)"
eval "${build/\/out\/stackprint/$out/stackprint}"
if readelf -l "$out/stackprint" | grep -q INTERP; then
	fail "the binary is dynamically linked"
fi
"$out/stackprint" version
"$out/stackprint" config check -c configs/stackprint.yaml
echo "check-docker: ok (static binary, $(stat -c %s "$out/stackprint") bytes)"
