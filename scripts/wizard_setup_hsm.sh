#!/usr/bin/env bash
# Sets up the PKCS#11 token that holds keyward's KEK; idempotent, so it can run again after a crash.
#
#   wizard_setup_hsm.sh softhsm|physical MODULE_PATH LABEL SLOT|- wizard|auto_restore
#
# PINs come from files named by KW_PIN_FILE (user PIN) and KW_SO_PIN_FILE (SO PIN, SoftHSM only),
# never from arguments: arguments are visible to every user of the host. They reach pkcs11-tool
# through its env: references. Exit codes come from scripts/exit-codes.tsv.
#
# softhsm:  no token with LABEL -> initialize one in a free slot with the SO PIN, then set the user
#           PIN; a token with LABEL whose user PIN is not set yet (an interrupted earlier run) -> set
#           it; then check that the user PIN logs in.
# physical: never initializes anything; the token must exist and the user PIN must log in.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
codes="$here/exit-codes.tsv"
fail() { # exit with the code of the named row, after saying why
  local code
  code=$(awk -F'\t' -v n="$1" '$2 == n { print $1 }' "$codes")
  echo "wizard_setup_hsm: $1${2:+: $2}" >&2
  exit "${code:-1}"
}

[ $# -eq 5 ] || fail USAGE "expected: softhsm|physical MODULE LABEL SLOT|- wizard|auto_restore"
hsm_type=$1 module=$2 label=$3 slot=$4 purpose=$5
case "$hsm_type" in softhsm | physical) ;; *) fail USAGE "unknown HSM type $hsm_type" ;; esac
case "$purpose" in wizard | auto_restore) ;; *) fail USAGE "unknown purpose $purpose" ;; esac
[ -n "$label" ] && [ ${#label} -le 32 ] || fail USAGE "a token label has 1 to 32 characters"
[ -f "$module" ] || fail MODULE_MISSING "$module"
command -v pkcs11-tool >/dev/null || fail TOOL_MISSING

read_pin() { # read_pin FILE -> the PIN on stdout
  [ -n "$1" ] && [ -r "$1" ] || fail PIN_FILE_UNREADABLE "${1:-(not set)}"
  local pin
  pin=$(head -n 1 "$1")
  [ -n "$pin" ] || fail PIN_FILE_UNREADABLE "$1 is empty"
  printf '%s' "$pin"
}
KW_USER_PIN=$(read_pin "${KW_PIN_FILE:-}") || exit $?
export KW_USER_PIN

p11() { pkcs11-tool --module "$module" "$@"; }

# Slot listing: one line per token, "slot-id<TAB>state<TAB>label".
tokens() {
  p11 --list-slots 2>/dev/null | awk '
    /^Slot [0-9]+ \(0x[0-9a-f]+\)/ { if (slot != "") print slot "\t" state "\t" label; slot = $3; gsub(/[()]/, "", slot); state = "present"; label = "" }
    /token state:[ \t]+uninitialized/ { state = "uninitialized" }
    /token label[ \t]*:/ { sub(/^[^:]*:[ \t]*/, ""); label = $0 }
    /token flags[ \t]*:/ && !/PIN initialized/ { if (state == "present") state = "nopin" }
    END { if (slot != "") print slot "\t" state "\t" label }'
}

matches=$(tokens | awk -F'\t' -v l="$label" '$3 == l' | wc -l)
[ "$matches" -le 1 ] || fail LABEL_AMBIGUOUS "$label"

if [ "$matches" -eq 0 ]; then
  [ "$hsm_type" = softhsm ] || fail TOKEN_NOT_FOUND "$label"
  KW_SO_PIN=$(read_pin "${KW_SO_PIN_FILE:-}") || exit $?
  export KW_SO_PIN
  if [ "$slot" != "-" ]; then
    free=$(tokens | awk -F'\t' -v s="$slot" '$2 == "uninitialized" && (s == $1 || s == sprintf("0x%x", $1))' | cut -f1 | head -n 1)
  else
    free=$(tokens | awk -F'\t' '$2 == "uninitialized" { print $1; exit }')
  fi
  [ -n "$free" ] || fail NO_FREE_SLOT
  # SoftHSM answers a too-short SO PIN with CKR_PIN_INCORRECT; say what it means.
  [ ${#KW_SO_PIN} -ge 4 ] && [ ${#KW_USER_PIN} -ge 4 ] || fail PIN_TOO_SHORT "PINs need at least 4 characters"
  out=$(p11 --slot "$free" --init-token --label "$label" --so-pin env:KW_SO_PIN 2>&1) || {
    case "$out" in *PIN_LEN_RANGE* | *PIN_INCORRECT*) fail PIN_TOO_SHORT ;; esac
    fail INIT_TOKEN_FAILED "$(echo "$out" | tail -n 1)"
  }
  state=nopin
else
  state=$(tokens | awk -F'\t' -v l="$label" '$3 == l { print $2 }')
fi

if [ "$state" = nopin ]; then
  [ "$hsm_type" = softhsm ] || fail WRONG_PIN "the token's user PIN is not initialized"
  KW_SO_PIN=${KW_SO_PIN:-$(read_pin "${KW_SO_PIN_FILE:-}")} || exit $?
  export KW_SO_PIN
  out=$(p11 --token-label "$label" --login --login-type so --so-pin env:KW_SO_PIN --init-pin --pin env:KW_USER_PIN 2>&1) || {
    case "$out" in *PIN_LEN_RANGE*) fail PIN_TOO_SHORT ;; esac
    fail INIT_PIN_FAILED "$(echo "$out" | tail -n 1)"
  }
fi

p11 --token-label "$label" --login --pin env:KW_USER_PIN --list-objects >/dev/null 2>&1 || fail WRONG_PIN "$label"
echo "wizard_setup_hsm: token \"$label\" ready ($purpose)" >&2
exit 0
