#!/usr/bin/env bash
# Prints the path of a promtool binary (Prometheus' rule checker) on stdout, installing it into the cache first
# when needed; everything else goes to stderr. scripts/test.sh exports the path as TAGSTREAM_PROMTOOL for the
# tests of deploy/check (`promtool check rules`, `promtool test rules`).
#
# Where promtool comes from, first that works:
#   1. TAGSTREAM_PROMTOOL, when set: that binary, used as it is;
#   2. the cache: ${TAGSTREAM_CACHE:-$HOME/.cache/tagstream}/promtool/bin/promtool;
#   3. Debian's `prometheus` package: downloaded with `apt-get download` (apt-get update first when apt knows no
#      candidate, or when the download fails on stale lists) and only /usr/bin/promtool extracted from it; nothing
#      is installed, no service is started (measured: 4 s; 7 s on a fresh machine without package lists);
#   4. `go install github.com/prometheus/prometheus/cmd/promtool@$TAGSTREAM_PROMTOOL_GO_VERSION` (default below),
#      for machines without apt: slow (8 min on 2 busy cores, 1.8 GB of modules: it compiles all of Prometheus'
#      service discovery).
# TAGSTREAM_PROMTOOL_FROM=debian|go forces one of 3 and 4. The binary must be promtool 2.42 or newer.
#
#   scripts/promtool.sh            print the path (install when missing)
#   scripts/promtool.sh --version  print the path, and promtool's version on stderr
set -euo pipefail

GO_VERSION="${TAGSTREAM_PROMTOOL_GO_VERSION:-v0.316.0}"
CACHE="${TAGSTREAM_CACHE:-$HOME/.cache/tagstream}"
DIR="$CACHE/promtool"
BIN="$DIR/bin/promtool"

log() { printf 'promtool.sh: %s\n' "$*" >&2; }

# usable BIN reports whether BIN runs as promtool, 2.42 or newer (a build by go install carries no version number).
usable() {
	local out v
	out="$("$1" --version 2>/dev/null | head -n 1)" || return 1
	[[ $out == "promtool, version "* ]] || return 1
	v="$(sed -n 's/^promtool, version \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p' <<<"$out")"
	[[ -n $v ]] || return 0
	set -- $v
	((${1} > 2 || (${1} == 2 && ${2} >= 42)))
}

done_with() {
	if [[ "${SHOW_VERSION:-}" == 1 ]]; then
		"$1" --version | head -n 1 >&2
	fi
	echo "$1"
	exit 0
}

[[ "${1:-}" == --version ]] && SHOW_VERSION=1

if [[ -n "${TAGSTREAM_PROMTOOL:-}" ]]; then
	usable "$TAGSTREAM_PROMTOOL" || { log "TAGSTREAM_PROMTOOL=$TAGSTREAM_PROMTOOL is not promtool 2.42 or newer"; exit 1; }
	done_with "$TAGSTREAM_PROMTOOL"
fi
if [[ -x $BIN ]] && usable "$BIN"; then
	done_with "$BIN"
fi

mkdir -p "$DIR/bin"
exec 9>"$DIR/.lock"
flock 9 # another run may be filling the cache: wait for it, then look again
if [[ -x $BIN ]] && usable "$BIN"; then
	done_with "$BIN"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/promtool.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

candidate() { apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}'; }

from_debian() {
	command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { log "no apt-get/dpkg-deb here"; return 1; }
	local v updated=0
	v="$(candidate)"
	if [[ -z $v || $v == "(none)" ]]; then
		log "apt knows no prometheus package: apt-get update"
		apt-get update -qq >&2 || return 1
		updated=1
		v="$(candidate)"
		[[ -n $v && $v != "(none)" ]] || { log "Debian has no prometheus package here"; return 1; }
	fi
	chmod 0777 "$WORK" # apt-get download drops privileges to _apt when run as root
	if ! (cd "$WORK" && apt-get download -qq "prometheus=$v" >&2); then
		((updated == 0)) || return 1
		log "download failed (stale package lists?): apt-get update and retry"
		apt-get update -qq >&2 || return 1
		v="$(candidate)"
		(cd "$WORK" && apt-get download -qq "prometheus=$v" >&2) || return 1
	fi
	dpkg-deb --fsys-tarfile "$WORK"/prometheus_*.deb | tar -x -C "$WORK" ./usr/bin/promtool || return 1
	install -m 0755 "$WORK/usr/bin/promtool" "$BIN.new" && mv -f "$BIN.new" "$BIN"
	echo "debian prometheus $v" >"$DIR/source"
}

from_go() {
	command -v go >/dev/null || { log "no go here"; return 1; }
	log "go install github.com/prometheus/prometheus/cmd/promtool@$GO_VERSION (several minutes)"
	GOBIN="$WORK/bin" go install "github.com/prometheus/prometheus/cmd/promtool@$GO_VERSION" >&2 || return 1
	install -m 0755 "$WORK/bin/promtool" "$BIN.new" && mv -f "$BIN.new" "$BIN"
	echo "go install github.com/prometheus/prometheus/cmd/promtool@$GO_VERSION" >"$DIR/source"
}

start=$SECONDS
case "${TAGSTREAM_PROMTOOL_FROM:-}" in
debian) from_debian ;;
go) from_go ;;
"") from_debian || { log "Debian's promtool is not to be had here; building it"; from_go; } ;;
*) log "TAGSTREAM_PROMTOOL_FROM=$TAGSTREAM_PROMTOOL_FROM: want debian or go"; exit 2 ;;
esac
usable "$BIN" || { log "$BIN is not promtool 2.42 or newer"; exit 1; }
log "installed $BIN ($(cat "$DIR/source")) in $((SECONDS - start)) s"
done_with "$BIN"
