#!/usr/bin/env bash
# Era clients of the Instagram v1 API, for the simulator's compatibility test (testenv TestEraClientPythonInstagram):
# python-instagram 1.3.2 (2015, the most used Python client of the time) from PyPI, in a Python 3 virtual
# environment cached under ${TAGSTREAM_CACHE:-$HOME/.cache/tagstream}/era-clients, so later runs need no network.
#
#   scripts/era-clients.sh      make the environment if it is missing or stale, then print its python's path
#
# scripts/test.sh exports that path as TAGSTREAM_ERA_PYTHON; without the variable the Go test looks at the cache
# path itself. Needs python3 (TAGSTREAM_PYTHON overrides) with the venv module, and PyPI for the first run.
# Versions are pinned (the library and the dependencies it declares: httplib2, simplejson, six, and httplib2's
# pyparsing) and installed with --no-deps, so every machine tests the same client. Progress goes to stderr.
set -euo pipefail

CACHE="${TAGSTREAM_CACHE:-$HOME/.cache/tagstream}"
VENV="$CACHE/era-clients/python-instagram-1.3.2"
PYTHON="${TAGSTREAM_PYTHON:-python3}"
REQUIREMENTS=(
	python-instagram==1.3.2
	httplib2==0.32.1
	pyparsing==3.3.3
	simplejson==4.3.0
	six==1.17.0
)

log() { printf '[era-clients %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ready reports whether the environment holds exactly REQUIREMENTS and imports the client.
ready() {
	[[ -f "$VENV/.complete" && "$(cat "$VENV/.complete")" == "$(printf '%s\n' "${REQUIREMENTS[@]}")" ]] &&
		"$VENV/bin/python" -c 'import instagram.client, instagram.bind, httplib2' 2>/dev/null
}

if ! ready; then
	mkdir -p "$CACHE/era-clients"
	if command -v flock >/dev/null; then # concurrent runs (a developer's and CI's) build it once
		exec 8>"$CACHE/era-clients/.lock"
		flock 8
	fi
	if ! ready; then
		command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set TAGSTREAM_PYTHON to a Python 3 interpreter)"
		log "making $VENV with $("$PYTHON" --version 2>&1)"
		rm -rf "$VENV"
		"$PYTHON" -m venv "$VENV" >&2 || die "$PYTHON -m venv failed (on Debian: apt-get install python3-venv)"
		"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${REQUIREMENTS[@]}" >&2 ||
			die "pip install ${REQUIREMENTS[*]} failed"
		"$VENV/bin/python" -c 'import instagram.client, instagram.bind, httplib2' >&2 ||
			die "python-instagram does not import on $("$VENV/bin/python" --version 2>&1)"
		printf '%s\n' "${REQUIREMENTS[@]}" >"$VENV/.complete"
		log "ready: $(printf '%s ' "${REQUIREMENTS[@]}")"
	fi
fi
echo "$VENV/bin/python"
