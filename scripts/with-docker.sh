#!/usr/bin/env bash
# Runs a command with a Docker daemon: the one that already answers, else a dockerd started for this command and
# stopped by its pid when the command ends (also when it fails). Without root or without dockerd the command runs
# anyway, and the image and real-node tests skip with that reason.
#
#   scripts/with-docker.sh make test-inner
#
# The daemon is started as this machine kind needs it: no iptables and no default bridge (containers use the
# host's network or none), its log in $ANCHOR_CACHE/dockerd.log.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exec "$@"
fi
if [[ $EUID -ne 0 ]] || ! command -v dockerd >/dev/null; then
  echo "with-docker: no Docker daemon answers and none can be started here (needs root and dockerd);" \
    "the image and real-node tests will skip" >&2
  exec "$@"
fi

CACHE="${ANCHOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/anchor}"
mkdir -p "$CACHE"
log="$CACHE/dockerd.log"
dockerd --iptables=false --ip-masq=false --bridge=none --pidfile "$CACHE/dockerd.pid" >"$log" 2>&1 &
daemon=$!
# shellcheck disable=SC2329  # called by the EXIT trap
stop() {
  kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 1 120); do
  docker info >/dev/null 2>&1 && break
  kill -0 "$daemon" 2>/dev/null || { echo "with-docker: dockerd exited; see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
  sleep 0.5  # polling the daemon's socket until it answers
done
docker info >/dev/null 2>&1 || { echo "with-docker: dockerd did not answer within 60 s; see $log" >&2; exit 1; }
echo "with-docker: started dockerd (pid $daemon) for this command" >&2
# The command runs in the background so that a SIGTERM, SIGHUP or Ctrl-C here (make forwards SIGTERM to this script)
# reaches it too, and this script stops the daemon only once the command has finished its own teardown.
"$@" &
command=$!
trap 'kill -TERM "$command" 2>/dev/null || true' TERM HUP INT
status=0
while kill -0 "$command" 2>/dev/null; do
  wait "$command" && status=0 || status=$?  # a trapped signal ends the wait early: wait again until it is done
done
exit "$status"
