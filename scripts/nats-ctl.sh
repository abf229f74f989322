#!/usr/bin/env bash
# Stops and restarts the nats-server of a work dir made by `scripts/brokers.sh up WORKDIR`, on the same port and
# JetStream store, for fault tests. `start` returns once JetStream acknowledges a publish.
#
#   scripts/nats-ctl.sh start|stop|kill WORKDIR
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 start|stop|kill WORKDIR" >&2; exit 2; }
exec "$(dirname "${BASH_SOURCE[0]}")/brokers.sh" "$1" nats "$2"
