#!/usr/bin/env bash
# A private PostgreSQL cluster on loopback for the test suite and benchmarks.
#   scripts/pg-cluster.sh start DIR   initdb (first time) and start; prints the connection URL
#   scripts/pg-cluster.sh stop DIR    stop it
# fsync is off (a test cluster is thrown away); KEYWARD_PG_FSYNC=on starts one as a deployment runs it.
# Trust authentication on 127.0.0.1 only, for a user "keyward": no password exists to leak.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 64; }

bindir=""
for candidate in /usr/lib/postgresql/*/bin; do
  [ -x "$candidate/initdb" ] && bindir=$candidate
done
[ -n "$bindir" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 69; }

# PostgreSQL refuses to run as root: run its tools as the postgres user when we are root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bindir/initdb" -D "$dir/data" -U keyward --auth=trust --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 70; }
    fi
    fsync=${KEYWARD_PG_FSYNC:-off}
    [ "$fsync" = on ] || [ "$fsync" = off ] || { echo "KEYWARD_PG_FSYNC must be on or off" >&2; exit 64; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=$fsync -c max_connections=200" start >/dev/null
      echo "$port" >"$dir/port"
    fi
    echo "postgres://keyward@127.0.0.1:$(cat "$dir/port")/postgres"
    ;;
  stop)
    [ -d "$dir/data" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 64
    ;;
esac
