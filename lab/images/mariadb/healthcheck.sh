#!/usr/bin/env bash
# Health check of the lab mariadb image, with the options of the official image's healthcheck.sh
# that the mariadb role uses:
#   --connect             the server accepts TCP connections (an access-denied answer counts: the
#                         server is up);
#   --innodb_initialized  InnoDB is up, asked as the healthcheck user of
#                         /var/lib/mysql/.my-healthcheck.cnf (written by the entrypoint).
# Tests run in the order given; the first that fails ends the check with status 1.
set -uo pipefail

CNF=/var/lib/mysql/.my-healthcheck.cnf

connect() {
  local opts=(--no-defaults -uhealthcheck)
  [ -r "$CNF" ] && opts=(--defaults-extra-file="$CNF")
  ! mariadb "${opts[@]}" --skip-ssl -h localhost --protocol tcp -e 'SELECT 1' 2>&1 \
    | grep -qF "Can't connect"
}

innodb_initialized() {
  local out
  out=$(mariadb --defaults-extra-file="$CNF" --skip-ssl -h localhost --protocol tcp --skip-column-names -e \
    "SELECT 1 FROM information_schema.ENGINES WHERE engine='innodb' AND support IN ('YES','DEFAULT','ENABLED')" 2>&1)
  [ "$out" = 1 ]
}

[ $# -gt 0 ] || set -- --connect
for arg in "$@"; do
  case "$arg" in
    --connect) connect || { echo "healthcheck connect failed"; exit 1; } ;;
    --innodb_initialized) innodb_initialized || { echo "healthcheck innodb_initialized failed"; exit 1; } ;;
    --su-mysql|--no-defaults|--defaults-*) ;;
    *) echo "healthcheck.sh: unknown test $arg" >&2; exit 1 ;;
  esac
done
exit 0
