#!/usr/bin/env bash
# Run the test suite; creates or refreshes the Python environment (.venv) first.
#   ./test.sh                 # everything
#   ./test.sh -k mixing -x    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")"
egs2/gram/utils/ensure_env.sh
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -q tests "$@"
