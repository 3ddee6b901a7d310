#!/bin/sh
# The system user the daemon runs as (the unit's User=), created before the
# files so that they can be owned by it. Never removed: Debian policy keeps
# system users on purge, since files elsewhere may still belong to them.
set -e
if ! getent group stackprint >/dev/null; then
	groupadd --system stackprint
fi
if ! getent passwd stackprint >/dev/null; then
	useradd --system --gid stackprint --home-dir /var/lib/stackprint --no-create-home \
		--shell /usr/sbin/nologin --comment "stackprint daemon" stackprint
fi
exit 0
