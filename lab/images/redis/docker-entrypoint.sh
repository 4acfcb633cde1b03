#!/usr/bin/env bash
# Entrypoint of the lab redis image, with the interface of the official image's:
#   - a first argument that is an option or a .conf file means `redis-server <args>`;
#   - `redis-server` started as root: /data is given to user redis, then the server runs as redis.
set -Eeuo pipefail

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
# Like upstream: the server's files are private to redis unless a umask is given.
umask 0077
exec "$@"
