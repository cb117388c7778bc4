#!/bin/bash
# Runs once, when the official postgres image initialises an empty data volume
# (/docker-entrypoint-initdb.d). Prepares the primary for the streaming replica:
# a replication role, a physical replication slot and a pg_hba.conf line for it.
# docker/postgres/replica/entrypoint.sh takes the replica's base backup through these.
set -eo pipefail

: "${REPLICATION_USER:?REPLICATION_USER must be set}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set}"
: "${REPLICATION_SLOT:=replica1}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
  -v repl_user="$REPLICATION_USER" -v repl_password="$REPLICATION_PASSWORD" -v slot="$REPLICATION_SLOT" <<'SQL'
CREATE ROLE :"repl_user" WITH REPLICATION LOGIN PASSWORD :'repl_password';
SELECT pg_create_physical_replication_slot(:'slot');
SQL

# Replication connections only for that role, from anywhere on the compose network, with a password.
echo "host replication ${REPLICATION_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
echo "primary: replication role '${REPLICATION_USER}' and slot '${REPLICATION_SLOT}' created"
