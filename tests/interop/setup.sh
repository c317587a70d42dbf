# setup.sh - shared start of the interop tests, sourced as
#   source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" NAME "$@"
# with the test's own arguments RNNTRAIN_BIN REPO_ROOT. Sets BIN, ROOT and PY
# (/usr/bin/python3, or $INTEROP_PYTHON to test the skip path); exits 77 (skipped) if PY
# cannot import torch, h5py and numpy; one BLAS/OpenMP thread; TMP, a temporary directory
# removed on exit.
INTEROP_NAME=${1:?usage: source setup.sh NAME RNNTRAIN_BIN REPO_ROOT}
BIN=${2:?usage: $INTEROP_NAME RNNTRAIN_BIN REPO_ROOT}
ROOT=${3:?usage: $INTEROP_NAME RNNTRAIN_BIN REPO_ROOT}
PY=${INTEROP_PYTHON:-/usr/bin/python3}

if ! [[ -x $PY ]] || ! "$PY" -c 'import torch, h5py, numpy' >/dev/null 2>&1; then
    echo "SKIP: $PY cannot import torch, h5py and numpy"
    exit 77
fi
[[ -x $BIN ]] || { echo "FAIL: rnntrain binary '$BIN' is not executable"; exit 1; }
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/$INTEROP_NAME.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
