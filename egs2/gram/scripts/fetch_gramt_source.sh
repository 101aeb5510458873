#!/usr/bin/env bash
# Fetch the authors' GRAM-T source (labhamlet/GRAM-T) at a pinned commit, for MEASUREMENT ONLY:
# espnet2_gram.benchmarks.gramt imports it at run time to time our model against theirs.
# It is third-party code: never commit it, never copy it into this repository (keep the folder
# out of git: it is under exp/ by default, or add it to .git/info/exclude).
#
#   egs2/gram/scripts/fetch_gramt_source.sh [--deps] [DIR]     (DIR default: exp/gramt_source)
#
# Idempotent: an existing clone in DIR is checked out at the pinned commit (fetched if it lacks
# it); a folder that already holds src/model/GRAM-T's files but is no git clone is accepted as
# it is. --deps also installs torchvision (matching the installed torch) and timm into
# DIR/.deps when they are not importable (GRAM-T's model needs them; benchmark_gramt appends
# DIR/.deps to sys.path).
set -euo pipefail

REPO_URL=https://github.com/labhamlet/GRAM-T
COMMIT=9d017173e9b405a86050d6d36aba3c01d02a8e6c
PYTHON=${PYTHON:-python3}

deps=false
dir=
for arg in "$@"; do
    case "$arg" in
        --deps) deps=true ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "$0: unknown option $arg" >&2; exit 2 ;;
        *) [ -z "$dir" ] || { echo "$0: one folder only" >&2; exit 2; }; dir=$arg ;;
    esac
done
dir=${dir:-exp/gramt_source}

echo "GRAM-T source for measurement only (never commit it): $dir"
if [ -d "$dir/.git" ]; then
    if ! git -C "$dir" cat-file -e "$COMMIT^{commit}" 2>/dev/null; then
        git -C "$dir" fetch --quiet origin
    fi
    git -C "$dir" -c advice.detachedHead=false checkout --quiet "$COMMIT"
    echo "using the clone in $dir at $COMMIT"
elif [ -f "$dir/src/model/GRAMT.py" ]; then
    echo "using the GRAM-T files already in $dir (not a git clone: commit not checked)"
elif [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    echo "$0: $dir exists and is neither a GRAM-T clone nor empty" >&2
    exit 1
else
    mkdir -p "$(dirname "$dir")"
    git clone --quiet "$REPO_URL" "$dir"
    git -C "$dir" -c advice.detachedHead=false checkout --quiet "$COMMIT"
    echo "cloned $REPO_URL at $COMMIT into $dir"
fi

if $deps; then
    missing=()
    export PYTHONPATH="$dir/.deps${PYTHONPATH:+:$PYTHONPATH}"
    "$PYTHON" -c "import torchvision" 2>/dev/null || {
        tv=$("$PYTHON" - <<'EOF'
import torch
major, minor = (int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
print(f"0.{minor + 15}" if major == 2 else "")
EOF
)
        missing+=("torchvision${tv:+==$tv.*}")
    }
    "$PYTHON" -c "import timm" 2>/dev/null || missing+=(timm huggingface_hub safetensors)
    if [ ${#missing[@]} -gt 0 ]; then
        "$PYTHON" -m pip install --quiet --no-deps --target "$dir/.deps" "${missing[@]}"
        echo "installed ${missing[*]} into $dir/.deps"
    else
        echo "torchvision and timm are importable: nothing to install"
    fi
fi
