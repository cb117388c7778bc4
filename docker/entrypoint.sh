#!/bin/sh
# Entry point of the meter-intake image: the first argument names the process.
#   api      the HTTP API            (node dist/apps/api/src/main.js)
#   writer   the queue writer        (node dist/apps/writer/src/main.js)
#   migrate  migrations, then exit   (node dist/libs/database/src/migrate.main.js)
#   loadgen  the load generator      (node dist/apps/loadgen/src/main.js, arguments passed on)
#   clients  clients and their keys  (node dist/apps/clients/src/main.js: create, list, revoke)
# Anything else is run as a command (for example `sh`).
set -eu
cd /app

role="${1:-api}"
[ "$#" -gt 0 ] && shift

# The health probe (docker/probe.mjs) reads which process this container runs.
remember() { printf '%s\n' "$1" > /tmp/meter-intake.role 2>/dev/null || true; }

case "$role" in
  api)
    # Under --scale every replica has the same environment: name each one after its
    # container (the hostname is the short container id) unless REPLICA_NAME is set.
    REPLICA_NAME="${REPLICA_NAME:-$(hostname)}"
    export REPLICA_NAME
    remember api
    exec node dist/apps/api/src/main.js "$@"
    ;;
  writer)
    remember writer
    exec node dist/apps/writer/src/main.js "$@"
    ;;
  migrate)
    remember migrate
    exec node dist/libs/database/src/migrate.main.js "$@"
    ;;
  loadgen)
    remember loadgen
    exec node dist/apps/loadgen/src/main.js "$@"
    ;;
  clients)
    remember clients
    exec node dist/apps/clients/src/main.js "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
