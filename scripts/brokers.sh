#!/usr/bin/env bash
# Real brokers for tagstream's tests: a single-node Apache Kafka (KRaft, combined broker+controller) and a
# nats-server with JetStream, both on free loopback ports, as plain processes (no Docker).
#
#   scripts/brokers.sh up WORKDIR            fetch/build into the cache if needed, start both, wait, write WORKDIR/env
#   scripts/brokers.sh down WORKDIR          stop both (SIGTERM, then SIGKILL after 30 s)
#   scripts/brokers.sh status WORKDIR        print what runs
#   scripts/brokers.sh start kafka|nats WORKDIR   (re)start one broker on the same ports and data (fault tests)
#   scripts/brokers.sh stop  kafka|nats WORKDIR   stop one broker gracefully
#   scripts/brokers.sh kill  kafka|nats WORKDIR   SIGKILL one broker
#   scripts/brokers.sh fetch                 only fill the cache (nats-server binary, Kafka jars)
#
# After `up`:  . WORKDIR/env   exports TAGSTREAM_KAFKA_BROKERS, TAGSTREAM_NATS_URL, TAGSTREAM_NATS_SERVER_BIN,
# TAGSTREAM_KAFKA_HOME, TAGSTREAM_KAFKA_CTL, TAGSTREAM_NATS_CTL, TAGSTREAM_BROKERS_DIR and TAGSTREAM_INTEGRATION=1.
#
# Cache: ${TAGSTREAM_CACHE:-$HOME/.cache/tagstream} holds the nats-server binary (go install, pinned) and the Kafka
# jars (mvn dependency:copy-dependencies on scripts/kafka/pom.xml, with a Maven repository inside the cache), so a
# later run needs no network. Versions: TAGSTREAM_KAFKA_VERSION (default below), NATS_SERVER_VERSION.
# Kafka heap: TAGSTREAM_KAFKA_HEAP (default -Xms256m -Xmx512m).
set -euo pipefail

KAFKA_VERSION="${TAGSTREAM_KAFKA_VERSION:-4.1.1}"
NATS_SERVER_VERSION="${TAGSTREAM_NATS_SERVER_VERSION:-v2.15.2}"
KAFKA_HEAP="${TAGSTREAM_KAFKA_HEAP:--Xms256m -Xmx512m}"
KAFKA_READY_TIMEOUT="${TAGSTREAM_KAFKA_READY_TIMEOUT:-180s}"
NATS_READY_TIMEOUT="${TAGSTREAM_NATS_READY_TIMEOUT:-60s}"

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPTS/.." && pwd)"
CACHE="${TAGSTREAM_CACHE:-$HOME/.cache/tagstream}"
NATS_BIN_DIR="$CACHE/nats-server-$NATS_SERVER_VERSION/bin"
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"

log() { printf '[brokers %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------------------------
# Cache: nats-server, Kafka jars, brokercheck.

fetch_nats() {
	if [[ -x "$NATS_BIN_DIR/nats-server" ]] && "$NATS_BIN_DIR/nats-server" --version 2>/dev/null | grep -q "${NATS_SERVER_VERSION}"; then
		return 0
	fi
	command -v go >/dev/null || die "go is not on PATH: cannot build nats-server"
	log "building nats-server $NATS_SERVER_VERSION into $NATS_BIN_DIR (go install)"
	mkdir -p "$NATS_BIN_DIR"
	# Outside the module (cd /) so that the pinned version and its own go.mod decide, not ours.
	(cd / && GOBIN="$NATS_BIN_DIR" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION") ||
		die "go install github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION failed"
	[[ -x "$NATS_BIN_DIR/nats-server" ]] || die "nats-server not found in $NATS_BIN_DIR after go install"
}

fetch_kafka() {
	if [[ -f "$KAFKA_HOME/.complete" ]]; then
		write_kafka_wrappers
		return 0
	fi
	command -v java >/dev/null || die "java is not on PATH: Kafka $KAFKA_VERSION needs Java 17+"
	command -v mvn >/dev/null || die "mvn is not on PATH: it fetches the Kafka jars from Maven Central"
	local jv
	jv="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
	[[ "${jv%%.*}" -ge 17 ]] 2>/dev/null || die "Kafka $KAFKA_VERSION needs Java 17+, found '${jv:-unknown}'"
	log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_HOME/libs (mvn)"
	rm -rf "$KAFKA_HOME/libs.tmp"
	mkdir -p "$KAFKA_HOME"
	if ! mvn -B -q -f "$SCRIPTS/kafka/pom.xml" \
		-Dkafka.version="$KAFKA_VERSION" \
		-Dmaven.repo.local="$CACHE/m2" \
		dependency:copy-dependencies -DoutputDirectory="$KAFKA_HOME/libs.tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
		tail -n 40 "$KAFKA_HOME/mvn.log" >&2
		die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log: $KAFKA_HOME/mvn.log)"
	fi
	ls "$KAFKA_HOME/libs.tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 ||
		die "mvn finished but kafka_2.13-$KAFKA_VERSION.jar is missing from $KAFKA_HOME/libs.tmp"
	rm -rf "$KAFKA_HOME/libs"
	mv "$KAFKA_HOME/libs.tmp" "$KAFKA_HOME/libs"
	write_kafka_wrappers
	date -u +%FT%TZ >"$KAFKA_HOME/.complete"
}

# write_kafka_wrappers puts the distribution's two entry points into $KAFKA_HOME/bin, so that a Go test can start a
# broker from TAGSTREAM_KAFKA_HOME alone: bin/kafka-storage.sh format ..., bin/kafka-server-start.sh server.properties.
write_kafka_wrappers() {
	mkdir -p "$KAFKA_HOME/bin"
	# Written to a temporary file and renamed, so a concurrent run that is executing the old copy is not disturbed.
	cat >"$KAFKA_HOME/bin/kafka-server-start.sh.tmp" <<'EOF'
#!/usr/bin/env bash
# Starts kafka.Kafka with the given server.properties in the foreground. KAFKA_HEAP_OPTS and KAFKA_LOG4J_CONFIG
# (a log4j2 properties file) are honoured.
set -euo pipefail
home="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log4j=()
[[ -n "${KAFKA_LOG4J_CONFIG:-}" ]] && log4j=("-Dlog4j2.configurationFile=$KAFKA_LOG4J_CONFIG")
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseSerialGC -XX:-UsePerfData -Djava.awt.headless=true \
	"${log4j[@]}" -cp "$home/libs/*" kafka.Kafka "$@"
EOF
	cat >"$KAFKA_HOME/bin/kafka-storage.sh.tmp" <<'EOF'
#!/usr/bin/env bash
# Runs kafka.tools.StorageTool, e.g. `kafka-storage.sh format -t <cluster-id> -c server.properties --standalone`.
set -euo pipefail
home="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log4j=()
[[ -n "${KAFKA_LOG4J_CONFIG:-}" ]] && log4j=("-Dlog4j2.configurationFile=$KAFKA_LOG4J_CONFIG")
exec java -Xmx256m -XX:+UseSerialGC -XX:-UsePerfData "${log4j[@]}" -cp "$home/libs/*" kafka.tools.StorageTool "$@"
EOF
	chmod +x "$KAFKA_HOME/bin/kafka-server-start.sh.tmp" "$KAFKA_HOME/bin/kafka-storage.sh.tmp"
	mv -f "$KAFKA_HOME/bin/kafka-server-start.sh.tmp" "$KAFKA_HOME/bin/kafka-server-start.sh"
	mv -f "$KAFKA_HOME/bin/kafka-storage.sh.tmp" "$KAFKA_HOME/bin/kafka-storage.sh"
}

# fetch_locked fills the cache under a lock, so that concurrent runs (a developer's and CI's) do not fetch into the
# same folders at once.
fetch_locked() {
	mkdir -p "$CACHE"
	if command -v flock >/dev/null; then
		exec 9>"$CACHE/.lock"
		flock 9
		fetch_nats
		fetch_kafka
		exec 9>&-
	else
		fetch_nats
		fetch_kafka
	fi
}

build_brokercheck() {
	local w="$1"
	mkdir -p "$w/bin"
	(cd "$REPO" && go build -o "$w/bin/brokercheck" ./scripts/brokercheck) || die "building scripts/brokercheck failed"
}

# ---------------------------------------------------------------------------------------------------------------
# Processes. Each broker's pid is in WORKDIR/<name>/pid; a pid is only signalled if its command line still names
# WORKDIR, so a recycled pid is never hit.

pid_alive() { # name workdir
	local pidf="$2/$1/pid" pid
	[[ -f "$pidf" ]] || return 1
	pid="$(cat "$pidf")"
	[[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2/$1" || return 1
	echo "$pid"
}

stop_one() { # name workdir signal
	local name="$1" w="$2" sig="${3:-TERM}" pid i
	if ! pid="$(pid_alive "$name" "$w")"; then
		rm -f "$w/$name/pid"
		return 0
	fi
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		[[ -d "/proc/$pid" ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || break
		sleep 0.1
	done
	if [[ -d "/proc/$pid" ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
		log "$name (pid $pid) did not stop within 30 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$w/$name/pid"
	log "$name stopped (pid $pid, SIG$sig)"
}

show_log_tail() { # file
	[[ -f "$1" ]] || return 0
	echo "----- last 60 lines of $1 -----" >&2
	tail -n 60 "$1" >&2
	echo "----- end of $1 -----" >&2
}

start_nats() { # workdir
	local w="$1" port
	port="$(cat "$w/nats/port")"
	if pid_alive nats "$w" >/dev/null; then
		log "nats-server already running"
		return 0
	fi
	mkdir -p "$w/nats/data"
	nohup "$NATS_BIN_DIR/nats-server" -js -sd "$w/nats/data" -a 127.0.0.1 -p "$port" \
		-n "tagstream-test" -l "$w/nats/nats.log" </dev/null >"$w/nats/stdout.log" 2>&1 &
	echo $! >"$w/nats/pid"
	if ! "$w/bin/brokercheck" nats -url "nats://127.0.0.1:$port" -timeout "$NATS_READY_TIMEOUT" -pid "$(cat "$w/nats/pid")" >&2; then
		show_log_tail "$w/nats/stdout.log"
		show_log_tail "$w/nats/nats.log"
		stop_one nats "$w" KILL
		die "nats-server did not become ready on 127.0.0.1:$port"
	fi
}

configure_kafka() { # workdir
	local w="$1" kport cport
	kport="$(cat "$w/kafka/port")"
	cport="$(cat "$w/kafka/controller-port")"
	mkdir -p "$w/kafka/data"
	cat >"$w/kafka/server.properties" <<EOF
# Single combined KRaft node for tagstream's tests (written by scripts/brokers.sh).
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$kport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$kport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:$cport
log.dirs=$w/kafka/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Tests create their topics (3 partitions, keyed by tag); auto-creation stays on for ad-hoc clients.
auto.create.topics.enable=true
delete.topic.enable=true
log.flush.interval.messages=9223372036854775807
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
EOF
	cat >"$w/kafka/log4j2.properties" <<EOF
# Broker logs go to a file in the work dir (shown by the scripts on failure), not to the test output.
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $w/kafka/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
EOF
}

format_kafka() { # workdir
	local w="$1" cid
	[[ -f "$w/kafka/data/meta.properties" ]] && return 0
	# A cluster id is 16 random bytes in unpadded base64url (what `kafka-storage.sh random-uuid` prints).
	cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
	if ! KAFKA_LOG4J_CONFIG="$w/kafka/log4j2.properties" "$KAFKA_HOME/bin/kafka-storage.sh" format \
		-t "$cid" -c "$w/kafka/server.properties" --standalone >"$w/kafka/format.log" 2>&1; then
		show_log_tail "$w/kafka/format.log"
		die "kafka storage format failed (log: $w/kafka/format.log)"
	fi
}

start_kafka() { # workdir
	local w="$1" kport
	kport="$(cat "$w/kafka/port")"
	if pid_alive kafka "$w" >/dev/null; then
		log "kafka already running"
		return 0
	fi
	format_kafka "$w"
	KAFKA_HEAP_OPTS="$KAFKA_HEAP" KAFKA_LOG4J_CONFIG="$w/kafka/log4j2.properties" \
		nohup "$KAFKA_HOME/bin/kafka-server-start.sh" "$w/kafka/server.properties" \
		</dev/null >"$w/kafka/stdout.log" 2>&1 &
	echo $! >"$w/kafka/pid"
	if ! "$w/bin/brokercheck" kafka -addr "127.0.0.1:$kport" -timeout "$KAFKA_READY_TIMEOUT" -pid "$(cat "$w/kafka/pid")" >&2; then
		show_log_tail "$w/kafka/stdout.log"
		show_log_tail "$w/kafka/server.log"
		stop_one kafka "$w" KILL
		die "kafka did not become ready on 127.0.0.1:$kport"
	fi
}

write_env() { # workdir
	local w="$1"
	cat >"$w/env.tmp" <<EOF
# Written by scripts/brokers.sh up $w — source it: . $w/env
export TAGSTREAM_KAFKA_BROKERS=127.0.0.1:$(cat "$w/kafka/port")
export TAGSTREAM_NATS_URL=nats://127.0.0.1:$(cat "$w/nats/port")
export TAGSTREAM_NATS_SERVER_BIN=$NATS_BIN_DIR/nats-server
export TAGSTREAM_KAFKA_HOME=$KAFKA_HOME
export TAGSTREAM_KAFKA_VERSION=$KAFKA_VERSION
export TAGSTREAM_BROKERS_DIR=$w
export TAGSTREAM_KAFKA_CTL=$SCRIPTS/kafka-ctl.sh
export TAGSTREAM_NATS_CTL=$SCRIPTS/nats-ctl.sh
export TAGSTREAM_INTEGRATION=1
EOF
	mv "$w/env.tmp" "$w/env"
}

abs_dir() { # path -> absolute path (created)
	mkdir -p "$1"
	(cd "$1" && pwd)
}

need_workdir() { # workdir
	[[ -f "$1/kafka/port" && -f "$1/nats/port" ]] || die "$1 is not a broker work dir (run: $0 up $1)"
}

cmd_up() {
	local w
	w="$(abs_dir "$1")"
	if pid_alive kafka "$w" >/dev/null || pid_alive nats "$w" >/dev/null; then
		die "brokers already run in $w (scripts/brokers.sh down $w first)"
	fi
	local t0=$SECONDS
	fetch_locked
	build_brokercheck "$w"
	log "cache ready in $((SECONDS - t0)) s ($CACHE)"
	mkdir -p "$w/kafka" "$w/nats"
	local ports
	mapfile -t ports < <("$w/bin/brokercheck" ports 3)
	[[ ${#ports[@]} -eq 3 ]] || die "could not find free loopback ports"
	echo "${ports[0]}" >"$w/kafka/port"
	echo "${ports[1]}" >"$w/kafka/controller-port"
	echo "${ports[2]}" >"$w/nats/port"
	configure_kafka "$w"
	local t1=$SECONDS
	# Each start waits for a real round trip (brokercheck), never a sleep.
	start_nats "$w"
	start_kafka "$w"
	write_env "$w"
	log "kafka 127.0.0.1:${ports[0]} (Apache Kafka $KAFKA_VERSION, KRaft) and nats-server 127.0.0.1:${ports[2]} ($NATS_SERVER_VERSION, JetStream) ready in $((SECONDS - t1)) s"
	log "env: . $w/env"
}

cmd_down() {
	local w
	[[ -d "$1" ]] || return 0
	w="$(cd "$1" && pwd)"
	stop_one kafka "$w" TERM
	stop_one nats "$w" TERM
}

cmd_status() {
	local w pid
	w="$(cd "$1" && pwd)"
	for b in kafka nats; do
		if pid="$(pid_alive "$b" "$w")"; then
			echo "$b: running, pid $pid, port $(cat "$w/$b/port")"
		else
			echo "$b: stopped"
		fi
	done
}

cmd_one() { # action broker workdir
	local action="$1" broker="$2" w
	need_workdir "$3"
	w="$(cd "$3" && pwd)"
	case "$broker" in kafka | nats) ;; *) die "unknown broker '$broker' (kafka or nats)" ;; esac
	case "$action" in
	start)
		[[ -x "$w/bin/brokercheck" ]] || build_brokercheck "$w"
		if [[ "$broker" == kafka ]]; then
			[[ -f "$KAFKA_HOME/.complete" ]] || fetch_locked
			start_kafka "$w"
		else
			[[ -x "$NATS_BIN_DIR/nats-server" ]] || fetch_locked
			start_nats "$w"
		fi
		;;
	stop) stop_one "$broker" "$w" TERM ;;
	kill) stop_one "$broker" "$w" KILL ;;
	esac
}

usage() {
	sed -n '2,20p' "$0" >&2
	exit 2
}

main() {
	[[ $# -ge 1 ]] || usage
	case "$1" in
	up) [[ $# -eq 2 ]] || usage; cmd_up "$2" ;;
	down) [[ $# -eq 2 ]] || usage; cmd_down "$2" ;;
	status) [[ $# -eq 2 ]] || usage; cmd_status "$2" ;;
	start | stop | kill) [[ $# -eq 3 ]] || usage; cmd_one "$1" "$2" "$3" ;;
	fetch) fetch_locked ;;
	*) usage ;;
	esac
}

main "$@"
