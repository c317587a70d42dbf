# lib.sh - shared by the run tests (tests/runs/test_*_runs.sh), sourced after they set
# BIN (rnntrain), MPI (mpiexec), PY (/usr/bin/python3) and TMP (a scratch directory):
#   fail MSG / ok MSG      report a check (fail counts into $fails)
#   params_cmp A B TOL     exit 0 if the /params of two model files agree (TOL 0: bitwise)
#   run NAME NP ARGS...    rnntrain train --out $TMP/NAME on NP ranks (0: no launcher),
#                          output to $TMP/NAME.log, under a 300 s timeout
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
