#!/usr/bin/env bash
# Prepares a bare clone on a fresh Debian machine; npm start, npm test and npm run bench run it first.
# It installs only what is missing, so a second run with nothing missing installs nothing.
#   scripts/setup.sh          what the server needs: softhsm2, opensc, npm packages, build, ./var
#   scripts/setup.sh test     the same, plus chromium, postgresql and opencryptoki (a second PKCS#11
#                             implementation; the tests start its slot daemon) for the test suite
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=${1:-start}
say() { echo "keyward setup: $*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
wanted=(softhsm2 opensc python3 make g++)
[ "$mode" = test ] && wanted+=(chromium postgresql opencryptoki)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    say "missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})"; exit 69
  fi
  say "installing ${missing[*]} from Debian"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- npm packages, native modules built from source -------------------------------------------
# node-gyp finds Node's headers in /usr (Debian's nodejs-dev layout); npm 11 only takes this from the
# environment. argon2's shipped prebuild crashes on Node 20 and sqlite3's prebuild download has no
# network to reach: build both from source.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi
export npm_config_build_from_source=true
stamp=node_modules/.keyward-installed
want=$(cat package.json package-lock.json | sha256sum | cut -c1-64)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
  || ! node -e "require('pkcs11js'); require('argon2'); require('sqlite3')" >/dev/null 2>&1; then
  say "installing npm packages (native modules compile: about two minutes)"
  npm ci --no-audit --no-fund --loglevel=error
  node -e "require('pkcs11js'); require('argon2'); require('sqlite3')"
  echo "$want" >"$stamp"
fi

# --- TypeScript build (incremental: seconds when nothing changed) ------------------------------
node node_modules/typescript/bin/tsc -p tsconfig.json

# --- ./var: SoftHSM2 configuration, token directory, database directory -----------------------
home=${KEYWARD_HOME:-$root/var}
mkdir -p "$home/tokens" "$home/tls" "$home/secrets" "$home/backups"
chmod 700 "$home/tokens" "$home/secrets"
if [ ! -f "$home/softhsm2.conf" ]; then
  cat >"$home/softhsm2.conf" <<CONF
directories.tokendir = $home/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
fi
