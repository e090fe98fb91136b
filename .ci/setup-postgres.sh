# Sourced by .ci/run: Debian's PostgreSQL server programs for the service's tests
# (tests/service_db.py starts a throwaway server with initdb + pg_ctl in a temp folder, as the
# `postgres` user when run as root). Installs the package when missing; exports where it is.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
fi
AVATARGEN_PG_BIN="$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -1)")"
export AVATARGEN_PG_BIN
