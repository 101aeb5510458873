# path.sh: environment of the recipes; source it from the repository root
# (". ./path.sh"). Creates/refreshes .venv from requirements.lock unless
# GRAM_SKIP_ENSURE_ENV is set; then an existing .venv is still activated
# (without one, the current python3 is used) and egs2/gram/utils/check_env.py
# checks that torch, torchaudio, ESPnet and the plugin load together.
if [ -z "${GRAM_SKIP_ENSURE_ENV+x}" ]; then
  egs2/gram/utils/ensure_env.sh || {
    echo "path.sh: error: egs2/gram/utils/ensure_env.sh failed (set GRAM_SKIP_ENSURE_ENV=1 to use the active Python environment)" >&2
    return 1
  }
fi
if [ -f .venv/bin/activate ]; then
  # shellcheck disable=SC1091
  . .venv/bin/activate
else
  echo "path.sh: warning: no .venv in ${PWD}; using $(command -v python3 || echo 'no python3')" >&2
fi
if [ -n "${GRAM_SKIP_ENSURE_ENV+x}" ]; then
  python3 egs2/gram/utils/check_env.py || return 1
fi
export PATH="${PWD}/egs2/gram/utils:${PATH}"
export OMP_NUM_THREADS=1
export PYTHONIOENCODING=UTF-8
export PYTHONUNBUFFERED=1
