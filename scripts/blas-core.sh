# blas-core.sh - sourced by the bench scripts that compare rnntrain with sgemm or PyTorch.
#
# OpenBLAS picks its kernels from CPUID; an OpenBLAS older than the CPU falls back to a
# generic core (Debian 12's 0.3.21 runs Sapphire/Emerald Rapids Xeons as "Prescott": 24
# instead of 155 GFLOP/s sgemm). rnntrain replaces such a fallback by the best core the CPU
# supports (src/math/linalg.c, la_choose_blas_core); the programs it is compared with must run the
# same kernels, so the bench scripts give all of them OPENBLAS_CORETYPE=<that core>. This
# also drops the OPENBLAS_CORETYPE=Haswell the interactive shell here exports (half speed).
#
# bench_blas_core RNNTRAIN: prints the OpenBLAS core RNNTRAIN runs with OPENBLAS_CORETYPE unset.
bench_blas_core() {
    local core
    core=$(env -u OPENBLAS_CORETYPE -u RNNTRAIN_KEEP_BLAS_CORE "$1" --version \
        | sed -n 's/^OpenBLAS core: \([A-Za-z0-9_]*\).*/\1/p')
    [[ -n "$core" ]] || { echo "bench: cannot read the OpenBLAS core from '$1 --version'" >&2; return 1; }
    echo "$core"
}
