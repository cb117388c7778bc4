#!/bin/bash
# One-shot job of docker-compose.cockroach.yml (official cockroachdb/cockroach image):
# initialises the three-node cluster once and creates the application database.
# Safe to run again: an already initialised cluster and an existing database are fine.
set -eo pipefail

: "${COCKROACH_INIT_HOST:=cockroach1:26257}"
: "${COCKROACH_DATABASE:=meter_intake}"

for attempt in $(seq 1 60); do
  if out=$(cockroach init --insecure --host="$COCKROACH_INIT_HOST" 2>&1); then
    echo "cockroach-init: cluster initialised"
    break
  fi
  if grep -qi 'already been initialized' <<<"$out"; then
    echo "cockroach-init: cluster was already initialised"
    break
  fi
  if [ "$attempt" = 60 ]; then
    echo "cockroach-init: giving up: $out" >&2
    exit 1
  fi
  sleep 2
done

for attempt in $(seq 1 60); do
  if cockroach sql --insecure --host="$COCKROACH_INIT_HOST" \
       --execute="CREATE DATABASE IF NOT EXISTS ${COCKROACH_DATABASE}"; then
    echo "cockroach-init: database ${COCKROACH_DATABASE} ready"
    exit 0
  fi
  sleep 2
done
echo "cockroach-init: could not create database ${COCKROACH_DATABASE}" >&2
exit 1
