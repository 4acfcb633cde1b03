#!/usr/bin/env bash
# Entrypoint of the lab mariadb image, with the interface of the official image's:
#   - started as root: create the data and socket directories for user mysql, then re-run as mysql;
#   - first start only (no mysql/ in the data directory): mariadb-install-db, then a socket-only
#     temporary server started with the container's own arguments sets the root password
#     (MARIADB_ROOT_PASSWORD, root@localhost plus root@MARIADB_ROOT_HOST, default %), creates the
#     healthcheck users and /var/lib/mysql/.my-healthcheck.cnf, MARIADB_DATABASE and
#     MARIADB_USER/MARIADB_PASSWORD, and runs /docker-entrypoint-initdb.d/*.sql|*.sh;
#   - then exec the command (`mariadbd ...`).
# Every MARIADB_* variable may be given as MARIADB_*_FILE instead.
set -Eeuo pipefail

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

note() { echo "$(date --rfc-3339=seconds) [Note] [Entrypoint]: $*"; }
error() { echo >&2 "$(date --rfc-3339=seconds) [ERROR] [Entrypoint]: $*"; exit 1; }

# file_env VAR [DEFAULT]: VAR from the environment or from the file named by VAR_FILE.
file_env() {
  local var=$1 fvar="${1}_FILE" def=${2:-} val
  if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then error "both $var and $fvar are set (but are exclusive)"; fi
  val=$def
  if [ -n "${!var:-}" ]; then val=${!var}; elif [ -n "${!fvar:-}" ]; then val=$(<"${!fvar}"); fi
  export "$var"="$val"
  unset "$fvar"
}

# SQL string literal of $1 (backslashes and quotes escaped).
sql_escape() { local s=${1//\\/\\\\}; s=${s//\'/\\\'}; printf "'%s'" "$s"; }
# SQL identifier of $1.
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

setup_env() {
  file_env MARIADB_ROOT_PASSWORD
  file_env MARIADB_ROOT_HOST %
  file_env MARIADB_DATABASE
  file_env MARIADB_USER
  file_env MARIADB_PASSWORD
  file_env MARIADB_ALLOW_EMPTY_ROOT_PASSWORD
}

temp_server_start() {
  "$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" --wsrep_on=OFF \
    --expire-logs-days=0 --skip-slave-start --loose-innodb_buffer_pool_load_at_startup=0 &
  TEMP_PID=$!
  local i
  for i in $(seq 60); do
    if mariadb --no-defaults --protocol=socket --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1; then return; fi
    kill -0 "$TEMP_PID" 2>/dev/null || error "the temporary server exited during initialisation"
    sleep 1
  done
  error "the temporary server did not start in 60 s"
}

temp_server_stop() {
  kill "$TEMP_PID"
  wait "$TEMP_PID" || true
}

sql() { mariadb --no-defaults --protocol=socket --socket="$SOCKET" -uroot --binary-mode "$@"; }

init_database() {
  if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ]; then
    error "the database is uninitialised and no root password is set: set MARIADB_ROOT_PASSWORD (or MARIADB_ROOT_PASSWORD_FILE)"
  fi
  note "initialising the database in $DATADIR"
  mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal --skip-test-db \
    --default-time-zone=SYSTEM --skip-log-bin --expire-logs-days=0 \
    --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0 >/dev/null
  temp_server_start "$@"

  local hc_password root_pw statements
  hc_password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  root_pw=$(sql_escape "$MARIADB_ROOT_PASSWORD")
  statements="SET @@SESSION.SQL_LOG_BIN=0;
DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname, '\'');
SET PASSWORD FOR 'root'@'localhost' = PASSWORD($root_pw);"
  if [ "$MARIADB_ROOT_HOST" != localhost ]; then
    local rh
    rh=$(sql_escape "$MARIADB_ROOT_HOST")
    statements+="
CREATE USER 'root'@$rh IDENTIFIED BY $root_pw;
GRANT ALL ON *.* TO 'root'@$rh WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@$rh WITH GRANT OPTION;"
  fi
  statements+="
CREATE USER 'healthcheck'@'127.0.0.1' IDENTIFIED BY '$hc_password';
CREATE USER 'healthcheck'@'::1' IDENTIFIED BY '$hc_password';
CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY '$hc_password';"
  if [ -n "$MARIADB_DATABASE" ]; then
    statements+="
CREATE DATABASE IF NOT EXISTS $(sql_ident "$MARIADB_DATABASE");"
  fi
  if [ -n "$MARIADB_USER" ] && [ -n "$MARIADB_PASSWORD" ]; then
    statements+="
CREATE USER $(sql_escape "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_escape "$MARIADB_PASSWORD");"
    if [ -n "$MARIADB_DATABASE" ]; then
      statements+="
GRANT ALL ON $(sql_ident "${MARIADB_DATABASE//_/\\_}").* TO $(sql_escape "$MARIADB_USER")@'%';"
    fi
  fi
  sql <<<"$statements"
  (umask 0077 && printf '[mariadb-client]\nport=3306\nsocket=%s\nuser=healthcheck\npassword=%s\n' "$SOCKET" "$hc_password" \
    >"$DATADIR/.my-healthcheck.cnf")

  local f
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh) note "running $f"; bash "$f" ;;
      *.sql) note "running $f"; sql --password="$MARIADB_ROOT_PASSWORD" ${MARIADB_DATABASE:+"$MARIADB_DATABASE"} <"$f" ;;
      *) note "ignoring $f" ;;
    esac
  done
  temp_server_stop
  note "MariaDB init process done; ready for start up"
}

main() {
  if [ "${1:0:1}" = '-' ]; then
    set -- mariadbd "$@"
  fi
  if [ "$1" = mariadbd ] || [ "$1" = mysqld ]; then
    setup_env
    mkdir -p "$DATADIR" "${SOCKET%/*}"
    if [ "$(id -u)" = 0 ]; then
      find "$DATADIR" \! -user mysql -exec chown mysql: '{}' +
      find "${SOCKET%/*}" -maxdepth 0 \! -user mysql -exec chown mysql: '{}' \;
      exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
    fi
    if [ ! -d "$DATADIR/mysql" ]; then
      init_database "$@"
    else
      note "MariaDB data directory appears to contain a database; skipping initialisation"
    fi
  fi
  exec "$@"
}

main "$@"
