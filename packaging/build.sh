#!/usr/bin/env bash
# Builds the static binary and the .deb and .rpm packages into dist/.
#   packaging/build.sh            # both packages
#   packaging/build.sh deb        # only the .deb
# VERSION defaults to the nearest git tag (without the v), else 0.0.0+<commit>.
# nfpm runs with `go run` at a pinned version, so go.mod stays free of it.
set -euo pipefail
cd "$(dirname "$0")/.."
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0

formats=("$@")
((${#formats[@]})) || formats=(deb rpm)

if [[ -z "${VERSION:-}" ]]; then
	if tag=$(git describe --tags --abbrev=0 2>/dev/null); then
		VERSION=${tag#v}
	else
		VERSION="0.0.0+$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
	fi
fi
export VERSION
export ARCH=${ARCH:-$(go env GOARCH)}

mkdir -p dist
# The same build as the Dockerfile's: static, no cgo, reproducible paths.
CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags='-s -w' -o dist/stackprint ./cmd/stackprint

# The licences of every module compiled into the binary (MIT and BSD ask for
# their notices to travel with binaries; MPL-2.0 for its source location).
{
	echo "Third-party software compiled into /usr/bin/stackprint, with its licence."
	echo "Source of every module: https://pkg.go.dev/<module>@<version>"
	go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' ./cmd/stackprint |
		sort -u | while read -r path version dir; do
		[[ -n "$path" ]] || continue
		lic=$(find "$dir" -maxdepth 1 -type f \( -iname 'LICENSE*' -o -iname 'LICENCE*' -o -iname 'COPYING*' \) | sort | head -1)
		if [[ -z "$lic" ]]; then
			echo "build: no licence file in $path $version ($dir)" >&2
			exit 1
		fi
		printf '\n==== %s %s (%s) ====\n\n' "$path" "$version" "$(basename "$lic")"
		cat "$lic"
	done
} >dist/THIRD-PARTY-LICENSES

for f in "${formats[@]}"; do
	go run "$NFPM" package --config packaging/nfpm.yaml --packager "$f" --target dist/
done
ls -l dist/
