#!/bin/sh
# Billing's own role and database next to the monolith's, on the PostgreSQL server's first
# start (the postgres image runs /docker-entrypoint-initdb.d/*.sh once, on an empty data
# directory). Used by docker-compose.yml and the Kubernetes local overlay.
#
# The role owns only its database and cannot connect to the monolith's: each service keeps its
# own tables (issue #11). The password comes from a mounted secret, never from this file:
# BILLING_DB_PASSWORD_FILE (default /run/secrets/billing_db_password).
set -eu

password_file="${BILLING_DB_PASSWORD_FILE:-/run/secrets/billing_db_password}"
password="$(cat "$password_file")"

# psql variables (:'password', :"db") quote the values; the heredoc is not expanded by the shell.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$password" -v monolith_db="$POSTGRES_DB" <<'SQL'
CREATE ROLE billing LOGIN PASSWORD :'password';
CREATE DATABASE billing OWNER billing;
REVOKE ALL ON DATABASE billing FROM PUBLIC;
REVOKE CONNECT ON DATABASE :"monolith_db" FROM PUBLIC;
SQL
