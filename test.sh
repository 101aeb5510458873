#!/usr/bin/env bash
# Run the test suite; creates or refreshes the Python environment (.venv) from
# requirements.lock first (egs2/gram/utils/ensure_env.sh).
#   ./test.sh                 # everything
#   ./test.sh -k mixing -x    # extra arguments go to pytest
# GRAM_SKIP_ENSURE_ENV=1 ./test.sh runs in the active Python environment instead
# (after egs2/gram/utils/check_env.py), e.g. a cluster's own CUDA torch.
set -euo pipefail
cd "$(dirname "$0")"
if [ -n "${GRAM_SKIP_ENSURE_ENV+x}" ]; then
  python=python3
  egs2/gram/utils/check_env.py
else
  egs2/gram/utils/ensure_env.sh
  python=.venv/bin/python
fi
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
exec "${python}" -m pytest -q tests "$@"
