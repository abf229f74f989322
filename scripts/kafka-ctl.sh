#!/usr/bin/env bash
# Stops and restarts the Kafka broker of a work dir made by `scripts/brokers.sh up WORKDIR`, on the same port and
# data, for fault tests ("the broker restarted during a run"). `start` returns once the broker answers a produce.
#
#   scripts/kafka-ctl.sh start|stop|kill WORKDIR      (from Go: exec.Command(os.Getenv("TAGSTREAM_KAFKA_CTL"), "stop", os.Getenv("TAGSTREAM_BROKERS_DIR")))
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 start|stop|kill WORKDIR" >&2; exit 2; }
exec "$(dirname "${BASH_SOURCE[0]}")/brokers.sh" "$1" kafka "$2"
