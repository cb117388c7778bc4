#!/bin/bash
# Entry point of the streaming hot-standby replica (official postgres image).
# On an empty data volume it takes a base backup of the primary over the replication slot,
# with -R so the copy starts as a standby following the primary; then (and on every later
# start) it hands over to the image's own entry point, which finds the data already there
# and starts postgres with the command's arguments.
set -eo pipefail

: "${PRIMARY_HOST:=postgres}"
: "${PRIMARY_PORT:=5432}"
: "${REPLICATION_USER:?REPLICATION_USER must be set}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set}"
: "${REPLICATION_SLOT:=replica1}"
: "${PGDATA:=/var/lib/postgresql/data}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "replica: empty data directory; waiting for the primary at ${PRIMARY_HOST}:${PRIMARY_PORT}"
  for _ in $(seq 1 120); do
    pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" && break
    sleep 1
  done
  mkdir -p "$PGDATA"
  # pg_basebackup wants an empty directory; a half-finished earlier attempt is discarded.
  find "$PGDATA" -mindepth 1 -delete
  echo "replica: base backup from ${PRIMARY_HOST} over slot ${REPLICATION_SLOT}"
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
    --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" \
    --pgdata="$PGDATA" --slot="$REPLICATION_SLOT" --wal-method=stream \
    --write-recovery-conf --checkpoint=fast --no-password
  chmod 0700 "$PGDATA"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$PGDATA"; fi
  echo "replica: base backup done; starting as a hot standby"
fi

exec docker-entrypoint.sh "$@"
