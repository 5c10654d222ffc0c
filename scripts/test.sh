#!/usr/bin/env bash
# Runs the whole suite: lint (ESLint, then Prettier's check), the fast tier (test/unit/, pure), then
# starts a private PostgreSQL cluster on loopback for the database tests (they run on SQLite and on
# PostgreSQL), runs the rest, stops the cluster. With arguments, runs jest with them (any test file,
# test/unit/ included), without lint.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

rest=()
if [ $# -eq 0 ]; then
  if ! node node_modules/eslint/bin/eslint.js .; then
    echo 'keyward: ESLint found the problems above (npm run lint); the tests did not run' >&2
    exit 1
  fi
  if ! node node_modules/prettier/bin/prettier.cjs --check --log-level warn .; then
    echo 'keyward: the files above are not formatted: run `npm run format`; the tests did not run' >&2
    exit 1
  fi
  node node_modules/jest/bin/jest.js -c jest.unit.config.js
  rest=(--testPathIgnorePatterns '/test/unit/')
fi

pgdir=$(mktemp -d /tmp/keyward-pg.XXXXXX)
cleanup() { scripts/pg-cluster.sh stop "$pgdir" || true; rm -rf "$pgdir"; }
trap cleanup EXIT
if [ "${KEYWARD_TEST_SKIP_PG:-}" != 1 ]; then
  KEYWARD_TEST_PG_URL=$(scripts/pg-cluster.sh start "$pgdir")
  export KEYWARD_TEST_PG_URL
  export KEYWARD_TEST_PG_DIR=$pgdir  # its server log is part of the secret scan
fi
node node_modules/jest/bin/jest.js "${rest[@]}" "$@"
