#!/usr/bin/env bash
# gpu_wheels.sh: download the wheels that the GPU machine lacks.
#
# The GPU machine (x86-64, CPython 3.12, no network) already has torch, torchaudio, numpy,
# scipy, pyyaml, h5py, matplotlib, scikit-learn, lightning and the like, but none of ESPnet
# and its audio/simulation requirements. This script downloads, for CPython 3.12 on
# manylinux x86-64, the wheels of exactly the packages of PACKAGES below, at the versions
# pinned in requirements.lock (the lock is the only source of versions; a package that is
# not in the lock is an error). The folder travels with the working tree (it is ignored by
# git through .git/info/exclude: /.whl/); on the GPU machine, from the repository root:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
#
# Usage: egs2/gram/scripts/gpu_wheels.sh [DIR]   (DIR: default .whl at the repository root)
# Wheels already in DIR at the locked version are skipped; wheels of a listed package at
# another version are removed (installing both would fail). The total size is printed.
# Environment: PYTHON (default: the repository's .venv/bin/python) runs pip.
set -euo pipefail

# The one list: what the code paths run on the GPU machine import beyond its image
# (espnet2_gram.bin.gram_train / ESPnet's AbsTask and Trainer, make_rir_bank and
# espnet2_gram.simulation, espnet2_gram.gram). Names as in requirements.lock.
PACKAGES=(
  espnet            # AbsTask, Trainer, layers
  configargparse    # espnet2 argument parsing
  typeguard         # espnet2 @typechecked
  humanfriendly     # espnet2 sizes and timespans
  torch-complex     # espnet2 enh/complex helpers imported by the trainer
  kaldiio           # Kaldi-style scp/ark reading in espnet2 datasets
  soundfile         # audio reading/writing (wheel bundles libsndfile)
  cffi              # soundfile's binding (not in the GPU image)
  pycparser         # cffi's requirement
  pyroomacoustics   # make_rir_bank / espnet2_gram.simulation
  slab              # its data file holds the KEMAR HRTF of binaural banks (read, not imported)
  librosa           # imported by espnet2.layers.log_mel on the trainer's import path
  lazy-loader       # librosa's lazy imports
)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
dest=${1:-${root}/.whl}
lock=${root}/requirements.lock
python=${PYTHON:-${root}/.venv/bin/python}

[ -f "${lock}" ] || { echo "$0: ${lock} not found" >&2; exit 1; }
[ -x "${python}" ] || { echo "$0: ${python} not found (set PYTHON)" >&2; exit 1; }

# norm NAME: the PEP 503 normal form (lower case, runs of -_. as one -).
norm() { printf '%s' "$1" | tr 'A-Z' 'a-z' | sed -E 's/[-_.]+/-/g'; }

# lock_version NAME: the version pinned in requirements.lock ("name==version [; marker]").
lock_version() {
  local want line name
  want=$(norm "$1")
  while IFS= read -r line; do
    line=${line%%#*}
    case "${line}" in *==*) ;; *) continue ;; esac
    name=$(norm "$(printf '%s' "${line%%==*}" | tr -d ' ')")
    if [ "${name}" = "${want}" ]; then
      printf '%s' "${line#*==}" | sed -E 's/[[:space:]]*;.*$//; s/[[:space:]]//g'
      return 0
    fi
  done < "${lock}"
  return 1
}

# Resolve every version first, so that a package missing from the lock stops the run
# before anything is downloaded.
declare -A version
missing=()
for pkg in "${PACKAGES[@]}"; do
  if v=$(lock_version "${pkg}") && [ -n "${v}" ]; then
    version[${pkg}]=${v}
  else
    missing+=("${pkg}")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "$0: not in ${lock}: ${missing[*]}" >&2
  exit 1
fi

mkdir -p "${dest}"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "${p}")
done

# wheels_of NAME: the wheels in dest whose distribution name is NAME (any version).
wheels_of() {
  local want f base
  want=$(norm "$1")
  for f in "${dest}"/*.whl; do
    [ -e "${f}" ] || continue
    base=$(basename "${f}")
    [ "$(norm "${base%%-*}")" = "${want}" ] && printf '%s\n' "${f}"
  done
  return 0
}

for pkg in "${PACKAGES[@]}"; do
  v=${version[${pkg}]}
  have=""
  while IFS= read -r f; do
    [ -n "${f}" ] || continue
    rest=$(basename "${f}"); rest=${rest#*-}
    if [ "${rest%%-*}" = "${v}" ]; then
      have=${f}
    else
      echo "removing $(basename "${f}") (the lock pins ${pkg}==${v})"
      rm -f -- "${f}"
    fi
  done < <(wheels_of "${pkg}")
  if [ -n "${have}" ]; then
    echo "present  $(basename "${have}")"
    continue
  fi
  echo "download ${pkg}==${v}"
  if ! "${python}" -m pip download -q --disable-pip-version-check --no-deps \
        --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
        -d "${dest}" "${pkg}==${v}"; then
    # No wheel for CPython 3.12 at this version (an sdist-only release): build one here,
    # which is only right for a pure-Python package, so refuse anything but *-none-any.
    echo "no cp312/py3 wheel of ${pkg}==${v}; building one from the sdist"
    tmp=$(mktemp -d)
    "${python}" -m pip wheel -q --disable-pip-version-check --no-deps --no-binary=:all: \
      -w "${tmp}" "${pkg}==${v}"
    for f in "${tmp}"/*.whl; do
      case "${f}" in
        *-none-any.whl) mv -- "${f}" "${dest}/" ;;
        *) echo "$0: ${pkg}==${v} is not pure Python ($(basename "${f}")); no wheel" >&2
           rm -rf -- "${tmp}"; exit 1 ;;
      esac
    done
    rm -rf -- "${tmp}"
  fi
  [ -n "$(wheels_of "${pkg}")" ] || { echo "$0: no wheel of ${pkg}==${v} in ${dest}" >&2; exit 1; }
done

# Wheels in dest that are not on the list would be installed too: name them.
for f in "${dest}"/*.whl; do
  [ -e "${f}" ] || continue
  base=$(basename "${f}"); known=false
  for pkg in "${PACKAGES[@]}"; do
    [ "$(norm "${base%%-*}")" = "$(norm "${pkg}")" ] && known=true
  done
  "${known}" || echo "warning: ${base} is not on the list (it would be installed too)" >&2
done

echo "${#PACKAGES[@]} packages in ${dest}:"
du -h "${dest}"/*.whl | sed "s|${dest}/||"
du -ch "${dest}"/*.whl | tail -n 1
