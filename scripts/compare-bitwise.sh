#!/usr/bin/env bash
# compare-bitwise.sh: check that a refactor changed no result. Trains with an OLD and a NEW
# rnntrain binary with identical options (30 steps each) over a matrix of cases and compares
# the final parameters BITWISE: the /params group of OUT/model.h5 must hold the same dataset
# names, shapes, dtypes and raw bytes, and the train losses of metrics.jsonl must be equal.
#
# Usage: scripts/compare-bitwise.sh [--old REF] [--new BIN] [--quick]
#   --old REF   an rnntrain binary, or a git commit-ish of this repository, which is then built
#               (Release, -DBUILD_TESTING=OFF) in a temporary `git worktree add --detach`
#               that is removed at exit (default: bc1f3ff, the last commit before the refactor)
#   --new BIN   the rnntrain binary under test (default: build/rnntrain of this repository)
#   --quick     a subset: one language-model case per cell kind on 1 rank and one sequence
#               task (a few seconds)
# Environment:
#   KEEP=1          keep the temporary directory (datasets, per-case logs and outputs)
#   RUN_TIMEOUT=S   seconds allowed for each run of a binary (default 300)
#   BUILD_TIMEOUT=S seconds allowed for building --old REF (default 1800)
#   OMPI_MCA_*      override the local-machine MPI settings set below (btl self,vader,tcp
#                   on lo, binding none; as in tests/CMakeLists.txt RNNTRAIN_TEST_ENV)
#
# Both binaries train on the same datasets, prepared once by the NEW binary into the temp
# dir: tokens from the first 200 KB of datasets/moby-dick.txt; digits.csv as classify and as
# generate; sunspots.csv as regress; and a per-step tagging dataset with token inputs and
# padded lengths, written with /usr/bin/python3 + h5py (docs/formats.md, docs/tasks.md).
# Every run is `mpirun --oversubscribe -np N` (N = 1 or 2) with OPENBLAS_NUM_THREADS=1,
# under `timeout`.
#
# Output: one line per case, `PASS  NAME`, `FAIL  NAME (first differing tensor, max abs
# diff)` followed by the train losses side by side, or `ERROR NAME (...)` followed by the
# last lines of the failing run's log; then a summary line. Exit status 0 only if every case
# passed; 1 if a case failed, could not run or was skipped (the tag cases without h5py);
# 2 for a usage or setup error.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() {
  echo "compare-bitwise: error: $*" >&2
  exit 2
}

OLD_REF=bc1f3ff
NEW_BIN=$REPO/build/rnntrain
QUICK=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --old) [[ $# -ge 2 ]] || die "--old needs a value (a binary or a commit)"; OLD_REF=$2; shift 2 ;;
    --old=*) OLD_REF=${1#--old=}; shift ;;
    --new) [[ $# -ge 2 ]] || die "--new needs a value (a binary)"; NEW_BIN=$2; shift 2 ;;
    --new=*) NEW_BIN=${1#--new=}; shift ;;
    --quick) QUICK=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (usage: scripts/compare-bitwise.sh [--old REF] [--new BIN] [--quick])" ;;
  esac
done

# ---- the binaries (relative paths are taken from the caller's directory) ------------------
if [[ ! -f $NEW_BIN || ! -x $NEW_BIN ]]; then
  die "NEW binary '$NEW_BIN' is missing or not executable: build it first" \
    "(cmake -S '$REPO' -B '$REPO/build' && cmake --build '$REPO/build') or pass --new BIN"
fi
NEW_BIN=$(realpath "$NEW_BIN")

OLD_BIN='' OLD_COMMIT='' OLD_WT=''
if [[ -f $OLD_REF && -x $OLD_REF ]]; then
  OLD_BIN=$(realpath "$OLD_REF")
elif OLD_COMMIT=$(git -C "$REPO" rev-parse --verify --quiet "$OLD_REF^{commit}"); then
  :
else
  die "--old '$OLD_REF' is neither an executable file nor a commit of $REPO"
fi

command -v mpirun >/dev/null || die "mpirun not found (install openmpi-bin)"
command -v timeout >/dev/null || die "timeout not found (coreutils)"
HAVE_H5PY=0
if [[ -x $PYTHON ]] && "$PYTHON" -c 'import h5py, numpy' 2>/dev/null; then
  HAVE_H5PY=1
elif command -v h5diff >/dev/null; then
  echo "compare-bitwise: note: $PYTHON has no h5py/numpy: comparing with h5diff (values, not bits)" \
    "and skipping the tag cases" >&2
else
  die "neither $PYTHON with h5py and numpy nor h5diff (hdf5-tools) is available"
fi

# ---- temp dir, cleanup ------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare-bitwise.XXXXXX")
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  if [[ -n $OLD_WT ]]; then
    git -C "$REPO" worktree remove --force "$OLD_WT" >/dev/null 2>&1 || rm -rf "$OLD_WT"
    git -C "$REPO" worktree prune >/dev/null 2>&1 || true
  fi
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "compare-bitwise: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
# Every long command runs in the background under `timeout` and is waited for, so that
# Ctrl-C / SIGTERM stop the script at once (timeout runs its command in its own process
# group, out of reach of the terminal's SIGINT): the trap sends SIGTERM to that one child.
CHILD=''
run_waited() { # run_waited CMD...: CMD in the background, waited for; returns its status
  "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=''
  return "$rc"
}
# shellcheck disable=SC2317  # invoked by the INT/TERM traps
on_signal() {
  trap '' INT TERM
  if [[ -n $CHILD ]]; then
    kill -TERM "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  echo "compare-bitwise: interrupted" >&2
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# ---- MPI / BLAS environment (tests/CMakeLists.txt RNNTRAIN_TEST_ENV) ---------------------
if [[ $(id -u) == 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} # see scripts/run-main-job.sh
fi
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader,tcp}
export OMPI_MCA_btl_tcp_if_include=${OMPI_MCA_btl_tcp_if_include:-lo}
export OMPI_MCA_oob_tcp_if_include=${OMPI_MCA_oob_tcp_if_include:-lo}
export OMPI_MCA_hwloc_base_binding_policy=${OMPI_MCA_hwloc_base_binding_policy:-none}
export OPENBLAS_NUM_THREADS=1

START=$SECONDS

# ---- build --old COMMIT ---------------------------------------------------------------------
if [[ -n $OLD_COMMIT ]]; then
  short=$(git -C "$REPO" rev-parse --short "$OLD_COMMIT")
  echo "building old $OLD_REF ($short) in $WORK/old-src ..."
  OLD_WT=$WORK/old-src
  if ! git -C "$REPO" worktree add --detach "$OLD_WT" "$OLD_COMMIT" >"$WORK/old-build.log" 2>&1; then
    OLD_WT=
    tail -n 20 "$WORK/old-build.log" >&2
    die "git worktree add of $OLD_REF failed"
  fi
  if ! { run_waited timeout -k 10 "$BUILD_TIMEOUT" cmake -S "$OLD_WT" -B "$WORK/old-build" \
           -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF &&
         run_waited timeout -k 10 "$BUILD_TIMEOUT" cmake --build "$WORK/old-build" -j"$(nproc)"; } \
       </dev/null >>"$WORK/old-build.log" 2>&1; then
    tail -n 30 "$WORK/old-build.log" >&2
    die "building $OLD_REF ($short) failed (log above)"
  fi
  OLD_BIN=$WORK/old-build/rnntrain
  [[ -x $OLD_BIN ]] || die "the build of $OLD_REF produced no rnntrain binary"
  echo "built $OLD_BIN in $((SECONDS - START)) s"
fi
echo "old: $OLD_BIN${OLD_COMMIT:+ (commit ${OLD_COMMIT:0:12})}"
echo "new: $NEW_BIN"

# ---- datasets, prepared once with the NEW binary ------------------------------------------
DATA=$WORK/data
mkdir -p "$DATA"
prep() { # prep NAME ARGS...: rnntrain prepare, log in DATA/NAME.log
  local name=$1
  shift
  if ! run_waited timeout -k 10 "$RUN_TIMEOUT" "$NEW_BIN" prepare "$@" --output "$DATA/$name.h5" \
       </dev/null >"$DATA/$name.log" 2>&1; then
    tail -n 10 "$DATA/$name.log" >&2
    die "preparing dataset '$name' with the NEW binary failed (log above)"
  fi
}
head -c 200000 "$REPO/datasets/moby-dick.txt" >"$DATA/moby-200k.txt"
prep lm --input "$DATA/moby-200k.txt"
prep classify --csv "$REPO/datasets/digits.csv" --task classify --steps 8 --features 8 \
  --split 0.7,0.1,0.2
prep generate --csv "$REPO/datasets/digits.csv" --task generate --steps 8 --features 8 \
  --split 0.7,0.1,0.2
prep regress --csv "$REPO/datasets/sunspots.csv" --task regress --column value --window 48 \
  --horizon 12 --split 0.8,0.1,0.1
if [[ $HAVE_H5PY == 1 ]]; then
  # Per-step tagging, token inputs (schema of docs/tasks.md, layout of tests/test_seqtask.c):
  # the tag of step t is (x_t + x_{t-1}) mod K; random lengths 1..T pad the rest.
  "$PYTHON" - "$DATA/tag.h5" <<'EOF' >"$DATA/tag.log" 2>&1 || { cat "$DATA/tag.log" >&2; die "writing the tag dataset failed"; }
import sys
import h5py
import numpy as np
V, T, K = 16, 12, 3
rng = np.random.RandomState(20240601)
with h5py.File(sys.argv[1], "w") as f:
    for k, v in (("format", "rnntrain-sequences"), ("task", "tag"), ("inputs", "tokens")):
        f.attrs[k] = np.bytes_(v)
    for k, v in (("version", 1), ("steps", T), ("vocab_size", V), ("classes", K)):
        f.attrs[k] = np.int64(v)
    for split, n in (("train", 512), ("valid", 64), ("test", 64)):
        x = rng.randint(0, V, size=(n, T)).astype(np.int32)
        prev = np.concatenate([np.zeros((n, 1), np.int32), x[:, :-1]], axis=1)
        g = f.create_group(split)
        g.create_dataset("inputs", data=x, dtype="<i4")
        g.create_dataset("lengths", data=rng.randint(1, T + 1, size=n).astype(np.int32), dtype="<i4")
        g.create_dataset("labels", data=((x + prev) % K).astype(np.int32), dtype="<i4")
EOF
fi

# ---- the comparison of two model files ------------------------------------------------------
cat >"$WORK/compare_params.py" <<'EOF'
"""compare_params.py OLD.h5 NEW.h5: are the /params groups bitwise identical?
Prints SAME (exit 0) or one line naming the first difference (exit 1); errors exit 2."""
import sys
import h5py
import numpy as np


def load(path):
    out = {}
    with h5py.File(path, "r") as f:
        if "params" not in f:
            raise SystemExit(f"{path}: no /params group")

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.shape, obj.dtype.str, np.asarray(obj[()]))

        f["params"].visititems(visit)
    return out


try:
    a, b = load(sys.argv[1]), load(sys.argv[2])
except Exception as e:  # unreadable file: not a comparison result
    print(f"cannot read: {e}", file=sys.stderr)
    sys.exit(2)
if sorted(a) != sorted(b):
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    print(f"tensor names differ: only in old {only_a}, only in new {only_b}")
    sys.exit(1)
diffs = []
for name in sorted(a):
    (sa, da, xa), (sb, db, xb) = a[name], b[name]
    if sa != sb:
        print(f"{name}: shape {sa} vs {sb}")
        sys.exit(1)
    if da != db:
        print(f"{name}: dtype {da} vs {db}")
        sys.exit(1)
    if xa.tobytes() != xb.tobytes():
        diffs.append(name)
if not diffs:
    print("SAME")
    sys.exit(0)
name = diffs[0]
xa, xb = a[name][2], b[name][2]
if xa.dtype.kind in "fiu":
    d = np.abs(xa.astype(np.float64) - xb.astype(np.float64))
    maxabs = f"max abs diff {np.nanmax(d) if d.size else 0:.3g}"
    w = xa.dtype.itemsize
    nvals = int(np.count_nonzero(xa.view(f"u{w}") != xb.view(f"u{w}"))) if w in (1, 2, 4, 8) else -1
else:
    maxabs, nvals = "non-numeric", -1
vals = f", {nvals}/{xa.size} values" if nvals >= 0 else ""
print(f"first differing tensor {name}: {maxabs}{vals}; {len(diffs)}/{len(a)} tensors differ")
sys.exit(1)
EOF

compare_params() { # compare_params OLD.h5 NEW.h5 -> prints SAME or a difference; status 0/1/2
  if [[ $HAVE_H5PY == 1 ]]; then
    "$PYTHON" "$WORK/compare_params.py" "$1" "$2"
  else
    local rc=0
    h5diff -q "$1" "$2" /params /params >/dev/null 2>&1 || rc=$?
    case $rc in
      0) echo SAME ;;
      1) echo "h5diff: /params differ" ;;
      *) echo "h5diff failed (status $rc)" >&2 ;;
    esac
    return "$rc"
  fi
}

train_losses() { # the "step loss" pairs of the train lines of a metrics.jsonl
  grep '"kind": "train"' "$1" 2>/dev/null |
    sed -n 's/.*"step": \([0-9]*\).*"loss": \([^,}]*\).*/\1 \2/p' || true
}

# ---- the matrix -----------------------------------------------------------------------------
COMMON=(--steps 30 --ckpt-minutes 0 --print-every 10)
LM="--layers 2 --hidden 32 --embed 16 --batch 8 --bptt 16"
SEQ="--layers 1 --hidden 16 --batch 16"
CASES=() # "NAME|RANKS|DATASET|OPTIONS"
for cell in rnn lstm gru; do
  for np in 1 2; do
    CASES+=("lm-$cell-np$np|$np|lm|--model $cell $LM")
    CASES+=("lm-$cell-np$np-det|$np|lm|--model $cell $LM --deterministic --micro-batch 2")
  done
done
CASES+=(
  "lm-rnn-np1-init-uniform|1|lm|--model rnn $LM --init uniform"
  # --hidden 4: at bc1f3ff fill_orthogonal (src/model.c) projected onto the unnormalised
  # earlier rows, so the rows grew without bound (and came out nearly parallel); from
  # H >= 6 they overflowed and REQUIRE(norm > 1e-12) stopped the run. H = 4 ran that code.
  # Fixed on purpose in f295a1d: against bc1f3ff this case FAILs (the only expected one);
  # compare later refactors against f295a1d or newer.
  "lm-gru-np1-init-orthogonal|1|lm|--model gru --layers 2 --hidden 4 --embed 16 --batch 8 --bptt 16 --init orthogonal"
  "lm-lstm-np1-sgd|1|lm|--model lstm $LM --optim sgd --lr 0.1"
  "lm-gru-np1-rmsprop|1|lm|--model gru $LM --optim rmsprop --lr 1e-3"
  "lm-rnn-np2-adamw-cosine|2|lm|--model rnn $LM --optim adamw --weight-decay 0.01 --schedule cosine --warmup 5"
  "lm-lstm-np1-step-schedule|1|lm|--model lstm $LM --schedule step --decay-every 10 --decay-gamma 0.5"
  "lm-lstm-np1-eval-every|1|lm|--model lstm $LM --eval-every 10 --eval-batch 8"
  "lm-lstm-np2-verify|2|lm|--model lstm $LM --verify-every 10"
  "lm-lstm-np1-clip|1|lm|--model lstm $LM --clip 0.25"
  "lm-gru-np2-det-clip|2|lm|--model gru $LM --clip 0.25 --deterministic --micro-batch 2"
  # 8 streams x 40 steps = 320 rows per rank > vocab 256: the per-token embedding gradient
  "lm-lstm-np1-bptt40-embed-per-token|1|lm|--model lstm --layers 2 --hidden 32 --embed 16 --batch 8 --bptt 40"
)
for np in 1 2; do
  CASES+=(
    "seq-classify-lstm-np$np|$np|classify|--model lstm $SEQ"
    "seq-tag-gru-np$np|$np|tag|--model gru $SEQ --embed 8"
    "seq-regress-lstm-np$np|$np|regress|--model lstm $SEQ"
    "seq-generate-rnn-np$np|$np|generate|--model rnn $SEQ"
  )
done
CASES+=("seq-classify-lstm-np2-clip|2|classify|--model lstm $SEQ --clip 0.3")
if [[ $QUICK == 1 ]]; then
  QUICK_NAMES=" lm-rnn-np1 lm-lstm-np1 lm-gru-np1 seq-classify-lstm-np1 "
  sel=()
  for c in "${CASES[@]}"; do
    [[ $QUICK_NAMES == *" ${c%%|*} "* ]] && sel+=("$c")
  done
  CASES=("${sel[@]}")
fi

# ---- run ------------------------------------------------------------------------------------
run_one() { # run_one CASEDIR WHICH BIN RANKS DATASET OPTIONS... -> status of the run
  local dir=$1 which=$2 bin=$3 np=$4 data=$5
  shift 5
  local rc=0
  run_waited timeout -k 10 "$RUN_TIMEOUT" mpirun --oversubscribe -np "$np" "$bin" train \
    --data "$DATA/$data.h5" --out "$dir/$which" "$@" "${COMMON[@]}" \
    </dev/null >"$dir/$which.log" 2>&1 || rc=$?
  if [[ $rc == 0 && ! -f $dir/$which/model.h5 ]]; then
    echo "compare-bitwise: exit 0 but no $dir/$which/model.h5" >>"$dir/$which.log"
    rc=1
  fi
  return "$rc"
}

indent() { sed 's/^/        /'; }
n_pass=0 n_fail=0 n_err=0 n_skip=0
failed=()
echo "running ${#CASES[@]} cases (30 steps each, old then new) ..."
for c in "${CASES[@]}"; do
  IFS='|' read -r name np data opts <<<"$c"
  if [[ $data == tag && $HAVE_H5PY != 1 ]]; then
    echo "SKIP  $name (no h5py to write the tag dataset)"
    n_skip=$((n_skip + 1))
    continue
  fi
  dir=$WORK/cases/$name
  mkdir -p "$dir"
  read -r -a args <<<"$opts"
  printf '%s\n' "mpirun --oversubscribe -np $np BIN train --data $DATA/$data.h5 --out DIR $opts ${COMMON[*]}" >"$dir/command"
  err=
  for which in old new; do
    if [[ $which == old ]]; then bin=$OLD_BIN; else bin=$NEW_BIN; fi
    rc=0
    run_one "$dir" "$which" "$bin" "$np" "$data" "${args[@]}" || rc=$?
    if [[ $rc != 0 ]]; then
      if [[ $rc == 124 || $rc == 137 ]]; then
        err="$which binary timed out after ${RUN_TIMEOUT} s"
      else
        err="$which binary exited with status $rc"
      fi
      break
    fi
  done
  if [[ -n $err ]]; then
    [[ ${KEEP:-0} != 1 ]] || err+="; log $dir/$which.log"
    echo "ERROR $name ($err):"
    { grep -i -m 3 'error' "$dir/$which.log" || true; echo ...; tail -n 4 "$dir/$which.log"; } | indent
    n_err=$((n_err + 1))
    failed+=("$name")
    continue
  fi
  rc=0
  verdict=$(compare_params "$dir/old/model.h5" "$dir/new/model.h5" 2>"$dir/compare.err") || rc=$?
  lo=$(train_losses "$dir/old/metrics.jsonl")
  ln=$(train_losses "$dir/new/metrics.jsonl")
  if [[ $rc -ge 2 ]]; then
    echo "ERROR $name (comparing the model files failed):"
    indent <"$dir/compare.err"
    n_err=$((n_err + 1))
    failed+=("$name")
    continue
  fi
  if [[ $rc == 0 && $lo == "$ln" ]]; then
    echo "PASS  $name"
    n_pass=$((n_pass + 1))
    continue
  fi
  [[ $rc == 0 ]] && verdict="params identical but the train losses differ"
  echo "FAIL  $name ($verdict)"
  {
    printf '%-6s %-16s %-16s\n' step "loss old" "loss new"
    join -a1 -a2 -e - -o 0,1.2,2.2 <(sort -k1,1 <<<"$lo") <(sort -k1,1 <<<"$ln") |
      sort -n | while read -r s a b; do
        mark=
        [[ $a == "$b" ]] || mark=" *"
        printf '%-6s %-16s %-16s%s\n' "$s" "$a" "$b" "$mark"
      done
  } | indent
  n_fail=$((n_fail + 1))
  failed+=("$name")
done

total=$(( n_pass + n_fail + n_err + n_skip ))
summary="$n_pass/$total passed, $n_fail failed, $n_err errors"
[[ $n_skip == 0 ]] || summary+=", $n_skip skipped"
echo "summary: $summary in $((SECONDS - START)) s (old $OLD_BIN vs new $NEW_BIN)"
if [[ ${#failed[@]} -gt 0 || $n_skip -gt 0 ]]; then
  [[ ${KEEP:-0} == 1 ]] || echo "(rerun with KEEP=1 to keep the logs and outputs of every case)"
  exit 1
fi
exit 0
