#!/bin/sh
# Not started or enabled here: stackprint probes servers, so the operator
# reviews /etc/stackprint/stackprint.yaml (inputs, scope, rates) first, then
# runs: systemctl enable --now stackprint
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a daemon that was running.
	if systemctl is-active --quiet stackprint.service; then
		systemctl try-restart stackprint.service || true
	fi
fi
if [ "$1" = "configure" ] && [ -z "$2" ] || [ "$1" = "1" ]; then
	echo "stackprint installed. Review /etc/stackprint/stackprint.yaml, check it with"
	echo "  stackprint config check -c /etc/stackprint/stackprint.yaml"
	echo "then: systemctl enable --now stackprint"
fi
exit 0
