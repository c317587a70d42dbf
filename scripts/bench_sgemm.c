/* bench_sgemm.c - single-precision GEMM rate of this machine through cblas_sgemm.
 *
 * Build (the bench scripts do this in a temp dir):
 *   cc -O2 scripts/bench_sgemm.c -o bench_sgemm $(pkg-config --cflags --libs openblas)
 *
 * Usage:
 *   bench_sgemm [N [THREADS]]        square row-major C = A*B, N x N (default 2048)
 *   bench_sgemm --rnn [THREADS]      RNN-shaped GEMMs (LSTM 512: 4H = 2048 gate columns,
 *                                    K = 512): per-step recurrent M=32 and whole-chunk
 *                                    M=2048 (B*T rows), plus the square 2048 baseline
 *   bench_sgemm --json ...           one JSON object per line instead of text
 *
 * Each shape: one warm-up call, then 3 trials; a trial repeats the GEMM until at least
 * 1 s has passed; the reported rate is the best trial (2*M*N*K flops per call).
 * THREADS (default: leave OpenBLAS's choice, i.e. OPENBLAS_NUM_THREADS) is applied with
 * openblas_set_num_threads().  The OpenBLAS core name (kernel set chosen at run time)
 * is printed: with OPENBLAS_CORETYPE=Haswell exported, AVX-512 machines run the AVX2
 * kernels at about half speed, so run benchmarks with `env -u OPENBLAS_CORETYPE`.
 */
#define _POSIX_C_SOURCE 200112L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *alloc_fill(size_t n, unsigned seed) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, n * sizeof(float)) != 0 || !p) {
        fprintf(stderr, "bench_sgemm: out of memory (%zu floats)\n", n);
        exit(1);
    }
    unsigned s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 9) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

/* Best-of-3 GFLOP/s of C(MxN) = A(MxK) * B(KxN), row-major, each trial >= min_s seconds. */
static double gemm_rate(int M, int N, int K, double min_s, long *calls_out) {
    float *A = alloc_fill((size_t)M * K, 1u);
    float *B = alloc_fill((size_t)K * N, 2u);
    float *C = alloc_fill((size_t)M * N, 3u);
    const double flops = 2.0 * M * N * K;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N,
                0.0f, C, N); /* warm-up: thread pool, page faults, caches */

    double best = 0.0;
    long best_calls = 0;
    for (int trial = 0; trial < 3; trial++) {
        long calls = 0;
        double t0 = now_s(), dt;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B,
                        N, 0.0f, C, N);
            calls++;
            dt = now_s() - t0;
        } while (dt < min_s);
        double rate = flops * (double)calls / dt / 1e9;
        if (rate > best) {
            best = rate;
            best_calls = calls;
        }
    }
    volatile float sink = C[0] + C[(size_t)M * N - 1];
    (void)sink;
    free(A);
    free(B);
    free(C);
    if (calls_out) *calls_out = best_calls;
    return best;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_sgemm [--json] [N [THREADS]]\n"
            "       bench_sgemm [--json] --rnn [THREADS]\n"
            "Best-of-3 (>= 1 s each) cblas_sgemm rate, row-major, in GFLOP/s.\n"
            "N: square size (default 2048). THREADS: openblas_set_num_threads "
            "(default: OpenBLAS's own choice).\n"
            "--rnn: M=32,N=2048,K=512 (per-step recurrent), M=2048,N=2048,K=512 (chunk) "
            "and square 2048.\n");
}

static int parse_pos(const char *s, const char *what) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!end || *end || v < 1 || v > 1000000) {
        fprintf(stderr, "bench_sgemm: bad %s '%s'\n", what, s);
        usage(stderr);
        exit(2);
    }
    return (int)v;
}

static void report(int json, const char *name, int M, int N, int K, double rate, long calls,
                   int threads) {
    if (json)
        printf("{\"shape\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"gflops\": %.2f, "
               "\"calls\": %ld, \"threads\": %d, \"corename\": \"%s\"}\n",
               name, M, N, K, rate, calls, threads, openblas_get_corename());
    else
        printf("sgemm %-10s M=%-5d N=%-5d K=%-5d %8.1f GFLOP/s  (%ld calls/trial, %d thread%s, "
               "core %s)\n",
               name, M, N, K, rate, calls, threads, threads == 1 ? "" : "s",
               openblas_get_corename());
    fflush(stdout);
}

int main(int argc, char **argv) {
    int json = 0, rnn = 0, npos = 0;
    const char *pos[2] = {NULL, NULL};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--rnn"))
            rnn = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "bench_sgemm: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (npos < 2)
            pos[npos++] = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    int n = 2048, threads = 0;
    if (rnn) {
        if (npos > 1) {
            usage(stderr);
            return 2;
        }
        if (npos == 1) threads = parse_pos(pos[0], "THREADS");
    } else {
        if (npos >= 1) n = parse_pos(pos[0], "N");
        if (npos >= 2) threads = parse_pos(pos[1], "THREADS");
    }
    if (threads > 0) openblas_set_num_threads(threads);
    threads = openblas_get_num_threads();

    if (!json) {
        const char *ct = getenv("OPENBLAS_CORETYPE");
        printf("OpenBLAS core: %s, %d thread%s (OPENBLAS_CORETYPE=%s)\n",
               openblas_get_corename(), threads, threads == 1 ? "" : "s", ct ? ct : "<unset>");
    }
    long calls = 0;
    double r;
    if (rnn) {
        r = gemm_rate(32, 2048, 512, 1.0, &calls);
        report(json, "recurrent", 32, 2048, 512, r, calls, threads);
        r = gemm_rate(2048, 2048, 512, 1.0, &calls);
        report(json, "chunk", 2048, 2048, 512, r, calls, threads);
        r = gemm_rate(2048, 2048, 2048, 1.0, &calls);
        report(json, "square", 2048, 2048, 2048, r, calls, threads);
    } else {
        r = gemm_rate(n, n, n, 1.0, &calls);
        report(json, "square", n, n, n, r, calls, threads);
    }
    return 0;
}
