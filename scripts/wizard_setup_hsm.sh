#!/usr/bin/env bash
# Sets up the PKCS#11 token that holds keyward's KEK; idempotent, so it can run again after a crash.
#
#   wizard_setup_hsm.sh softhsm|physical MODULE_PATH LABEL SLOT|- wizard|auto_restore
#
# PINs come from files named by KW_PIN_FILE (user PIN) and KW_SO_PIN_FILE (SO PIN, SoftHSM only).
# No PIN is ever in a process's arguments or environment, where other processes read it: this shell
# never reads one, pkcs11-tool only lists slots, and the steps that need a PIN are done by keyward's
# dist/server/token-pin-tool.js, which reads the files itself. Exit codes come from scripts/exit-codes.tsv.
#
# softhsm:  a token with LABEL whose user PIN is not set (left by an interrupted or failed earlier run)
#           is deleted; no token with LABEL -> check both PINs against the free slot's own length
#           limits, initialize its token with the SO PIN and set the user PIN; then check that the
#           user PIN logs in. A token this run made is deleted again if a later step fails.
# physical: never initializes (so never leaves a half-made token); the token must exist and the
#           user PIN must log in.
set -uo pipefail
export LC_ALL=C # byte-wise label checks, and pkcs11-tool's listing in one language

here=$(cd "$(dirname "$0")" && pwd)
codes="$here/exit-codes.tsv"
pin_tool="$here/../dist/server/token-pin-tool.js"
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
# A label is padded with spaces to 32 bytes on the token, and read back from pkcs11-tool's listing
# one line at a time: refuse what cannot make that trip unchanged, rather than miss the token on a
# re-run and make a second one.
[[ $label =~ ^[!-~]([\ -~]{0,30}[!-~])?$ ]] || fail USAGE "a token label has 1 to 32 printable ASCII characters, with no space at either end"
[ -f "$module" ] || fail MODULE_MISSING "$module"
command -v pkcs11-tool >/dev/null || fail TOOL_MISSING pkcs11-tool
command -v node >/dev/null && [ -f "$pin_tool" ] || fail TOOL_MISSING "$pin_tool"

check_pin_file() { # check_pin_file FILE: readable, first line not empty; the PIN is read and dropped
  local pin=''
  [ -n "$1" ] && [ -r "$1" ] || fail PIN_FILE_UNREADABLE "${1:-(not set)}"
  IFS= read -r pin <"$1" || true
  [ -n "$pin" ] || fail PIN_FILE_UNREADABLE "$1 is empty"
}
check_pin_file "${KW_PIN_FILE:-}"

p11() { pkcs11-tool --module "$module" "$@"; }
pin_tool() { node "$pin_tool" "$module" "$@"; }

# Slot listing: one line per slot, "slot-id<TAB>state<TAB>serial<TAB>label". Fields are matched at the
# start of their line, so a label that looks like a field name is still just a label.
tokens() {
  p11 --list-slots 2>/dev/null | awk '
    function flush() { if (slot != "") print slot "\t" state "\t" serial "\t" label }
    /^Slot [0-9]+ \(0x[0-9a-f]+\)/ { flush(); slot = $3; gsub(/[():]/, "", slot); state = "present"; serial = ""; label = "" }
    /^[ \t]+token state:[ \t]+uninitialized/ { state = "uninitialized" }
    /^[ \t]+token label[ \t]*:/ { sub(/^[^:]*:[ \t]?/, ""); label = $0 }
    /^[ \t]+serial num[ \t]*:/ { serial = $NF }
    /^[ \t]+token flags[ \t]*:/ && !/PIN initialized/ { if (state == "present") state = "nopin" }
    END { flush() }'
}
# The label goes to awk through its environment: -v would turn its backslashes into escapes.
labelled() { tokens | KW_LABEL=$label awk -F'\t' '$4 == ENVIRON["KW_LABEL"]'; }

remove_token() { # remove_token SERIAL: delete a SoftHSM token, or say exactly how to
  softhsm2-util --delete-token --serial "$1" >/dev/null 2>&1 && return 0
  echo "wizard_setup_hsm: could not delete the half-made token \"$label\"; delete it with: SOFTHSM2_CONF=${SOFTHSM2_CONF:-} softhsm2-util --delete-token --serial $1" >&2
  return 1
}


# SoftHSM2 reads its tokens' files when a process starts and leaves out one that another process is
# rewriting at that moment (every login there rewrites its flags). A listing with fewer tokens than
# the token directory holds is taken again, so that a token is not made twice over one left out.
softhsm_token_dirs() {
  local dir
  dir=$(awk -F= '$1 ~ /^[ \t]*directories\.tokendir[ \t]*$/ { sub(/^[ \t]+/, "", $2); sub(/[ \t]+$/, "", $2); print $2 }' "${SOFTHSM2_CONF:-/etc/softhsm/softhsm2.conf}" 2>/dev/null)
  [ -n "$dir" ] && [ -d "$dir" ] || { echo 0; return; }
  find "$dir" -mindepth 2 -maxdepth 2 -name token.object | wc -l
}
settled_listing() {
  local again
  for again in 1 2 3 4; do
    [ "$(tokens | awk -F'\t' '$2 != "uninitialized"' | wc -l)" -lt "$(softhsm_token_dirs)" ] || return 0
    echo "wizard_setup_hsm: a token was left out of the listing; looking again" >&2
    sleep 0.3
  done
}

made=
[ "$hsm_type" != softhsm ] || settled_listing
token=$(labelled)
[ "$(printf '%s' "$token" | awk 'END { print NR }')" -le 1 ] || fail LABEL_AMBIGUOUS "$label"
state=$(printf '%s' "$token" | cut -f2)

if [ "$hsm_type" = physical ]; then
  [ -n "$token" ] || fail TOKEN_NOT_FOUND "$label"
  [ "$state" != nopin ] || fail WRONG_PIN "the token's user PIN is not initialized"
else
  command -v softhsm2-util >/dev/null || fail TOOL_MISSING softhsm2-util
  [ -n "$token" ] && [ "$state" != nopin ] || check_pin_file "${KW_SO_PIN_FILE:-}"
  if [ "$state" = nopin ]; then
    # Nothing can have been stored in a token without a user PIN: it is remade with this run's PINs,
    # whatever SO PIN the earlier run gave it. PINs the token would refuse change nothing.
    pin_tool check-pins "$(printf '%s' "$token" | cut -f1)" || exit $?
    remove_token "$(printf '%s' "$token" | cut -f3)" || fail INIT_PIN_FAILED "a half-made token is in the way"
    token=
  fi
  if [ -z "$token" ]; then
    if [ "$slot" != "-" ]; then
      free=$(tokens | awk -F'\t' -v s="$slot" '$2 == "uninitialized" && (s == $1 || sprintf("0x%x", s) == $1)' | cut -f1 | head -n 1)
    else
      free=$(tokens | awk -F'\t' '$2 == "uninitialized" { print $1; exit }')
    fi
    [ -n "$free" ] || fail NO_FREE_SLOT
    # A failure after the token was initialized leaves no half-made token behind: the one this run
    # made, by the serial the tool prints as soon as it exists, never another with the same label.
    made=$(pin_tool make-token "$free" "$label") || { status=$?; [ -z "$made" ] || remove_token "$made"; exit $status; }
  fi
fi

# A token this run made whose user PIN does not log in is as good as half made.
pin_tool login "$label" || { status=$?; [ -z "$made" ] || remove_token "$made"; exit $status; }
echo "wizard_setup_hsm: token \"$label\" ready ($purpose)" >&2
exit 0
