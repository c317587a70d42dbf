# lib.sh - shared by the run tests (tests/runs/test_*.sh), sourced first with their
# arguments: `source lib.sh "$@"` (RNNTRAIN_BIN MPIEXEC REPO_ROOT). Sets BIN, MPI, ROOT,
# PY (/usr/bin/python3), the launcher environment, and TMP (a scratch directory removed on
# exit, after runs_cleanup, which a test may redefine). Then:
#   fail MSG / ok MSG      report a check (fail counts into $fails)
#   params_cmp A B TOL     exit 0 if the /params of two model files agree (TOL 0: bitwise)
#   run NAME NP ARGS...    rnntrain train --out $TMP/NAME on NP ranks (0: no launcher),
#                          output to $TMP/NAME.log, under a 300 s timeout
BIN=${1:?usage: $(basename "$0") RNNTRAIN_BIN MPIEXEC REPO_ROOT}
MPI=${2:?usage: $(basename "$0") RNNTRAIN_BIN MPIEXEC REPO_ROOT}
ROOT=${3:?usage: $(basename "$0") RNNTRAIN_BIN MPIEXEC REPO_ROOT}
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} # see scripts/run-main-job.sh
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
TMP=$(mktemp -d "${TMPDIR:-/tmp}/$(basename "$0" .sh).XXXXXX")
runs_cleanup() { :; }
trap 'runs_cleanup; rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok:   $*"; }

params_cmp() {
    "$PY" - "$1" "$2" "$3" <<'PYEOF'
import sys, h5py, numpy as np
a, b, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
    worst = 0.0
    for n in fa["params"]:
        x, y = fa["params"][n][()], fb["params"][n][()]
        if tol == 0.0:
            if x.tobytes() != y.tobytes():
                print("differs bitwise in", n); sys.exit(1)
            continue
        scale = max(float(np.abs(y).max()), 1e-3)
        worst = max(worst, float(np.abs(x - y).max()) / scale)
    print("worst relative difference %.3g" % worst)
    sys.exit(0 if worst <= tol else 1)
PYEOF
}

run() {
    local name=$1 np=$2; shift 2
    if [[ $np == 0 ]]; then
        timeout -k 5 300 "$BIN" train --out "$TMP/$name" "$@" > "$TMP/$name.log" 2>&1
    else
        timeout -k 5 300 "$MPI" -np "$np" "$BIN" train --out "$TMP/$name" "$@" > "$TMP/$name.log" 2>&1
    fi
}
