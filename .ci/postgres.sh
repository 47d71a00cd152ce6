#!/usr/bin/env bash
# Ensure a local PostgreSQL (Debian's package) runs on 127.0.0.1 with a test role and
# database; print its URL. Prints nothing (and the PostgreSQL tests skip, saying why)
# when it cannot: no root or sudo, no package mirror.
set -u
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
log() { echo "postgres.sh: $*" >&2; }
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql"
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql; } >/dev/null 2>&1 \
    || { log "could not install postgresql"; exit 0; }
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
  $SUDO pg_createcluster "$version" main >/dev/null 2>&1 || { log "no cluster"; exit 0; }
fi
cluster=$(pg_lsclusters -h | head -1 | awk '{print $1" "$2}')
pg_lsclusters -h | head -1 | grep -q online || $SUDO pg_ctlcluster $cluster start >/dev/null 2>&1 \
  || { log "could not start the cluster"; exit 0; }
port=$(pg_lsclusters -h | head -1 | awk '{print $3}')
psql_() { $SUDO runuser -u postgres -- psql -p "$port" -qtAc "$1" 2>/dev/null; }
for _ in 1 2 3 4 5 6 7 8 9 10; do psql_ "SELECT 1" | grep -q 1 && break; sleep 1; done
psql_ "SELECT 1 FROM pg_roles WHERE rolname='dispatch_test'" | grep -q 1 \
  || psql_ "CREATE ROLE dispatch_test LOGIN PASSWORD 'dispatch_test'" >/dev/null
psql_ "SELECT 1 FROM pg_database WHERE datname='dispatch_test'" | grep -q 1 \
  || psql_ "CREATE DATABASE dispatch_test OWNER dispatch_test" >/dev/null
# CREATEDB: under pytest-xdist each worker makes a database of its own beside this one
# (dispatch_test_gw0, …; tests/conftest.py), so that the PostgreSQL tests run side by side.
psql_ "ALTER ROLE dispatch_test CREATEDB" >/dev/null
echo "postgresql://dispatch_test:dispatch_test@127.0.0.1:${port}/dispatch_test"
