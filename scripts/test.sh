#!/usr/bin/env bash
# The test command (README; .ci/run calls it). On a fresh machine with Go, Java 17+ and Maven it:
#   1. checks formatting (gofmt -l) and runs go vet -tags integration ./...;
#   2. builds nats-server and fetches an Apache Kafka 4.x broker from Maven Central into the cache
#      (${TAGSTREAM_CACHE:-$HOME/.cache/tagstream}; later runs reuse it), starts both on free loopback ports and
#      waits for a real round trip to each (scripts/brokers.sh);
#   3. runs go test -race -count=1 -tags integration ./... (the tag builds e2e/) with TAGSTREAM_KAFKA_BROKERS,
#      TAGSTREAM_NATS_URL, TAGSTREAM_NATS_SERVER_BIN, TAGSTREAM_KAFKA_HOME, TAGSTREAM_KAFKA_CTL, TAGSTREAM_NATS_CTL, TAGSTREAM_BROKERS_DIR and TAGSTREAM_INTEGRATION=1;
#   4. stops both brokers, also when a step fails or on Ctrl-C.
# A broker that cannot start fails the run with the reason and the tail of its log; nothing is skipped silently.
#
#   scripts/test.sh                 everything
#   scripts/test.sh ./poller/...    only these packages (gofmt and vet still cover the whole tree)
# Environment: TAGSTREAM_TEST_TIMEOUT (go test -timeout, default 40m), TAGSTREAM_TEST_FLAGS (extra go test flags),
# TAGSTREAM_KEEP_BROKERS_DIR=1 keeps the broker work dir (logs, data) after the run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"
START=$SECONDS

say() { printf '\n==> [%s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$((SECONDS - START))" "$*"; }

PKGS=("$@")
[[ ${#PKGS[@]} -gt 0 ]] || PKGS=(./...)

say "go $(go env GOVERSION), $(java -version 2>&1 | head -n 1), $(mvn -v 2>/dev/null | head -n 1 | sed 's/\x1b\[[0-9;]*m//g')"

say "gofmt -l"
mapfile -t gofiles < <(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')
[[ ${#gofiles[@]} -gt 0 ]] || { echo "no Go files found" >&2; exit 1; }
unformatted="$(gofmt -l "${gofiles[@]}")"
if [[ -n "$unformatted" ]]; then
	echo "these files need gofmt:" >&2
	echo "$unformatted" >&2
	exit 1
fi

say "go vet -tags integration ./..."
go vet -tags integration ./...

# Era API clients for testenv's TestEraClient* (python-instagram 1.3.2 in a cached venv; scripts/era-clients.sh).
say "era clients (scripts/era-clients.sh)"
TAGSTREAM_ERA_PYTHON="$("$REPO/scripts/era-clients.sh")"
export TAGSTREAM_ERA_PYTHON

# promtool for deploy/check (alert rules and dashboard): cached, or extracted from Debian's package (scripts/promtool.sh).
say "promtool (scripts/promtool.sh)"
TAGSTREAM_PROMTOOL="$("$REPO/scripts/promtool.sh" --version)"
export TAGSTREAM_PROMTOOL

BROKERS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tagstream-test.XXXXXX")"
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	say "stopping brokers"
	"$REPO/scripts/nats-cluster.sh" down "$BROKERS_DIR/nats-cluster" || true # the group tests' cluster (below)
	"$REPO/scripts/brokers.sh" down "$BROKERS_DIR" || true
	if [[ "${TAGSTREAM_KEEP_BROKERS_DIR:-}" == 1 ]]; then
		echo "broker logs and data kept in $BROKERS_DIR"
	else
		rm -rf "$BROKERS_DIR"
	fi
	say "done in $((SECONDS - START)) s, exit $rc"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting Kafka and nats-server (scripts/brokers.sh up $BROKERS_DIR)"
"$REPO/scripts/brokers.sh" up "$BROKERS_DIR"
# shellcheck disable=SC1091
. "$BROKERS_DIR/env"
echo "TAGSTREAM_KAFKA_BROKERS=$TAGSTREAM_KAFKA_BROKERS TAGSTREAM_NATS_URL=$TAGSTREAM_NATS_URL"

# A three-node nats-server cluster (JetStream, R3 buckets) for the group tests: exports TAGSTREAM_NATS_CLUSTER_URLS,
# TAGSTREAM_NATS_CLUSTER_CTL and TAGSTREAM_NATS_CLUSTER_DIR (scripts/nats-cluster.sh; stopped by cleanup above).
say "starting a three-node nats-server cluster (scripts/nats-cluster.sh up $BROKERS_DIR/nats-cluster)"
"$REPO/scripts/nats-cluster.sh" up "$BROKERS_DIR/nats-cluster"
# shellcheck disable=SC1091
. "$BROKERS_DIR/nats-cluster/env"

say "go test -race -count=1 -tags integration ${PKGS[*]}"
# shellcheck disable=SC2086
go test -race -count=1 -tags integration -timeout "${TAGSTREAM_TEST_TIMEOUT:-40m}" ${TAGSTREAM_TEST_FLAGS:-} "${PKGS[@]}"
