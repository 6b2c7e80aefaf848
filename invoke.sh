#!/usr/bin/env bash
# Front door: bootstrap the py3/ virtualenv, then dispatch to an invoke collection.
# Credentials are loaded lazily by the tasks that talk to OpenStack (see invoke/README.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly ROOT
readonly VENV="${ROOT}/py3"
readonly REQUIREMENTS="${ROOT}/requirements.txt"
readonly STAMP="${VENV}/.requirements.sha256"
readonly KINDS=(image deployment)

usage() {
  cat <<USAGE
Usage: bash invoke.sh KIND NAME [invoke options] [task [--task-options]] ...
       bash invoke.sh --help | --list

Manage Hail/Spark clusters: machine images with packer, deployments with terraform.

KIND and NAME:
  image       NAME/VERSION   an image definition, images/NAME/VERSION/image.yml
  deployment  NAME/OWNER     a cluster definition, deployments/NAME/OWNER/deployment.yml

Examples:
  bash invoke.sh deployment spark-local/demo up          a cluster on this machine
  bash invoke.sh deployment spark/ld14 up                clean, init, validate, plan, apply
  bash invoke.sh deployment spark/ld14 plan --to update  then: ... update
  bash invoke.sh deployment spark/ld14 plan --to destroy down
  bash invoke.sh deployment spark/ld14 --list            the tasks, one line each
  bash invoke.sh deployment spark/ld14 --help up         a task's options
  bash invoke.sh image hail-base/1.0.0 build
  bash invoke.sh image hail-base/1.0.0 share --with hgi-dev,hgi

Options before KIND:
  -h, --help   this text (installs nothing)
  --list       the collections
  --setup      create or refresh py3/ only (what the first run of any task does)
  --debug      show Python tracebacks for expected errors too (same as HGI_DEBUG=1)

Environment: OPENRC (default: openrc.sh in the repository root), OS_CLOUD or OS_* variables,
TERRAFORM, PACKER, PYTHON (the interpreter that creates py3/).
Read more: README.md and invoke/README.md.
USAGE
}

die_usage() {
  printf 'invoke.sh: %s\n' "$1" >&2
  printf "Run 'bash invoke.sh --help' for usage.\n" >&2
  exit 2
}

log() {
  printf '[%s] invoke.sh: %s\n' "$(date '+%H:%M:%S')" "$*" >&2
}

requirements_digest() {
  sha256sum "${REQUIREMENTS}" | cut -d' ' -f1
}

venv_is_current() {
  [[ -x "${VENV}/bin/python" && -x "${VENV}/bin/invoke" && -f "${STAMP}" ]] || return 1
  [[ "$(cat "${STAMP}")" == "$(requirements_digest)" ]] || return 1
  "${VENV}/bin/python" -c '' 2>/dev/null
}

bootstrap_venv() {
  local python="${PYTHON:-python3}"
  command -v "${python}" >/dev/null 2>&1 \
    || { printf 'invoke.sh: %s not found: install Python 3 (apt-get install python3 python3-venv)\n' "${python}" >&2; exit 1; }
  if [[ -d "${VENV}" ]]; then
    log "py3/ is missing, broken or out of date with requirements.txt: rebuilding it"
    rm -rf "${VENV}"
  else
    log "creating py3/ (first run)"
  fi
  "${python}" -m venv "${VENV}" \
    || { printf 'invoke.sh: could not create py3/ with "%s -m venv": install python3-venv\n' "${python}" >&2; rm -rf "${VENV}"; exit 1; }
  if ! "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${REQUIREMENTS}"; then
    printf 'invoke.sh: installing requirements.txt into py3/ failed (see above); py3/ is left without its stamp and will be rebuilt next time\n' >&2
    exit 1
  fi
  requirements_digest >"${STAMP}"
}

main() {
  local debug=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      --list) printf '%s\n' "${KINDS[@]}"; exit 0 ;;
      --setup) venv_is_current || bootstrap_venv; exit 0 ;;
      --debug) debug=1; shift ;;
      *) break ;;
    esac
  done
  [[ $# -gt 0 ]] || die_usage "missing KIND (one of: ${KINDS[*]})"
  local kind="$1"
  shift
  case " ${KINDS[*]} " in
    *" ${kind} "*) ;;
    *) die_usage "unknown KIND '${kind}' (one of: ${KINDS[*]})" ;;
  esac
  if [[ $# -gt 0 && "$1" != -* ]]; then
    [[ "$1" == */* ]] || die_usage "malformed ${kind} name '$1': expected $([[ ${kind} == image ]] && echo NAME/VERSION || echo NAME/OWNER)"
    export "HGI_$(tr '[:lower:]' '[:upper:]' <<<"${kind}")=$1"
    shift
  fi
  [[ ${debug} -eq 0 ]] || export HGI_DEBUG=1
  venv_is_current || bootstrap_venv
  exec "${VENV}/bin/python" "${ROOT}/invoke/front.py" --search-root "${ROOT}/invoke" --collection "${kind}" "$@"
}

main "$@"
