#!/usr/bin/env bash
# System packages the tests need that pip cannot install, from Debian, only when missing:
# - Chromium, for the browser tests (tests/test_browser.py) and bench/bench_map.py;
# - PostgreSQL 15 with PostGIS 3, for the PostGIS store's tests (tests/pg.py), started on loopback
#   with a role and an empty database for the tests (postgresql://geo:geo@127.0.0.1:5432/geo_test).
# Installing needs root and apt-get; otherwise it says what is missing and those tests skip (or fail in
# CI, where GEO_REQUIRE_ALL=1).
set -euo pipefail
PG=15
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x "/usr/lib/postgresql/$PG/bin/postgres" ] || missing+=("postgresql-$PG")
[ -f "/usr/share/postgresql/$PG/extension/postgis.control" ] || missing+=("postgresql-$PG-postgis-3")
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "system-deps: installing ${missing[*]} from Debian" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "system-deps: missing ${missing[*]}; as root run: apt-get install ${missing[*]}" >&2
        exit 0
    fi
fi
# A cluster on loopback for the PostGIS tests (no systemd here: pg_ctlcluster starts it directly).
if [ "$(id -u)" -eq 0 ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    if ! pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -qx "$PG main"; then
        pg_createcluster "$PG" main >/dev/null
    fi
    if ! pg_lsclusters -h | awk -v v="$PG" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
        pg_ctlcluster --skip-systemctl-redirect "$PG" main start
    fi
    su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL'
SELECT 'CREATE ROLE geo LOGIN SUPERUSER PASSWORD ''geo'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo') \gexec
SELECT 'CREATE DATABASE geo_test OWNER geo'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'geo_test') \gexec
SQL
    su postgres -c "PGOPTIONS='-c client_min_messages=warning' psql -q -d geo_test -c 'CREATE EXTENSION IF NOT EXISTS postgis'"
fi
