#!/bin/sh
# STAND-IN for the official redis image's docker-entrypoint.sh (test tooling only):
# redis-server arguments as given, /data as the working directory, protected mode off (the
# official image's build turns it off), running as the redis user.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then
  set -- "$@" --protected-mode no
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "$@"
  fi
fi
exec "$@"
