/* bench_packed.c - the per-step recurrent product C(M,N) = A(M,K) . W^T with rnntrain's
 * packed AVX-512 kernel (src/math/linalg.c, la_matmul_packed) and with cblas_sgemm, for the
 * shapes of an LSTM step (M = streams per rank) and for a W small enough to stay in L2.
 *
 * Build against the core library of a CMake build (build/librnncore.a):
 *   cc -O2 -Isrc scripts/bench_packed.c build/librnncore.a \
 *       $(pkg-config --cflags --libs openblas) -lm -o /tmp/bench_packed
 *   /tmp/bench_packed            # OPENBLAS_CORETYPE as for rnntrain: see docs/benchmarks.md
 *
 * Each shape: 15 trials of >= 0.1 s each, alternating the two implementations; prints the
 * median and best GFLOP/s (2*M*N*K flops per call) and the size of W. The packed kernel
 * streams all of W once per product: when W does not fit in the core's L2 cache, the rate
 * is bounded by the L3 (or memory) bandwidth, not by the FMA units. */
#define _POSIX_C_SOURCE 200112L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "linalg.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum { TRIALS = 15 };

int main(void) {
    /* M, N, K: LSTM H=512 forward (gates = h W_hh^T) and backward (dh = dG W_hh), H=256,
     * and an H=512 shape with a quarter of W (1 MB: fits in L2) */
    static const int shapes[][3] = {{32, 2048, 512}, {32, 512, 2048}, {32, 1024, 256},
                                    {16, 2048, 512}, {32, 512, 512}};
    printf("OpenBLAS core %s; packed AVX-512 kernel %s\n", la_setup(1),
           la_packed_native() ? "in use" : "NOT available (cblas fallback)");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *W = aligned_alloc(64, (size_t)N * K * sizeof(float));
        float *A = aligned_alloc(64, (size_t)M * K * sizeof(float));
        float *C = aligned_alloc(64, (size_t)M * N * sizeof(float));
        float *panels = aligned_alloc(64, la_packed_floats(N, K) * sizeof(float));
        if (!W || !A || !C || !panels) {
            fprintf(stderr, "bench_packed: out of memory\n");
            return 1;
        }
        srand(1);
        for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (float)rand() / RAND_MAX - 0.5f;
        for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)rand() / RAND_MAX - 0.5f;
        LaPacked p;
        la_pack_nt(&p, panels, W, N, K);
        double rate[2][TRIALS];
        for (int t = 0; t < TRIALS; t++)
            for (int v = 0; v < 2; v++) {
                long calls = 0;
                double t0 = now_s(), el;
                do {
                    if (v == 0)
                        la_matmul_packed(C, A, &p, M, 0.0f);
                    else
                        la_matmul_nt(C, A, W, M, N, K, 0.0f);
                    calls++;
                    el = now_s() - t0;
                } while (el < 0.1);
                rate[v][t] = 2.0 * M * N * K * (double)calls / el / 1e9;
            }
        for (int v = 0; v < 2; v++) qsort(rate[v], TRIALS, sizeof(double), by_value);
        printf("M=%-3d N=%-5d K=%-5d W %5.2f MB   packed median %6.1f best %6.1f GFLOP/s   "
               "cblas median %6.1f best %6.1f\n", M, N, K, (double)N * K * 4 / 1048576.0,
               rate[0][TRIALS / 2], rate[0][TRIALS - 1], rate[1][TRIALS / 2],
               rate[1][TRIALS - 1]);
        free(W);
        free(A);
        free(C);
        free(panels);
    }
    return 0;
}
