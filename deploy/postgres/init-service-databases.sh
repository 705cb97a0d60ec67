#!/bin/sh
# The services' own roles and databases next to the monolith's (billing; realtime, the live
# groups' store), on the PostgreSQL server's first start (the postgres image runs
# /docker-entrypoint-initdb.d/*.sh once, on an empty data directory). Used by
# docker-compose.yml and the Kubernetes local overlay. A server that started before a service
# was added needs its database made by hand (the same statements, see README "Real time").
#
# Each role owns only its database and cannot connect to the others': each service keeps its
# own tables (issue #11). The passwords come from mounted secrets, never from this file:
# <SERVICE>_DB_PASSWORD_FILE (default /run/secrets/<service>_db_password).
set -eu

password_file() {
    case "$1" in
        billing) echo "${BILLING_DB_PASSWORD_FILE:-/run/secrets/billing_db_password}" ;;
        realtime) echo "${REALTIME_DB_PASSWORD_FILE:-/run/secrets/realtime_db_password}" ;;
        *) echo "no password file for $1" >&2; exit 1 ;;
    esac
}

for service in billing realtime; do
    password="$(cat "$(password_file "$service")")"
    # psql variables (:'password', :"service") quote the values; the heredoc is not expanded
    # by the shell.
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -v password="$password" -v service="$service" <<'SQL'
CREATE ROLE :"service" LOGIN PASSWORD :'password';
CREATE DATABASE :"service" OWNER :"service";
REVOKE ALL ON DATABASE :"service" FROM PUBLIC;
SQL
done

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v monolith_db="$POSTGRES_DB" <<'SQL'
REVOKE CONNECT ON DATABASE :"monolith_db" FROM PUBLIC;
SQL
