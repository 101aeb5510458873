#!/usr/bin/env bash
# ensure_env.sh: create/refresh the project's Python environment (.venv) from the lock.
#
# Run it (do not source it) from the repository root; path.sh and test.sh call it.
#   * .venv/.installed == sha256(pyproject.toml + requirements.lock + install options)
#     -> nothing to do
#   * otherwise: python3 -m venv .venv (when missing); uv (the version the lock pins)
#     into .venv with pip; `uv pip sync` of the lock plus the project, editable
#     (exactly these packages: any other is removed), compiled to bytecode (uv does not
#     compile by default, and where PYTHONDONTWRITEBYTECODE is set Python never caches it:
#     every process would compile torch and ESPnet anew, 1.7-1.8x their import time); then
#     egs2/gram/utils/check_env.py --lock, and only when that passes the stamp
#     .venv/.installed.
# requirements.lock is rewritten by egs2/gram/utils/refresh_lock.sh.
# Environment: PYTHON (default python3) is the interpreter used for the venv.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  echo "ensure_env.sh: error: run this script, do not source it" >&2
  return 1
fi
set -euo pipefail

prog=${0##*/}
venv=.venv
lock=requirements.lock
stamp=${venv}/.installed

if [ "$#" -gt 0 ]; then
  case "$1" in
    -h | --help) status=0 ;;
    *) echo "${prog}: error: unexpected argument '$1'" >&2; status=1 ;;
  esac
  echo "Usage: ${prog}   (from the repository root; creates/updates ${venv} from ${lock})" >&2
  exit "${status}"
fi

for f in pyproject.toml "${lock}"; do
  if [ ! -f "${f}" ]; then
    echo "${prog}: error: no ${f} in ${PWD}; run this from the repository root" >&2
    exit 1
  fi
done

sync_options=(--compile-bytecode)

fingerprint() {
  if command -v sha256sum >/dev/null 2>&1; then
    { cat pyproject.toml "${lock}"; echo "${sync_options[*]}"; } | sha256sum | awk '{ print $1 }'
  else
    { cat pyproject.toml "${lock}"; echo "${sync_options[*]}"; } | shasum -a 256 | awk '{ print $1 }'
  fi
}

up_to_date() {
  [ -x "${venv}/bin/python" ] && [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ]
}

want=$(fingerprint)
if up_to_date; then
  exit 0
fi

# Slow path: serialize concurrent callers, then check again.
mkdir -p "${venv}"
if command -v flock >/dev/null 2>&1; then
  exec 9>"${venv}/.ensure_env.lock"  # not .lock: uv locks that one itself
  flock 9
  if up_to_date; then
    exit 0
  fi
fi

if [ ! -x "${venv}/bin/python" ]; then
  echo "${prog}: creating ${venv} with ${PYTHON:-python3} -m venv ${venv}"
  "${PYTHON:-python3}" -m venv "${venv}"
fi
if [ -f "${stamp}" ]; then
  echo "${prog}: pyproject.toml, ${lock} or the install options changed since the last install; syncing"
  rm -f "${stamp}"
fi

uv_version=$(sed -n -E 's/^uv==([^ ;]+).*/\1/p' "${lock}")
if [ -z "${uv_version}" ]; then
  echo "${prog}: error: ${lock} pins no uv (expected a line 'uv==VERSION')" >&2
  exit 1
fi
have_uv=$("${venv}/bin/uv" --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "${have_uv}" != "${uv_version}" ]; then
  echo "${prog}: installing uv ${uv_version} into ${venv} with pip"
  "${venv}/bin/python" -m pip install -q "uv==${uv_version}"
fi

# One sync of the lock plus the project itself, so that the project is never uninstalled.
echo "${prog}: installing ${lock} and the project (editable) into ${venv} (uv pip sync ${sync_options[*]})"
{ cat "${lock}"; echo "-e ."; } >"${venv}/.requirements.txt"
"${venv}/bin/uv" pip sync "${sync_options[@]}" --python "${venv}/bin/python" "${venv}/.requirements.txt"

if ! "${venv}/bin/python" egs2/gram/utils/check_env.py --lock "${lock}"; then
  echo "${prog}: error: ${venv} failed its smoke check (above); run ${prog} again after fixing it" >&2
  exit 1
fi
echo "${want}" >"${stamp}.tmp"
mv "${stamp}.tmp" "${stamp}"
echo "${prog}: ${venv} is ready"
