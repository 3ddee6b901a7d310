#!/bin/sh
# remove keeps the DB (/var/lib/stackprint), the logs and the conffiles;
# purge (deb) removes the DB, the logs and the config directory. The
# system user stays (Debian policy). RPM has no purge: like Fedora's
# packages, it leaves the state and logs for the operator.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = "purge" ]; then
	rm -rf /var/lib/stackprint /var/log/stackprint
	rm -rf /etc/stackprint
fi
exit 0
