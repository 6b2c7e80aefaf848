# shellcheck shell=bash
# Sourced by vm-node and vm-net: logging, the environment check, pid files.

PROG="${0##*/}"
readonly PROG

log() { printf '%s %s%s: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "${PROG}" "${VM_NAME:+ ${VM_NAME}}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# require_env NAME...: every named variable must be set and non-empty.
require_env() {
  local name missing=()
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || missing+=("${name}")
  done
  [[ ${#missing[@]} -eq 0 ]] || die "missing environment: ${missing[*]} (see terraform/spark-vm/README.md)"
}

# read_env_file FILE: KEY=value lines (as vm-node writes them) into the environment.
read_env_file() {
  local file="$1"
  [[ -r "${file}" ]] || die "cannot read --env-file ${file}"
  set -a
  # shellcheck disable=SC1090
  . "${file}"
  set +a
}

require_root() {
  [[ ${EUID} -eq 0 ]] || die "needs root (network namespaces, bridges and taps): run as root"
}

netns_exists() { [[ -e "/run/netns/$1" ]]; }

# wait_gone PID SECONDS: 0 once PID has exited, 1 if it is still there after SECONDS.
wait_gone() {
  local pid="$1" seconds="$2" i
  for ((i = 0; i < seconds * 10; i++)); do
    kill -0 "${pid}" 2>/dev/null || return 0
    sleep 0.1
  done
  ! kill -0 "${pid}" 2>/dev/null
}
