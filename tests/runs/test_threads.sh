#!/usr/bin/env bash
# threads_runs: `rnntrain train --threads K` through the binary, on a byte-level language
# model of Moby Dick, for every layer kind (rnn, lstm, gru, mamba, s5):
#   * --deterministic: --threads 2 gives bitwise the parameters of --threads 1, and so do
#     2 ranks x 2 threads; the chunk (--bptt 100) and micro-batch (4 streams) make the
#     weight-gradient products K = 400 rows long, a K for which OpenBLAS's threaded sgemm
#     rounds differently from its one-thread sgemm (so the test fails if the fp32 BLAS
#     products ran threaded under --deterministic);
#   * without --deterministic, bf16 (on a CPU with AVX512-BF16): --threads 2 bitwise
#     --threads 1 (every product is our own kernel, split by columns);
#   * the banner names the thread count; the OpenBLAS in use is the OpenMP build, or the
#     run warns that it is not.
#   tests/runs/test_threads.sh RNNTRAIN_BIN MPIEXEC REPO_ROOT
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

head -c 100000 "$ROOT/datasets/moby-dick.txt" > "$TMP/text.txt"
"$BIN" prepare --input "$TMP/text.txt" --output "$TMP/lm.h5" >/dev/null || fail "prepare lm"
BASE="--data $TMP/lm.h5 --batch 8 --eval-batch 8 --ckpt-minutes 0 --print-every 5"

kind_opts() {
    case $1 in
        rnn | lstm | gru) echo "--model $1 --layers 2 --hidden 40" ;;
        mamba) echo "--model mamba --layers 2 --hidden 40 --d-state 4" ;; # E = 80: 2 blocks
        s5) echo "--model s5 --layers 2 --hidden 40 --d-state 160" ;;     # 80 modes: 2 chunks
    esac
}

for kind in rnn lstm gru mamba s5; do
    opts="$BASE $(kind_opts $kind)"
    det="$opts --deterministic --micro-batch 4 --bptt 100 --steps 4"
    run "$kind-t1" 0 $det --threads 1 || fail "$kind --threads 1: $(tail -3 "$TMP/$kind-t1.log")"
    run "$kind-t2" 0 $det --threads 2 || fail "$kind --threads 2: $(tail -3 "$TMP/$kind-t2.log")"
    run "$kind-r2t2" 2 $det --threads 2 || fail "$kind 2 ranks x 2 threads: $(tail -3 "$TMP/$kind-r2t2.log")"
    for v in t2 r2t2; do
        if r=$(params_cmp "$TMP/$kind-$v/model.h5" "$TMP/$kind-t1/model.h5" 0); then
            ok "$kind --deterministic fp32: $v bitwise 1 thread"
        else fail "$kind --deterministic fp32: $v vs 1 thread: $r"; fi
    done
    grep -q "ranks 1 x 2 BLAS threads" "$TMP/$kind-t2.log" \
        || fail "$kind: the banner does not name 2 threads: $(grep '^ranks' "$TMP/$kind-t2.log")"
    if grep -q avx512_bf16 /proc/cpuinfo; then
        b="$opts --precision bf16 --bptt 24 --steps 6"
        run "$kind-b1" 0 $b --threads 1 || fail "$kind bf16 --threads 1: $(tail -3 "$TMP/$kind-b1.log")"
        run "$kind-b2" 0 $b --threads 2 || fail "$kind bf16 --threads 2: $(tail -3 "$TMP/$kind-b2.log")"
        if r=$(params_cmp "$TMP/$kind-b2/model.h5" "$TMP/$kind-b1/model.h5" 0); then
            ok "$kind bf16: --threads 2 bitwise --threads 1"
        else fail "$kind bf16: --threads 2 vs 1: $r"; fi
    fi
done

# the OpenMP build of OpenBLAS is linked, or a 2-thread run says it is not
# (grep without -q: with pipefail, -q's early exit can kill ldd with SIGPIPE and fail the if)
if ldd "$BIN" | grep "openblas-openmp" >/dev/null; then
    ok "linked with OpenBLAS's OpenMP build"
    grep -q "pthreads build" "$TMP/lstm-t2.log" && fail "warned of a pthreads OpenBLAS although the OpenMP build is linked"
else
    grep -q "pthreads build" "$TMP/lstm-t2.log" && ok "pthreads OpenBLAS: the 2-thread run warns" \
        || fail "pthreads OpenBLAS without a warning in a 2-thread run"
fi

echo "threads_runs: $fails failure(s)"
exit $((fails > 0))
