#!/usr/bin/env bash
# Run the test suite; creates or refreshes the Python environment (.venv) from
# requirements.lock first (egs2/gram/utils/ensure_env.sh).
#   ./test.sh                 # everything
#   ./test.sh -k mixing -x    # extra arguments go to pytest
#   ./test.sh -n 0            # one process, no pytest-xdist workers
# The files run on pytest-xdist workers, one per core up to 4 (GRAM_TEST_WORKERS sets the
# count), each file whole on one worker (module fixtures are built once).
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
cores=$(nproc 2>/dev/null || echo 1)
workers=${GRAM_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}
parallel=(-n "${workers}" --dist loadfile --no-loadscope-reorder)
if ! "${python}" -c "import xdist" 2>/dev/null; then
  echo "test.sh: pytest-xdist is not installed; the files run one after another" >&2
  parallel=()
fi
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
exec "${python}" -m pytest -q "${parallel[@]}" tests "$@"
