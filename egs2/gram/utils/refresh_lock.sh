#!/usr/bin/env bash
# refresh_lock.sh: re-resolve pyproject.toml and write requirements.lock.
#
#   egs2/gram/utils/refresh_lock.sh        (from the repository root)
#
# Resolves the project's dependencies (".[test]") into a new, temporary venv,
# runs the environment smoke check there and only then writes every installed
# package, transitive ones included, as name==version to requirements.lock
# (CUDA-only packages carry a Linux x86_64 marker). The next ensure_env.sh call
# installs the new lock into .venv. Run the test suite before committing it.
# Environment: PYTHON (default python3) is the interpreter for the venv.
set -euo pipefail

prog=${0##*/}
lock=requirements.lock
if [ "$#" -gt 0 ]; then
  echo "Usage: ${prog}   (from the repository root; rewrites ${lock})" >&2
  [ "$1" = "-h" ] || [ "$1" = "--help" ]
  exit
fi
if [ ! -f pyproject.toml ]; then
  echo "${prog}: error: no pyproject.toml in ${PWD}; run this from the repository root" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gram-lock.XXXXXX")
trap 'rm -rf "${work}"' EXIT
"${PYTHON:-python3}" -m venv "${work}/venv"
py="${work}/venv/bin/python"
"${py}" -m pip install -q uv
"${work}/venv/bin/uv" pip install --python "${py}" ".[test]"
"${py}" egs2/gram/utils/check_env.py

{
  echo "# Every package of the tested environment; written by egs2/gram/utils/refresh_lock.sh."
  echo "# Installed by egs2/gram/utils/ensure_env.sh. Do not edit by hand."
  "${work}/venv/bin/uv" pip freeze --python "${py}" --exclude-editable \
    | grep -v -i '^espnet2[-_]gram[ =]' \
    | sed -E '/^(nvidia-|cuda-|triton==)/I s/$/ ; platform_system == "Linux" and platform_machine == "x86_64"/'
} >"${work}/${lock}"
mv "${work}/${lock}" "${lock}"
echo "${prog}: wrote ${lock} ($(grep -c '==' "${lock}") packages)"
