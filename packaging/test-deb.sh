#!/usr/bin/env bash
# Builds the .deb (and the .rpm), installs the .deb on this machine with
# dpkg, checks what it installed (user, modes, conffiles, config check,
# the version the binary prints, the man page rendered by groff, the bash
# and zsh completions, the Debian changelog and copyright file,
# systemd-analyze verify of the unit, logrotate, the syscall filter against
# a trace of the daemon), removes it (config, DB and logs stay), purges it
# (nothing of it stays but the system user, as Debian policy asks) and
# checks each step. Run as root on Debian; .ci/run calls it. systemd need
# not be PID 1: systemd-analyze verify works without a running manager.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "test-deb: $*"; }
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || fail "must run as root (dpkg -i)"
need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v logrotate >/dev/null 2>&1 || need+=(logrotate)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v groff >/dev/null 2>&1 || need+=(groff-base)
command -v zsh >/dev/null 2>&1 || need+=(zsh)
command -v dpkg-parsechangelog >/dev/null 2>&1 || need+=(dpkg-dev)
if ((${#need[@]})); then
	say "installing ${need[*]}"
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	# No service is started by these installs (policy-rc.d: 101 = deny).
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	rm -f /usr/sbin/policy-rc.d
fi

if dpkg -s stackprint >/dev/null 2>&1 || [[ -e /etc/stackprint || -e /var/lib/stackprint ]]; then
	say "stackprint is already (partly) installed here; purging it first"
	dpkg -P stackprint >/dev/null 2>&1 || true
	rm -rf /etc/stackprint /var/lib/stackprint /var/log/stackprint /etc/logrotate.d/stackprint
fi

rm -rf dist
packaging/build.sh deb rpm
deb=$(ls dist/stackprint_*.deb)
rpmf=$(ls dist/stackprint-*.rpm)

say "rpm contents ($rpmf):"
rpm -qpl "$rpmf" | sed 's/^/  /'
rpm -qp --scripts "$rpmf" | grep -q 'useradd --system' || fail "rpm lacks the user creation script"

say "dpkg -i $deb"
dpkg -i "$deb"
say "files the .deb installed:"
dpkg -L stackprint | sed 's/^/  /'
mapfile -t installed < <(dpkg -L stackprint)

# What the package must have set up.
getent passwd stackprint >/dev/null || fail "no user stackprint"
[[ $(getent passwd stackprint | cut -d: -f7) == /usr/sbin/nologin ]] || fail "stackprint has a login shell"
[[ $(stat -c '%U:%G %a' /var/lib/stackprint) == "stackprint:stackprint 750" ]] || fail "/var/lib/stackprint: $(stat -c '%U:%G %a' /var/lib/stackprint)"
[[ $(stat -c '%U:%G %a' /var/log/stackprint) == "stackprint:stackprint 750" ]] || fail "/var/log/stackprint: $(stat -c '%U:%G %a' /var/log/stackprint)"
[[ $(stat -c '%U:%G %a' /etc/stackprint/stackprint.yaml) == "root:stackprint 640" ]] || fail "config: $(stat -c '%U:%G %a' /etc/stackprint/stackprint.yaml)"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' stackprint | awk 'NF {print $1}' | sort | tr '\n' ' ')
[[ "$conffiles" == "/etc/logrotate.d/stackprint /etc/stackprint/stackprint.yaml " ]] || fail "conffiles: $conffiles"
readelf -l /usr/bin/stackprint | grep -q INTERP && fail "/usr/bin/stackprint is not static"

say "stackprint version; config check (the installed /usr/bin/stackprint)"
pkgver=$(dpkg-query -W -f='${Version}' stackprint)
upver=${pkgver%-*} # without nfpm's release
version=$(/usr/bin/stackprint version)
echo "  $version (package $pkgver)"
[[ "$version" == "stackprint $upver commit "* ]] || fail "stackprint version says \"$version\", the package is $pkgver"
if git rev-parse --git-dir >/dev/null 2>&1; then
	[[ "$version" == *" commit $(git rev-parse HEAD) "* ]] || fail "stackprint version names another commit than HEAD: $version"
fi
/usr/bin/stackprint config check -c /etc/stackprint/stackprint.yaml
runuser -u stackprint -- /usr/bin/stackprint config check -c /etc/stackprint/stackprint.yaml

say "documentation: man page, completions, changelog, copyright"
man1=/usr/share/man/man1/stackprint.1.gz
bashc=/usr/share/bash-completion/completions/stackprint
zshc=/usr/share/zsh/vendor-completions/_stackprint
chlog=/usr/share/doc/stackprint/changelog.Debian.gz
copyright=/usr/share/doc/stackprint/copyright
for f in "$man1" "$bashc" "$zshc" "$chlog" "$copyright"; do
	[[ -s "$f" ]] || fail "$f is missing or empty"
	printf '%s\n' "${installed[@]}" | grep -qxF "$f" || fail "$f is not the package's (dpkg -L)"
	[[ $(stat -c '%U:%G %a' "$f") == "root:root 644" ]] || fail "$f: $(stat -c '%U:%G %a' "$f")"
done
gzip -t "$man1" "$chlog" || fail "a .gz file is not gzip"
# The page as man shows it: groff with warnings on, none printed.
warn=$(zcat "$man1" | groff -man -Tutf8 -ww -z 2>&1) || fail "groff: $warn"
[[ -z "$warn" ]] || fail "groff warns about $man1: $warn"
page=$(zcat "$man1" | groff -man -Tutf8 -P-cbou 2>/dev/null)
for want in "stackprint - active TLS server fingerprinting" "stackprint watch add" "--starttls" "stackprint $upver"; do
	grep -qF -- "$want" <<<"$page" || fail "the rendered man page lacks \"$want\""
done
if command -v man >/dev/null 2>&1; then
	MANPAGER=cat MANWIDTH=100 man -l "$man1" 2>/dev/null | grep -qF "stackprint watch add" || fail "man -l $man1 does not render it"
fi
say "man page: $(wc -l <<<"$page") lines rendered, no groff warning"
# Completions as the shells load them.
got=$(bash -c 'source "$0"; COMP_WORDS=(stackprint wat); COMP_CWORD=1; _stackprint; echo "${COMPREPLY[*]}"' "$bashc")
[[ "$got" == "watch" ]] || fail "bash completion of 'stackprint wat': \"$got\""
got=$(bash -c 'source "$0"; COMP_WORDS=(stackprint watch add --star); COMP_CWORD=3; _stackprint; echo "${COMPREPLY[*]}"' "$bashc")
[[ "$got" == "--starttls" ]] || fail "bash completion of 'stackprint watch add --star': \"$got\""
zsh -n "$zshc" || fail "zsh -n $zshc"
got=$(zsh -f -c '_describe() { local -a a; a=("${(@P)${@[-1]}}"); print -rl -- "${a[@]}"; }; _files() { :; }
source "$1" >/dev/null; words=(stackprint ""); CURRENT=2; PREFIX=""; _stackprint' zsh "$zshc")
grep -q '^watch:' <<<"$got" || fail "zsh completion of 'stackprint ' lacks watch: $got"
# The changelog parses and names this version; the copyright file is
# machine-readable (DEP-5) with a text for every licence it names.
clv=$(zcat "$chlog" | dpkg-parsechangelog -l - -S Version) || fail "dpkg-parsechangelog $chlog"
[[ "$clv" == "$pkgver" ]] || fail "changelog version $clv, package $pkgver"
head -1 "$copyright" | grep -qxF 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' || fail "$copyright is not DEP-5"
for lic in $(awk '/^Files:/ {f = 1} f && /^License:/ {print $2; f = 0}' "$copyright" | sort -u); do
	awk -v l="$lic" 'BEGIN {RS = ""} $0 ~ "^License: " l "\n" && $0 !~ /(^|\n)Files:/ {found = 1} END {exit !found}' "$copyright" ||
		fail "$copyright names licence $lic without its text paragraph"
done
say "changelog ($clv) and copyright ok"

say "systemd-analyze verify /usr/lib/systemd/system/stackprint.service"
out=$(systemd-analyze verify /usr/lib/systemd/system/stackprint.service 2>&1) || fail "systemd-analyze verify: $out"
[[ -z "$out" ]] || fail "systemd-analyze verify printed: $out"

say "logrotate -f /etc/logrotate.d/stackprint (own state file)"
runuser -u stackprint -- sh -c 'echo "{\"n\":1}" >/var/log/stackprint/alerts.ndjson'
lrstate=$(mktemp)
lr=$(logrotate -v -f -s "$lrstate" /etc/logrotate.d/stackprint 2>&1) || fail "logrotate: $lr"
rm -f "$lrstate"
grep -qiE 'error|insecure' <<<"$lr" && fail "logrotate: $lr"
[[ -s /var/log/stackprint/alerts.ndjson.1 ]] || fail "logrotate did not rotate alerts.ndjson: $lr"
[[ $(stat -c '%U:%G %a %s' /var/log/stackprint/alerts.ndjson) == "stackprint:stackprint 640 0" ]] ||
	fail "logrotate's new alerts.ndjson: $(stat -c '%U:%G %a %s' /var/log/stackprint/alerts.ndjson)"

# The unit denies @privileged system calls (SystemCallFilter=~@privileged):
# trace the installed daemon, as its user, through start-up, one probe of a
# loopback server and shutdown, and check it made none of them. In an empty
# network namespace: nothing leaves the machine.
say "syscall trace of the daemon against the unit's filter"
expand() { # a systemd syscall group, recursively, one name per line
	systemd-analyze syscall-filter "$1" | awk 'NR > 1 && !/^ *#/ {print $1}' | while read -r s; do
		if [[ "$s" == @* ]]; then expand "$s"; elif [[ -n "$s" ]]; then echo "$s"; fi
	done
}
denied=$(expand @privileged | sort -u)
[[ $(wc -l <<<"$denied") -gt 20 ]] || fail "could not expand @privileged: $denied"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chown stackprint:stackprint "$work"
sed -e "s#/var/lib/stackprint/stackprint.db#$work/stackprint.db#" \
	-e "s#/opt/zeek/logs/current/ssl.log#$work/ssl.log#" -e "s#/opt/zeek/logs/current/conn.log#$work/conn.log#" \
	-e "s#/var/log/suricata/eve.json#$work/eve.json#" -e "s#/var/log/stackprint/#$work/#" \
	-e 's#  allow: \[\]#  allow: [127.0.0.0/8]#' -e 's#listen: 127.0.0.1:9464#listen: 127.0.0.1:0#' \
	/etc/stackprint/stackprint.yaml >"$work/c.yaml"
chmod 644 "$work/c.yaml"
unshare -n -- bash -c '
	set -e
	ip link set lo up
	work=$1
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/k.pem" -out "$work/c.pem" -days 1 -subj /CN=localhost 2>/dev/null
	openssl s_server -accept 127.0.0.1:8443 -cert "$work/c.pem" -key "$work/k.pem" -www -quiet >/dev/null 2>&1 &
	srv=$!
	printf "#separator \\\\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tssl\n#open\t2026-12-06-00-00-00\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tserver_name\n#types\ttime\tstring\taddr\tport\taddr\tport\tstring\n1765000000.000000\tCtest\t127.0.0.2\t40000\t127.0.0.1\t8443\tlocalhost\n" >"$work/ssl.log"
	chown stackprint "$work/ssl.log"
	strace -f -qq -u stackprint -o "$work/trace" /usr/bin/stackprint run -c "$work/c.yaml" 2>"$work/daemon.log" &
	tracer=$!
	for _ in $(seq 150); do grep -qP "\t127\.0\.0\.1\t8443\t" "$work/stackprint.log" 2>/dev/null && break; sleep 0.2; done
	daemon=$(pgrep -P "$tracer" || true)
	[ -n "$daemon" ] && kill -TERM "$daemon"
	wait "$tracer" || true
	kill "$srv"
	grep -qP "\t127\.0\.0\.1\t8443\t" "$work/stackprint.log" || { cat "$work/daemon.log"; echo "no fingerprint record for the loopback server"; exit 1; }
' _ "$work"
used=$(sed -E 's/^[0-9]+ +//; s/^<\.\.\. ([a-z0-9_]+) resumed>.*/\1/; s/^([a-z0-9_]+)\(.*/\1/' "$work/trace" | grep -E '^[a-z0-9_]+$' | sort -u)
say "the daemon made $(wc -l <<<"$used") distinct system calls"
bad=$(comm -12 <(echo "$denied") <(echo "$used"))
[[ -z "$bad" ]] || fail "the daemon uses system calls the unit denies (@privileged): $bad"
rm -rf "$work"

# State the daemon would leave: a DB and logs, owned by its user.
runuser -u stackprint -- /usr/bin/stackprint db import -c /etc/stackprint/stackprint.yaml /usr/share/stackprint/seeds/jarm-intel.csv
runuser -u stackprint -- sh -c 'echo "{}" >/var/log/stackprint/alerts.ndjson'
echo "# edited by the operator" >>/etc/stackprint/stackprint.yaml

say "dpkg -r stackprint"
dpkg -r stackprint
left=()
for f in "${installed[@]}"; do [[ -e "$f" && ! -d "$f" ]] && left+=("$f"); done
printf '%s\n' "${left[@]}" | sort >"$(dirname "$deb")/left-after-remove"
want=$'/etc/logrotate.d/stackprint\n/etc/stackprint/stackprint.yaml'
[[ "$(printf '%s\n' "${left[@]}" | sort)" == "$want" ]] || fail "after remove, left: ${left[*]} (want only the conffiles)"
grep -q "edited by the operator" /etc/stackprint/stackprint.yaml || fail "remove lost the operator's config edit"
[[ -s /var/lib/stackprint/stackprint.db ]] || fail "remove deleted the DB (only purge may)"
[[ -e /var/log/stackprint/alerts.ndjson ]] || fail "remove deleted the logs (only purge may)"
say "after remove: conffiles, /var/lib/stackprint (DB) and /var/log/stackprint stay"

say "dpkg -P stackprint"
dpkg -P stackprint
for f in "${installed[@]}" /etc/stackprint /var/lib/stackprint /var/log/stackprint; do
	case "$f" in /etc | /usr | /usr/bin | /usr/share | /usr/share/doc | /usr/lib | /usr/lib/systemd | /usr/lib/systemd/system | /var | /var/lib | /var/log | /etc/logrotate.d | /) continue ;; esac
	# Directories other packages share (man-db, bash-completion, zsh).
	case "$f" in /usr/share/man | /usr/share/man/man1 | /usr/share/bash-completion | /usr/share/bash-completion/completions | /usr/share/zsh | /usr/share/zsh/vendor-completions) continue ;; esac
	[[ -e "$f" ]] && fail "after purge, $f is still there"
done
dpkg -s stackprint >/dev/null 2>&1 && fail "dpkg still knows stackprint after purge"
getent passwd stackprint >/dev/null || fail "purge removed the system user (Debian policy keeps it)"
say "after purge: nothing of the package is left; the system user stackprint stays (Debian policy)"
say "ok"
