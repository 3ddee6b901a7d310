#!/usr/bin/env bash
# Kafka benchmark: a kfake broker (the Kafka implementation franz-go is
# tested against) on 127.0.0.1, 16 loopback TLS servers, and 1 then 3
# instances of the built daemon in one consumer group (zeek-json input,
# 6 partitions, shared probing, alerts to a Kafka topic and to files).
# Prints, per instance count:
#   - events/s: a burst of EVENTS events produced at once, every server
#     already probed and cached, until the last alert is on the alerts
#     topic (consume, judge, write the files and produce the alert);
#   - latency p50/p99 from producing one event to its alert arriving on
#     the alerts topic, one event at a time, cached server.
# All processes share this host's cores (and the broker runs in the
# benchmark process): the 3-instance figure shows the group's overhead
# and balance, not the scaling of three machines.
#
#   bench/kafka.sh
#   EVENTS=100000 INSTANCES=1,2,3 bench/kafka.sh
#   STACKPRINT=/usr/local/bin/stackprint bench/kafka.sh   an existing binary
#   KAFKABENCH_PPROF=1 bench/kafka.sh   serve pprof on each instance's metrics address
#
# Timings are printed, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/stackprint-kafka-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bin=${STACKPRINT:-}
if [[ -z $bin ]]; then
	bin=$work/stackprint
	go build -o "$bin" ./cmd/stackprint
fi
go build -o "$work/kafkabench" ./bench/kafkabench
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
"$work/kafkabench" -bin "$bin" -events "${EVENTS:-30000}" -instances "${INSTANCES:-1,3}" -latency "${SAMPLES:-300}"
