#!/usr/bin/env bash
# The container's entrypoint, and a plain launcher outside a container:
#
#   entrypoint.sh [OPTIONS]        prepare KEYWARD_HOME, then `keyward start` (BOOT, then HTTPS)
#   entrypoint.sh COMMAND [ARGS]   prepare KEYWARD_HOME, then `keyward COMMAND ARGS` (inspect, send, …)
#
# It creates the home's layout (tokens/ and secrets/ private to the user, tls/) and, if
# SOFTHSM2_CONF's file does not exist, a SoftHSM2 configuration whose token directory is the home's
# tokens/. Then it execs node: node replaces this shell, so `docker stop`'s SIGTERM reaches it directly
# and its exit code is the container's (6 on VERSION_DOWNGRADE: the container stops and stays
# stopped; see server/exit-codes.ts). Its own refusals use 7 from the same table. It reads no secret
# and prints none.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cli="$root/dist/server/cli.js"
STARTUP_FAILED=7 # server/exit-codes.ts: "start-up failed; the reason is printed"
say() { echo "keyward entrypoint: $*" >&2; }
fail() {
  say "$*"
  exit "$STARTUP_FAILED"
}

# Root is refused before anything is touched. keyward serves HTTPS to the network and parses
# uploads: as root, one bug there is root in the container. Worse for the keys: token files and the
# PIN file that a root process creates belong to root, so the next start as the image's own user
# cannot read them, and a token it cannot read looks like a lost token (auto-restore) to SoftHSM.
if [ "$(id -u)" = 0 ] && [ "${KEYWARD_ALLOW_ROOT:-}" != 1 ]; then
  fail "refusing to run as root: run as an unprivileged user (the image's user is keyward, uid 10001; docker run --user 10001:10001), or set KEYWARD_ALLOW_ROOT=1 if you accept that files in the home become root's"
fi

[ -f "$cli" ] || fail "$cli is missing: build keyward first (npm run build)"

# Whatever keyward writes (database, TLS keys, PIN file, token files) is for this user alone.
umask 077

# The same defaults as server/config.ts, so that this script and keyward agree on every path.
home=${KEYWARD_HOME:-$root/var}
mkdir -p "$home" 2>/dev/null || fail "cannot create KEYWARD_HOME $home as uid $(id -u)"
home=$(cd "$home" && pwd)
[ -w "$home" ] || fail "KEYWARD_HOME $home is not writable by uid $(id -u) (a volume or bind mount owned by another user? chown it to uid $(id -u))"
tokens="$home/tokens"
secrets=${KEYWARD_SECRETS_DIR:-$home/secrets}
tls=${KEYWARD_TLS_DIR:-$home/tls}
conf=${SOFTHSM2_CONF:-$home/softhsm2.conf}

for dir in "$tokens" "$secrets" "$tls"; do
  mkdir -p "$dir" 2>/dev/null || fail "cannot create $dir as uid $(id -u)"
  # Token files, PIN file and TLS keys: nobody else may list or read them.
  chmod 700 "$dir" 2>/dev/null || fail "cannot make $dir private (mode 0700): it belongs to another user; chown it to uid $(id -u)"
done

if [ ! -e "$conf" ]; then
  mkdir -p "$(dirname "$conf")"
  # Written aside and renamed, so a crash never leaves a half-written configuration behind.
  cat >"$conf.tmp.$$" <<CONF
# Written by keyward's entrypoint: SoftHSM2 keeps keyward's token in the home's token directory.
directories.tokendir = $tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
  mv "$conf.tmp.$$" "$conf"
  say "wrote $conf (token directory $tokens)"
else
  # An existing configuration is the operator's; only say where its tokens are if they are missing.
  tokendir=$(sed -n 's/^[[:space:]]*directories\.tokendir[[:space:]]*=[[:space:]]*//p' "$conf" | tail -n 1)
  if [ -n "$tokendir" ] && [ ! -d "$tokendir" ]; then
    say "warning: $conf names the token directory $tokendir, which does not exist: keyward will see no token"
  fi
fi

# Replicas: the token's user PIN is an orchestrator secret, mounted read-only into every replica
# (KEYWARD_USER_PIN_FROM names the file, not the PIN). keyward keeps and renames its PIN file in the
# secrets directory, so the mounted file is copied there (file to file: the PIN passes through no
# variable) whenever it differs.
if [ -n "${KEYWARD_USER_PIN_FROM:-}" ]; then
  [ -r "$KEYWARD_USER_PIN_FROM" ] || fail "KEYWARD_USER_PIN_FROM names $KEYWARD_USER_PIN_FROM, which uid $(id -u) cannot read"
  if ! cmp -s "$KEYWARD_USER_PIN_FROM" "$secrets/hsm-user-pin"; then
    cp "$KEYWARD_USER_PIN_FROM" "$secrets/.hsm-user-pin.$$" && chmod 600 "$secrets/.hsm-user-pin.$$" && mv "$secrets/.hsm-user-pin.$$" "$secrets/hsm-user-pin"
    say "copied the token PIN file from $KEYWARD_USER_PIN_FROM into $secrets"
  fi
fi
# The same for the second KEK's token (docs/lifecycle.md "A second KEK"), kept as secrets/hsm-second-pin.
if [ -n "${KEYWARD_SECOND_PIN_FROM:-}" ]; then
  [ -r "$KEYWARD_SECOND_PIN_FROM" ] || fail "KEYWARD_SECOND_PIN_FROM names $KEYWARD_SECOND_PIN_FROM, which uid $(id -u) cannot read"
  if ! cmp -s "$KEYWARD_SECOND_PIN_FROM" "$secrets/hsm-second-pin"; then
    cp "$KEYWARD_SECOND_PIN_FROM" "$secrets/.hsm-second-pin.$$" && chmod 600 "$secrets/.hsm-second-pin.$$" && mv "$secrets/.hsm-second-pin.$$" "$secrets/hsm-second-pin"
    say "copied the second token's PIN file from $KEYWARD_SECOND_PIN_FROM into $secrets"
  fi
fi

export KEYWARD_HOME="$home" SOFTHSM2_CONF="$conf"
say "home $home, SoftHSM2 configuration $conf, uid $(id -u)"

# No argument, or options only: serve. A command (inspect, send, backup …): run it with this home.
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
  exec node "$cli" start "$@"
fi
exec node "$cli" "$@"
