/* bench_onednn_bf16: is a bf16 matrix product (oneDNN, bf16 inputs, fp32 accumulation and
 * output) faster than OpenBLAS's sgemm on this CPU, and than rnntrain's own AVX512-BF16
 * kernels (src/math/bf16.c), at the shapes an LSTM step uses? The measurement behind issue
 * 16's choice of a bf16 backend. Not part of the build (oneDNN is not a dependency of
 * rnntrain); after a CMake build in build/:
 *
 *   apt-get install libdnnl-dev
 *   gcc -O2 -fopenmp -Isrc/math -Isrc/core scripts/bench_onednn_bf16.c build/librnncore.a \
 *       -o /tmp/bench_bf16 -ldnnl $(pkg-config --cflags --libs openblas ompi-c) -lm
 *   OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /tmp/bench_bf16 M N K [ROUNDS]
 *
 * C(M,N) = A(M,K) . B(N,K)^T, the weights used transposed as in rnntrain's forward
 * products. Prints oneDNN's kernel (e.g. brg:avx512_core_bf16, or ..._amx when AMX tiles
 * are usable) and GFLOP/s of the three, alternating, ROUNDS rounds (default 5), and the
 * ratios. oneDNN and rnntrain are timed on inputs already in bf16 (rnntrain's packed B and
 * converted A), as a trainer holding bf16 copies would run them; "rnntrain+conv" also
 * converts A and packs B every call, as rnntrain does for every product but the recurrent
 * one. */
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include "bf16.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define CHECK(x)                                                                           \
    do {                                                                                   \
        dnnl_status_t st_ = (x);                                                           \
        if (st_ != dnnl_success) {                                                         \
            fprintf(stderr, "bench_bf16: %s failed (%d)\n", #x, (int)st_);                 \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* round to nearest even, as the bf16 conversion instructions do */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s M N K [ROUNDS]\n", argv[0]);
        return 2;
    }
    int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]);
    int rounds = argc > 4 ? atoi(argv[4]) : 5;
    if (M < 1 || N < 1 || K < 1 || rounds < 1) {
        fprintf(stderr, "bench_bf16: M, N, K and ROUNDS must be positive\n");
        return 2;
    }
    size_t na = (size_t)M * K, nb = (size_t)N * K, nc = (size_t)M * N;
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4);
    uint16_t *Ab = malloc(na * 2), *Bb = malloc(nb * 2);
    if (!A || !B || !C || !Ab || !Bb) return 1;
    srand(1);
    for (size_t i = 0; i < na; i++) Ab[i] = to_bf16(A[i] = (float)rand() / RAND_MAX - 0.5f);
    for (size_t i = 0; i < nb; i++) Bb[i] = to_bf16(B[i] = (float)rand() / RAND_MAX - 0.5f);

    dnnl_engine_t eng;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N}, as = {K, 1}, bs = {1, K}, cs = {N, 1};
    CHECK(dnnl_memory_desc_init_by_strides(&a_md, 2, ad, dnnl_bf16, as));
    CHECK(dnnl_memory_desc_init_by_strides(&b_md, 2, bd, dnnl_bf16, bs)); /* B^T: (K,N) view */
    CHECK(dnnl_memory_desc_init_by_strides(&c_md, 2, cd, dnnl_f32, cs));
    dnnl_matmul_desc_t md;
    CHECK(dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    dnnl_primitive_t prim;
    CHECK(dnnl_primitive_create(&prim, pd));
    dnnl_memory_t am, bm, cm;
    CHECK(dnnl_memory_create(&am, &a_md, eng, Ab));
    CHECK(dnnl_memory_create(&bm, &b_md, eng, Bb));
    CHECK(dnnl_memory_create(&cm, &c_md, eng, C));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};

    double flop = 2.0 * M * N * K;
    int reps = (int)(6e9 / flop) + 1; /* about 6 GFLOP per timing */
    printf("M %d N %d K %d | oneDNN kernel %s | %d products per timing\n", M, N, K, impl, reps);
    if (!bf16_supported(NULL)) {
        fprintf(stderr, "bench_bf16: this CPU has no AVX512-BF16\n");
        return 1;
    }
    int lda = bf16_row_stride(K);
    uint16_t *Ar = aligned_alloc(64, ((size_t)M * lda * 2 + 63) / 64 * 64);
    uint16_t *Bp = aligned_alloc(64, (bf16_packed_elems(N, K) * 2 + 63) / 64 * 64);
    if (!Ar || !Bp) return 1;
    bf16_convert_rows(Ar, A, K, M, K);
    bf16_pack(Bp, B, K, N, K, 1);
    double sum_b = 0, sum_s = 0, sum_r = 0, sum_c = 0;
    for (int r = 0; r < rounds; r++) {
        CHECK(dnnl_primitive_execute(prim, stream, 3, args));
        CHECK(dnnl_stream_wait(stream));
        double t0 = now();
        for (int i = 0; i < reps; i++) CHECK(dnnl_primitive_execute(prim, stream, 3, args));
        CHECK(dnnl_stream_wait(stream));
        double gb = flop * reps / (now() - t0) / 1e9;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f,
                    C, N);
        t0 = now();
        for (int i = 0; i < reps; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f,
                        C, N);
        double gs = flop * reps / (now() - t0) / 1e9;
        t0 = now();
        for (int i = 0; i < reps; i++) bf16_matmul_packed(C, N, Ar, lda, Bp, M, N, K, 0.0f);
        double gr = flop * reps / (now() - t0) / 1e9;
        t0 = now();
        for (int i = 0; i < reps; i++) bf16_gemm(C, N, A, K, 0, B, K, 1, M, N, K, 0.0f);
        double gc = flop * reps / (now() - t0) / 1e9;
        printf("round %d: oneDNN bf16 %.1f, rnntrain bf16 %.1f, rnntrain+conv %.1f, sgemm %.1f "
               "GFLOP/s | rnntrain/oneDNN %.2f, oneDNN/sgemm %.2f\n", r + 1, gb, gr, gc, gs,
               gr / gb, gb / gs);
        sum_b += gb;
        sum_s += gs;
        sum_r += gr;
        sum_c += gc;
    }
    printf("mean: oneDNN bf16 %.1f, rnntrain bf16 %.1f, rnntrain+conv %.1f, sgemm %.1f GFLOP/s "
           "| rnntrain/oneDNN %.2f, oneDNN/sgemm %.2f, rnntrain/sgemm %.2f\n", sum_b / rounds,
           sum_r / rounds, sum_c / rounds, sum_s / rounds, sum_r / sum_b, sum_b / sum_s,
           sum_r / sum_s);
    free(Ar);
    free(Bp);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(am);
    dnnl_memory_destroy(bm);
    dnnl_memory_destroy(cm);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    free(A);
    free(B);
    free(C);
    free(Ab);
    free(Bb);
    return 0;
}
