/* MPI point-to-point and all-reduce micro-benchmark for the scaling model of docs/scaling.md.
 *
 *   mpicc -O2 -o bench_pingpong scripts/bench_pingpong.c
 *   mpirun -np 2 ./bench_pingpong [--quick] [--lstm H1,H2,...] [--layers L] [--vocab V]
 *                                  [--floats N1,N2,...] [--default-malloc-only] [--json FILE]
 *
 * 0. Rank 0 times the first touch of 64 MiB of fresh anonymous memory (mmap + memset) against
 *    rewriting it (see the malloc note in 2).
 * 1. Ping-pong between ranks 0 and 1 (the other ranks wait): for message sizes from 0 bytes
 *    to 64 MiB, the half round-trip time (median, and minimum, over several repetitions of a
 *    timed loop), and the bandwidth size / half-round-trip.  On a busy machine the minimum
 *    is the better estimate of what the link can do, the median of what a job gets.  Latency = the half round trip of small
 *    messages; bandwidth = the large-message figure.
 * 2. MPI_Allreduce(MPI_IN_PLACE, float, MPI_SUM) over all ranks for the gradient sizes of
 *    LSTM models with the given hidden sizes (vocabulary V, embedding = hidden, L layers):
 *        params = sum over layers 4H(in+H) + 8H   (in = E for layer 1, H above)
 *                 + V*E (embedding) + V*H + V     (output layer)
 *    and for any extra --floats counts.  Reported: the median (and minimum) time of one
 *    all-reduce (the slowest rank's time of each call), and
 *    the "bus bandwidth" 2(p-1)/p * bytes / time, comparable to the point-to-point figure.
 *
 *    The all-reduces run twice: with glibc's default malloc, then with mmap disabled
 *    (mallopt M_MMAP_MAX 0, no trimming), see below; --default-malloc-only skips the second.
 * 3. The same gradients cut into the trainer's per-layer buckets (output layer, layer L..1,
 *    embedding): one blocking all-reduce of everything, blocking all-reduces per bucket, and
 *    all buckets posted with MPI_Iallreduce then MPI_Waitall (runs with mmap disabled when
 *    pass 2 ran).
 *
 * Output: a human-readable table on stdout (rank 0), and with --json FILE one JSON object per
 * line: {"kind":"firsttouch","bytes":..,"fresh_mb_s":..,"rewrite_mb_s":..},
 * {"kind":"pingpong","bytes":..,"loops":..,"half_rtt_us":..,"mb_s":..,"min_half_rtt_us":..,
 * "max_mb_s":..} and {"kind":"allreduce","what":..,"floats":..,"bytes":..,"ranks":..,"ms":..,
 * "calls":..,"busbw_mb_s":..,"min_ms":..,"malloc":"default"|"nommap"} and {"kind":"buckets",
 * "what":..,"floats":..,"buckets":..,"ranks":..,"whole_ms":..,"per_bucket_ms":..,
 * "nonblocking_ms":.., and the *_min_ms} (ms, half_rtt_us: medians).
 */
#include <limits.h>
#include <malloc.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static long lstm_params(long H, long E, long V, int L) {
    long p = 0;
    for (int k = 0; k < L; k++) {
        long in = k == 0 ? E : H;
        p += 4 * H * (in + H) + 8 * H;
    }
    return p + V * E + V * H + V;
}

/* Parse "a,b,c" into at most max longs; returns the count. */
static int parse_list(const char *s, long *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0) {
            fprintf(stderr, "bench_pingpong: bad list '%s'\n", s);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    int quick = 0, layers = 2, malloc_both = 1;
    long vocab = 256;
    long hidden[16] = {128, 256, 512, 1024};
    int nhidden = 4;
    long extra[16];
    int nextra = 0;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--default-malloc-only")) malloc_both = 0;
        else if (!strcmp(argv[i], "--lstm") && i + 1 < argc) nhidden = parse_list(argv[++i], hidden, 16);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--vocab") && i + 1 < argc) vocab = atol(argv[++i]);
        else if (!strcmp(argv[i], "--floats") && i + 1 < argc) nextra = parse_list(argv[++i], extra, 16);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else {
            if (rank == 0)
                fprintf(stderr, "usage: bench_pingpong [--quick] [--lstm H1,H2,..] [--layers L] "
                                "[--vocab V] [--floats N1,N2,..] [--default-malloc-only] [--json FILE]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (size < 2) {
        if (rank == 0) fprintf(stderr, "bench_pingpong: needs at least 2 ranks\n");
        MPI_Finalize();
        return 2;
    }
    FILE *js = NULL;
    if (rank == 0 && json_path && !(js = fopen(json_path, "w"))) {
        perror(json_path);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }

    /* 0. First touch of fresh anonymous pages (what a fresh mmap'd buffer costs), against
     *    rewriting memory already touched: on some VMs the first is 100x slower. */
    if (rank == 0) {
        const size_t ft = (size_t)64 << 20;
        double best_fresh = 1e30, best_warm = 1e30;
        for (int r = 0; r < 3; r++) {
            char *p = mmap(NULL, ft, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) break;
            double t0 = MPI_Wtime();
            memset(p, r + 1, ft);
            double t1 = MPI_Wtime();
            memset(p, r + 2, ft);
            double t2 = MPI_Wtime();
            __asm__ volatile("" : : "r"(p) : "memory");
            munmap(p, ft);
            if (t1 - t0 < best_fresh) best_fresh = t1 - t0;
            if (t2 - t1 < best_warm) best_warm = t2 - t1;
        }
        printf("# memory: first touch of 64 MiB of fresh pages %.0f MB/s; rewrite %.0f MB/s "
               "(best of 3)\n", ft / best_fresh / 1e6, ft / best_warm / 1e6);
        if (js)
            fprintf(js, "{\"kind\": \"firsttouch\", \"bytes\": %zu, \"fresh_mb_s\": %.1f, "
                        "\"rewrite_mb_s\": %.1f}\n", ft, ft / best_fresh / 1e6, ft / best_warm / 1e6);
    }
    MPI_Barrier(MPI_COMM_WORLD);

    const size_t max_bytes = (size_t)64 << 20;
    char *buf = malloc(max_bytes);
    if (!buf) MPI_Abort(MPI_COMM_WORLD, 1);
    memset(buf, 1, max_bytes);

    /* ---- 1. ping-pong ---- */
    if (rank == 0) {
        printf("# ranks %d; ping-pong rank 0 <-> rank 1; times are half round trips "
               "(median of %d timed loops)\n", size, quick ? 3 : 7);
        printf("%12s %8s %14s %12s %14s %12s\n", "bytes", "loops", "half_rtt_us", "MB/s",
               "min_rtt/2_us", "max_MB/s");
    }
    const int reps = quick ? 3 : 7;
    for (size_t bytes = 0; bytes <= max_bytes; bytes = bytes ? bytes * 4 : 1) {
        /* about 20 ms (quick: 5 ms) of traffic per loop, at least 2 and at most 2000 round trips */
        double target = quick ? 5e-3 : 2e-2;
        double est = 30e-6 + (double)bytes / 1e9;
        int loops = (int)(target / (2 * est));
        if (loops < 2) loops = 2;
        if (loops > 2000) loops = 2000;
        double t[16];
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            if (rank == 0) {
                for (int i = 0; i < loops; i++) {
                    MPI_Send(buf, (int)bytes, MPI_BYTE, 1, 7, MPI_COMM_WORLD);
                    MPI_Recv(buf, (int)bytes, MPI_BYTE, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                }
            } else if (rank == 1) {
                for (int i = 0; i < loops; i++) {
                    MPI_Recv(buf, (int)bytes, MPI_BYTE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    MPI_Send(buf, (int)bytes, MPI_BYTE, 0, 7, MPI_COMM_WORLD);
                }
            }
            double dt = (MPI_Wtime() - t0) / (2.0 * loops);
            if (r >= 0) t[r] = dt;
        }
        if (rank == 0) {
            double h = median(t, reps), hmin = t[0]; /* sorted by median() */
            double mbs = bytes ? (double)bytes / h / 1e6 : 0.0;
            double mbs_max = bytes ? (double)bytes / hmin / 1e6 : 0.0;
            printf("%12zu %8d %14.2f %12.1f %14.2f %12.1f\n", bytes, loops, h * 1e6, mbs,
                   hmin * 1e6, mbs_max);
            if (js)
                fprintf(js, "{\"kind\": \"pingpong\", \"bytes\": %zu, \"loops\": %d, "
                            "\"half_rtt_us\": %.4f, \"mb_s\": %.2f, \"min_half_rtt_us\": %.4f, "
                            "\"max_mb_s\": %.2f}\n", bytes, loops, h * 1e6, mbs, hmin * 1e6, mbs_max);
        }
        if (bytes == max_bytes) break;
    }

    /* ---- 2. all-reduce at LSTM gradient sizes ---- */
    long counts[40];
    char what[40][64];
    int nc = 0;
    for (int i = 0; i < nhidden && nc < 40; i++, nc++) {
        counts[nc] = lstm_params(hidden[i], hidden[i], vocab, layers);
        snprintf(what[nc], sizeof what[nc], "lstm %dx%ld V=%ld", layers, hidden[i], vocab);
    }
    for (int i = 0; i < nextra && nc < 40; i++, nc++) {
        counts[nc] = extra[i];
        snprintf(what[nc], sizeof what[nc], "floats");
    }
    long maxc = 0;
    for (int i = 0; i < nc; i++) maxc = counts[i] > maxc ? counts[i] : maxc;
    float *g = malloc((size_t)(maxc ? maxc : 1) * sizeof *g);
    if (!g) MPI_Abort(MPI_COMM_WORLD, 1);
    /* zeros: sums stay finite however many calls (values do not change the speed) */
    memset(g, 0, (size_t)(maxc ? maxc : 1) * sizeof *g);
    if (rank == 0) {
        printf("\n# MPI_Allreduce(MPI_IN_PLACE, float, MPI_SUM) over %d ranks "
               "(median of the timed calls)\n", size);
        printf("%-22s %10s %10s %10s %6s %12s %10s\n", "what", "floats", "bytes", "ms", "calls",
               "busbw_MB/s", "min_ms");
    }
    /* Two passes: glibc's default malloc, then with mmap disabled and no trimming. Open MPI
     * allocates a temporary buffer of the message size in each all-reduce; above glibc's
     * mmap threshold (at most 32 MiB) that is a fresh mmap per call, and on a VM where first
     * touches of fresh pages are slow (this machine: ~10 us per 4 KiB page) that costs more
     * than the communication. */
    for (int pass = 0; pass < 2; pass++) {
        const char *mal = pass == 0 ? "default" : "nommap";
        if (pass == 1) {
            if (!malloc_both) break;
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, INT_MAX);
        }
        if (rank == 0)
            printf("# malloc: %s\n", pass == 0 ? "glibc default"
                                               : "mallopt(M_MMAP_MAX, 0), M_TRIM_THRESHOLD = INT_MAX");
        for (int c = 0; c < nc; c++) {
            long n = counts[c];
            double bytes = (double)n * sizeof(float);
            int calls = (int)((quick ? 0.2 : 1.0) / (50e-6 + bytes / 5e8));
            if (calls < 5) calls = 5;
            if (calls > 200) calls = 200;
            double *t = malloc((size_t)calls * sizeof *t);
            for (int r = -2; r < calls; r++) { /* 2 warm-up calls */
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = MPI_Wtime();
                MPI_Allreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                double dt = MPI_Wtime() - t0;
                /* the slowest rank defines the step */
                MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                if (r >= 0) t[r] = dt;
            }
            double med = median(t, calls), tmin = t[0];
            double busbw = 2.0 * (size - 1) / size * bytes / med / 1e6;
            if (rank == 0) {
                printf("%-22s %10ld %10.0f %10.3f %6d %12.1f %10.3f\n", what[c], n, bytes,
                       med * 1e3, calls, busbw, tmin * 1e3);
                if (js)
                    fprintf(js, "{\"kind\": \"allreduce\", \"what\": \"%s\", \"floats\": %ld, "
                                "\"bytes\": %.0f, \"ranks\": %d, \"ms\": %.5f, \"calls\": %d, "
                                "\"busbw_mb_s\": %.2f, \"min_ms\": %.5f, \"malloc\": \"%s\"}\n",
                            what[c], n, bytes, size, med * 1e3, calls, busbw, tmin * 1e3, mal);
            }
            free(t);
        }
    }
    /* 3. Per-layer buckets, as the trainer sums them: output layer, layer L, ..., layer 1,
     *    embedding. Blocking MPI_Allreduce per bucket one after another, against all buckets
     *    posted with MPI_Iallreduce at once and then MPI_Waitall (no compute in between: this
     *    is the cost of the collective itself, not of the overlap). */
    if (rank == 0) {
        printf("\n# per-layer buckets (output, layer %d..1, embedding), %d ranks, median ms "
               "(min)\n", layers, size);
        printf("%-22s %10s %8s %18s %18s %18s\n", "what", "floats", "buckets", "Allreduce whole",
               "Allreduce/bucket", "Iallreduce+Wait");
    }
    for (int c = 0; c < nhidden; c++) {
        long h = hidden[c], bsz[40];
        int nb = 0;
        bsz[nb++] = vocab * h + vocab;
        for (int k = layers; k >= 1 && nb < 38; k--) bsz[nb++] = 4 * h * (h + h) + 8 * h; /* embedding width = h */
        bsz[nb++] = vocab * h;
        long n = 0;
        for (int b = 0; b < nb; b++) n += bsz[b];
        if (n > maxc) continue;
        double bytes = (double)n * sizeof(float);
        int calls = (int)((quick ? 0.2 : 1.0) / (50e-6 + bytes / 5e8));
        if (calls < 5) calls = 5;
        if (calls > 100) calls = 100;
        double *t = malloc(3 * (size_t)calls * sizeof *t);
        MPI_Request req[40];
        for (int r = -2; r < calls; r++) {
            double dt[3];
            for (int mode = 0; mode < 3; mode++) {
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = MPI_Wtime();
                if (mode == 0) {
                    MPI_Allreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                } else {
                    long off = 0;
                    for (int b = 0; b < nb; b++) {
                        if (mode == 1)
                            MPI_Allreduce(MPI_IN_PLACE, g + off, (int)bsz[b], MPI_FLOAT, MPI_SUM,
                                          MPI_COMM_WORLD);
                        else
                            MPI_Iallreduce(MPI_IN_PLACE, g + off, (int)bsz[b], MPI_FLOAT, MPI_SUM,
                                           MPI_COMM_WORLD, &req[b]);
                        off += bsz[b];
                    }
                    if (mode == 2) MPI_Waitall(nb, req, MPI_STATUSES_IGNORE);
                }
                dt[mode] = MPI_Wtime() - t0;
            }
            MPI_Allreduce(MPI_IN_PLACE, dt, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (r >= 0)
                for (int mode = 0; mode < 3; mode++) t[mode * calls + r] = dt[mode];
        }
        if (rank == 0) {
            double med[3], mn[3];
            for (int mode = 0; mode < 3; mode++) {
                med[mode] = median(t + mode * calls, calls);
                mn[mode] = t[mode * calls];
            }
            char label[64];
            snprintf(label, sizeof label, "lstm %dx%ld V=%ld", layers, h, vocab);
            printf("%-22s %10ld %8d %9.3f (%6.3f) %9.3f (%6.3f) %9.3f (%6.3f)\n", label, n, nb,
                   med[0] * 1e3, mn[0] * 1e3, med[1] * 1e3, mn[1] * 1e3, med[2] * 1e3, mn[2] * 1e3);
            if (js)
                fprintf(js, "{\"kind\": \"buckets\", \"what\": \"%s\", \"floats\": %ld, "
                            "\"buckets\": %d, \"ranks\": %d, \"whole_ms\": %.5f, \"per_bucket_ms\": "
                            "%.5f, \"nonblocking_ms\": %.5f, \"whole_min_ms\": %.5f, "
                            "\"per_bucket_min_ms\": %.5f, \"nonblocking_min_ms\": %.5f}\n",
                        label, n, nb, size, med[0] * 1e3, med[1] * 1e3, med[2] * 1e3, mn[0] * 1e3,
                        mn[1] * 1e3, mn[2] * 1e3);
        }
        free(t);
    }
    if (js) fclose(js);
    free(g);
    free(buf);
    MPI_Finalize();
    return 0;
}
