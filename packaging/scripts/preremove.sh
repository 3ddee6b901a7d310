#!/bin/sh
# Stop the daemon before its binary goes; not on an upgrade (deb "upgrade",
# rpm $1 = 1), where postinstall restarts it.
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl --no-reload disable --now stackprint.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
