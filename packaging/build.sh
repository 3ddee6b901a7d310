#!/usr/bin/env bash
# Builds the static binary and the .deb and .rpm packages into dist/.
#   packaging/build.sh            # both packages
#   packaging/build.sh deb        # only the .deb
# VERSION defaults to `git describe`: the tag without its v (1.2.0), a tag
# and the commits since (1.2.0+git5.gabcdef123456), or with no tag the
# commit's date and hash (0.0.0+git20261206074733.2439178b2662); ".dirty"
# when the checkout has uncommitted changes. The binary gets VERSION and the
# commit through the linker (internal/buildinfo), so `stackprint version`
# and the man page name what the package is.
# The man page, the bash and zsh completions and the Debian changelog are
# generated into dist/ from the binary and the git history.
# nfpm runs with `go run` at a pinned version, so go.mod stays free of it.
set -euo pipefail
cd "$(dirname "$0")/.."
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
BUILDINFO=github.com/stackprint/stackprint/internal/buildinfo

formats=("$@")
((${#formats[@]})) || formats=(deb rpm)

ingit=false
git rev-parse --git-dir >/dev/null 2>&1 && ingit=true
if [[ -z "${VERSION:-}" ]]; then
	if ! $ingit; then
		VERSION=0.0.0+unknown
	elif desc=$(git describe --tags --match 'v[0-9]*' --abbrev=12 2>/dev/null); then
		if [[ "$desc" =~ ^v(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
			VERSION="${BASH_REMATCH[1]}+git${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}"
		else
			VERSION=${desc#v}
		fi
	else
		VERSION="0.0.0+git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$(git rev-parse --short=12 HEAD)"
	fi
	if $ingit && [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
		VERSION+=.dirty
	fi
fi
COMMIT=${COMMIT:-$($ingit && git rev-parse HEAD || echo unknown)}
export VERSION
export ARCH=${ARCH:-$(go env GOARCH)}
ldflags="-s -w -X $BUILDINFO.version=$VERSION -X $BUILDINFO.commit=$COMMIT"

mkdir -p dist/man dist/completions dist/doc
# The same build as the Dockerfile's: static, no cgo, reproducible paths.
CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags="$ldflags" -o dist/stackprint ./cmd/stackprint

# Generated documentation, from a binary this machine runs.
host=dist/stackprint
if [[ "$ARCH" != "$(go env GOHOSTARCH)" ]]; then
	host=dist/host/stackprint
	CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$host" ./cmd/stackprint
fi
"$host" man | gzip -9n >dist/man/stackprint.1.gz
"$host" completion bash >dist/completions/stackprint
"$host" completion zsh >dist/completions/_stackprint

# The Debian changelog of this build: one entry for VERSION-1 (nfpm's
# release 1) listing the commits since the previous tag (the last 30 at
# most), dated with the commit, as a snapshot changelog is.
{
	printf 'stackprint (%s-1) unstable; urgency=medium\n\n' "$VERSION"
	if $ingit; then
		range=HEAD
		if prev=$(git describe --tags --match 'v[0-9]*' --abbrev=0 HEAD^ 2>/dev/null); then
			range="$prev..HEAD"
		fi
		printf '  * Built from commit %s.\n' "$COMMIT"
		git log --no-merges -30 --format='%s' "$range" | while IFS= read -r subject; do
			fold -s -w 74 <<<"$subject" | sed '1s/^/  * /; 2,$s/^/    /'
		done
		when=$(LC_ALL=C TZ=UTC date -R -d "@$(git log -1 --format=%ct)")
	else
		printf '  * Built outside a git checkout.\n'
		when=$(LC_ALL=C TZ=UTC date -R)
	fi
	printf '\n -- stackprint maintainers <stackprint@users.noreply.github.com>  %s\n' "$when"
} | sed 's/[[:space:]]*$//' | gzip -9n >dist/doc/changelog.Debian.gz

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
