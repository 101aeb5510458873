#!/usr/bin/env bash
# ensure_env.sh: create/refresh the project's Python environment (.venv).
#
# Run it (do not source it) from the repository root; path.sh calls it.
#   * .venv/bin/python missing          -> python3 -m venv .venv
#   * .venv/.installed != sha256(pyproject.toml)
#                                       -> pip install -e ".[test]", then
#                                          write the stamp
#   * otherwise                         -> nothing (one hash comparison)
# pip stays at 23.2.1 (newer pip refuses the ci_sdr sdist that espnet
# depends on): it is pinned only if the venv's pip has another version.
# Environment: PYTHON (default python3) is the interpreter used for the venv.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  echo "ensure_env.sh: error: run this script, do not source it" >&2
  return 1
fi
set -euo pipefail

prog=${0##*/}
pip_version=23.2.1
venv=.venv
stamp=${venv}/.installed

if [ "$#" -gt 0 ]; then
  case "$1" in
    -h | --help) status=0 ;;
    *) echo "${prog}: error: unexpected argument '$1'" >&2; status=1 ;;
  esac
  echo "Usage: ${prog}   (from the repository root; creates/updates ${venv})" >&2
  exit "${status}"
fi

if [ ! -f pyproject.toml ]; then
  echo "${prog}: error: no pyproject.toml in ${PWD}; run this from the repository root" >&2
  exit 1
fi

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{ print $1 }'
  else
    shasum -a 256 "$1" | awk '{ print $1 }'
  fi
}

up_to_date() {
  [ -x "${venv}/bin/python" ] && [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ]
}

want=$(sha256_of pyproject.toml)
if up_to_date; then
  exit 0
fi

# Slow path: serialize concurrent callers, then check again.
mkdir -p "${venv}"
if command -v flock >/dev/null 2>&1; then
  exec 9>"${venv}/.lock"
  flock 9
  if up_to_date; then
    exit 0
  fi
fi

if [ ! -x "${venv}/bin/python" ]; then
  echo "${prog}: creating ${venv} with ${PYTHON:-python3} -m venv ${venv}"
  "${PYTHON:-python3}" -m venv "${venv}"
fi

have_pip=$("${venv}/bin/python" -m pip --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "${have_pip}" != "${pip_version}" ]; then
  echo "${prog}: pinning pip ${pip_version} (found ${have_pip:-none})"
  "${venv}/bin/python" -m pip install -q "pip==${pip_version}"
fi

if [ -f "${stamp}" ]; then
  echo "${prog}: pyproject.toml changed since the last install; reinstalling"
fi
echo "${prog}: installing the project: ${venv}/bin/python -m pip install -e \".[test]\""
"${venv}/bin/python" -m pip install -e ".[test]"

echo "${want}" >"${stamp}"
echo "${prog}: ${venv} is ready"
