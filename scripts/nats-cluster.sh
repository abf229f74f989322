#!/usr/bin/env bash
# A three-node nats-server cluster with JetStream on loopback ports, as plain processes, for the tests of tagstream
# groups (group/, and the process-level group tests): replicated (R3) key-value buckets need three servers.
#
#   scripts/nats-cluster.sh up WORKDIR          start three nodes on free ports, wait until JetStream has a meta
#                                               leader with three peers, write WORKDIR/env
#   scripts/nats-cluster.sh down WORKDIR        stop every node (SIGTERM, then SIGKILL after 30 s)
#   scripts/nats-cluster.sh status WORKDIR      print what runs
#   scripts/nats-cluster.sh start N WORKDIR     (re)start node N (1..3) on its ports and store; returns when it is
#                                               healthy and back in the meta group
#   scripts/nats-cluster.sh stop N WORKDIR      stop node N gracefully
#   scripts/nats-cluster.sh kill N WORKDIR      SIGKILL node N
#
# After `up`:  . WORKDIR/env   exports TAGSTREAM_NATS_CLUSTER_URLS (the three client URLs, comma-separated, as
# nats.Connect takes them), TAGSTREAM_NATS_CLUSTER_CTL (this script) and TAGSTREAM_NATS_CLUSTER_DIR (WORKDIR).
# Each node's log is WORKDIR/nN/nats.log; its monitoring port (healthz, jsz) is in WORKDIR/nN/http-port.
#
# The nats-server binary is TAGSTREAM_NATS_SERVER_BIN when set, else the one scripts/brokers.sh builds into the
# cache (${TAGSTREAM_CACHE:-$HOME/.cache/tagstream}/nats-server-<version>/bin), built here the same way if missing.
# Readiness timeout: TAGSTREAM_NATS_CLUSTER_READY_TIMEOUT seconds (default 60).
set -euo pipefail

NATS_SERVER_VERSION="${TAGSTREAM_NATS_SERVER_VERSION:-v2.15.2}"
READY_TIMEOUT="${TAGSTREAM_NATS_CLUSTER_READY_TIMEOUT:-60}"
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPTS/.." && pwd)"
CACHE="${TAGSTREAM_CACHE:-$HOME/.cache/tagstream}"
NATS_BIN="${TAGSTREAM_NATS_SERVER_BIN:-$CACHE/nats-server-$NATS_SERVER_VERSION/bin/nats-server}"
CLUSTER_NAME="tagstream-test-cluster"

log() { printf '[nats-cluster %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# fetch builds nats-server into the cache under the cache's lock, as scripts/brokers.sh does, when it is missing.
fetch() {
	[[ -x "$NATS_BIN" ]] && return 0
	[[ -z "${TAGSTREAM_NATS_SERVER_BIN:-}" ]] || die "TAGSTREAM_NATS_SERVER_BIN=$NATS_BIN is not executable"
	command -v go >/dev/null || die "go is not on PATH: cannot build nats-server"
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	command -v flock >/dev/null && flock 9
	if [[ ! -x "$NATS_BIN" ]]; then
		log "building nats-server $NATS_SERVER_VERSION into $(dirname "$NATS_BIN") (go install)"
		(cd / && GOBIN="$(dirname "$NATS_BIN")" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION") ||
			die "go install github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION failed"
	fi
	exec 9>&-
}

# ports prints N free loopback ports (scripts/brokercheck, built into WORKDIR/bin).
ports() { # workdir n
	local w="$1"
	if [[ ! -x "$w/bin/brokercheck" ]]; then
		mkdir -p "$w/bin"
		(cd "$REPO" && go build -o "$w/bin/brokercheck" ./scripts/brokercheck) || die "building scripts/brokercheck failed"
	fi
	"$w/bin/brokercheck" ports "$2"
}

# A node's pid is in WORKDIR/nN/pid; it is only signalled if its command line still names its config file, so a
# recycled pid is never hit.
node_pid() { # n workdir
	local pidf="$2/n$1/pid" pid
	[[ -f "$pidf" ]] || return 1
	pid="$(cat "$pidf")"
	[[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2/n$1/nats.conf" || return 1
	echo "$pid"
}

write_config() { # workdir
	local w="$1" i j routes
	for i in 1 2 3; do
		routes=""
		for j in 1 2 3; do
			[[ $j == "$i" ]] && continue
			routes+="nats-route://127.0.0.1:$(cat "$w/n$j/cluster-port"), "
		done
		cat >"$w/n$i/nats.conf" <<EOF
# Node $i of the three-node test cluster (written by scripts/nats-cluster.sh).
server_name: n$i
listen: 127.0.0.1:$(cat "$w/n$i/port")
http: 127.0.0.1:$(cat "$w/n$i/http-port")
jetstream {
  store_dir: "$w/n$i/data"
}
cluster {
  name: $CLUSTER_NAME
  listen: 127.0.0.1:$(cat "$w/n$i/cluster-port")
  routes: [${routes%, }]
}
EOF
	done
}

show_log_tail() { # file
	[[ -f "$1" ]] || return 0
	echo "----- last 40 lines of $1 -----" >&2
	tail -n 40 "$1" >&2
	echo "----- end of $1 -----" >&2
}

# healthy reports whether node n answers healthz with ok and sees a JetStream meta leader in a group of three.
healthy() { # n workdir
	local url="http://127.0.0.1:$(cat "$2/n$1/http-port")" jsz
	curl -fsS --max-time 2 "$url/healthz" 2>/dev/null | grep -Eq '"status": ?"ok"' || return 1
	jsz="$(curl -fsS --max-time 2 "$url/jsz" 2>/dev/null)" || return 1
	grep -Eq '"cluster_size": ?3' <<<"$jsz" && grep -Eq '"leader": ?"n[123]"' <<<"$jsz"
}

# wait_healthy waits until every given node is healthy; it shows the nodes' logs and fails when one exits or the
# timeout passes.
wait_healthy() { # workdir nodes...
	local w="$1" deadline=$((SECONDS + READY_TIMEOUT)) n ok
	shift
	while :; do
		ok=1
		for n in "$@"; do
			if ! node_pid "$n" "$w" >/dev/null; then
				show_log_tail "$w/n$n/stdout.log"
				show_log_tail "$w/n$n/nats.log"
				log "node n$n exited while starting"
				return 1
			fi
			healthy "$n" "$w" || ok=0
		done
		[[ $ok == 1 ]] && return 0
		if ((SECONDS >= deadline)); then
			for n in "$@"; do show_log_tail "$w/n$n/nats.log"; done
			log "nodes $* not healthy within ${READY_TIMEOUT}s"
			return 1
		fi
		sleep 0.2
	done
}

start_node() { # n workdir
	local n="$1" w="$2"
	if node_pid "$n" "$w" >/dev/null; then
		log "node n$n already running"
		return 0
	fi
	mkdir -p "$w/n$n/data"
	nohup "$NATS_BIN" -c "$w/n$n/nats.conf" -l "$w/n$n/nats.log" </dev/null >"$w/n$n/stdout.log" 2>&1 &
	echo $! >"$w/n$n/pid"
}

stop_node() { # n workdir signal
	local n="$1" w="$2" sig="${3:-TERM}" pid i
	if ! pid="$(node_pid "$n" "$w")"; then
		rm -f "$w/n$n/pid"
		return 0
	fi
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		[[ -d "/proc/$pid" ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || break
		sleep 0.1
	done
	if [[ -d "/proc/$pid" ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
		log "node n$n (pid $pid) did not stop within 30 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$w/n$n/pid"
	log "node n$n stopped (pid $pid, SIG$sig)"
}

urls() { # workdir
	local w="$1" out="" n
	for n in 1 2 3; do out+="nats://127.0.0.1:$(cat "$w/n$n/port"),"; done
	echo "${out%,}"
}

cmd_up() {
	local w p n
	mkdir -p "$1"
	w="$(cd "$1" && pwd)"
	for n in 1 2 3; do
		node_pid "$n" "$w" >/dev/null && die "the cluster already runs in $w ($0 down $w first)"
	done
	command -v curl >/dev/null || die "curl is not on PATH: it reads the nodes' health"
	fetch
	mapfile -t p < <(ports "$w" 9)
	[[ ${#p[@]} -eq 9 ]] || die "could not find free loopback ports"
	for n in 1 2 3; do
		mkdir -p "$w/n$n"
		echo "${p[$((3 * n - 3))]}" >"$w/n$n/port"
		echo "${p[$((3 * n - 2))]}" >"$w/n$n/cluster-port"
		echo "${p[$((3 * n - 1))]}" >"$w/n$n/http-port"
	done
	write_config "$w"
	local t0=$SECONDS
	for n in 1 2 3; do start_node "$n" "$w"; done
	# Health, then a real round trip through the client URLs (a stream, a publish, its acknowledgement).
	if ! wait_healthy "$w" 1 2 3 || ! "$w/bin/brokercheck" nats -url "$(urls "$w")" -timeout "${READY_TIMEOUT}s" >&2; then
		cmd_down "$w"
		die "the cluster did not come up (logs: $w/n*/nats.log)"
	fi
	cat >"$w/env.tmp" <<EOF
# Written by scripts/nats-cluster.sh up $w — source it: . $w/env
export TAGSTREAM_NATS_CLUSTER_URLS=$(urls "$w")
export TAGSTREAM_NATS_CLUSTER_CTL=$SCRIPTS/nats-cluster.sh
export TAGSTREAM_NATS_CLUSTER_DIR=$w
EOF
	mv "$w/env.tmp" "$w/env"
	log "three nodes ($("$NATS_BIN" --version 2>/dev/null)) ready in $((SECONDS - t0)) s: $(urls "$w")"
}

cmd_down() {
	local w n
	[[ -d "$1" ]] || return 0
	w="$(cd "$1" && pwd)"
	for n in 1 2 3; do stop_node "$n" "$w" TERM; done
}

cmd_status() {
	local w n pid
	w="$(cd "$1" && pwd)"
	for n in 1 2 3; do
		if pid="$(node_pid "$n" "$w")"; then
			echo "n$n: running, pid $pid, port $(cat "$w/n$n/port"), healthy: $(healthy "$n" "$w" && echo yes || echo no)"
		else
			echo "n$n: stopped"
		fi
	done
}

cmd_node() { # action n workdir
	local action="$1" n="$2" w
	[[ "$n" =~ ^[123]$ ]] || die "node must be 1, 2 or 3, got '$n'"
	[[ -f "$3/n$n/nats.conf" ]] || die "$3 is not a cluster work dir (run: $0 up $3)"
	w="$(cd "$3" && pwd)"
	case "$action" in
	start)
		fetch
		start_node "$n" "$w"
		if ! wait_healthy "$w" "$n"; then
			stop_node "$n" "$w" KILL
			die "node n$n did not come back"
		fi
		log "node n$n healthy"
		;;
	stop) stop_node "$n" "$w" TERM ;;
	kill) stop_node "$n" "$w" KILL ;;
	esac
}

usage() {
	sed -n '2,21p' "$0" >&2
	exit 2
}

main() {
	[[ $# -ge 1 ]] || usage
	case "$1" in
	up) [[ $# -eq 2 ]] || usage; cmd_up "$2" ;;
	down) [[ $# -eq 2 ]] || usage; cmd_down "$2" ;;
	status) [[ $# -eq 2 ]] || usage; cmd_status "$2" ;;
	start | stop | kill) [[ $# -eq 3 ]] || usage; cmd_node "$1" "$2" "$3" ;;
	*) usage ;;
	esac
}

main "$@"
