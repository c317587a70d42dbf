#include "dist.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static int g_initialized = 0;
static int g_rank = 0;
static int g_size = 1;

/* An MPI failure is a runtime failure of the job: report and abort (errors are returned,
 * not fatal, because we install MPI_ERRORS_RETURN on the world communicator). */
/* ---- the watchdog ---------------------------------------------------------------------
 * Every blocking MPI call of this file is timed: entering one stores its start and name,
 * leaving clears them. A thread (started by dist_watchdog_start) looks twice a second; a
 * call blocked longer than the limit means another rank has stopped (stalled, SIGSTOPped,
 * cut off from the network): report it and end this rank with EXIT_STALLED, which the
 * SLURM scripts requeue (resume from the last checkpoint). The thread calls no MPI. */
static _Atomic double g_wait_since = 0.0; /* 0: not in a blocking call */
static const char *_Atomic g_wait_what = NULL;
static _Atomic long long g_wait_step = -1;
static double g_watch_limit = 0.0;

static double mono_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *watchdog_loop(void *arg) {
    (void)arg;
    for (;;) {
        struct timespec half = {0, 500000000L};
        nanosleep(&half, NULL);
        double since = atomic_load(&g_wait_since);
        if (since <= 0.0 || mono_seconds() - since < g_watch_limit) continue;
        const char *what = atomic_load(&g_wait_what);
        fprintf(stderr, "rnntrain[rank %d]: error: %s has not completed after %.0f s (step %lld): "
                "another rank has stopped (stalled, stopped by a signal, or cut off from the "
                "network); exiting with status %d so that the job can be requeued and resumed "
                "from its last checkpoint (--watchdog sets the limit)\n", g_rank,
                what ? what : "an MPI call", mono_seconds() - since,
                (long long)atomic_load(&g_wait_step), EXIT_STALLED);
        fflush(stderr);
        _exit(EXIT_STALLED);
    }
    return NULL;
}

void dist_watchdog_start(double seconds) {
    static int started = 0;
    if (g_size == 1 || seconds <= 0.0 || started) return;
    g_watch_limit = seconds;
    pthread_t th;
    if (pthread_create(&th, NULL, watchdog_loop, NULL) != 0)
        rt_die(EXIT_RUNTIME, "cannot start the watchdog thread");
    pthread_detach(th);
    started = 1;
}

void dist_watchdog_step(int64_t step) { atomic_store(&g_wait_step, (long long)step); }

static void wait_begin(const char *what) {
    atomic_store(&g_wait_what, what);
    atomic_store(&g_wait_since, mono_seconds());
}
static void wait_end(void) { atomic_store(&g_wait_since, 0.0); }

static void check_mpi(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    rt_die(EXIT_RUNTIME, "MPI call %s failed: %s", what, msg);
}

/* Started by an MPI launcher (mpirun/mpiexec, srun --mpi=pmix, hydra)? A process started
 * by hand runs as one rank without MPI_Init: an Open MPI singleton start costs ~0.5 s and
 * needs the root override, for nothing. RNNTRAIN_MPI=1 forces MPI on. */
static int launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE", "RNNTRAIN_MPI"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

void dist_init(int *argc, char ***argv) {
    if (g_initialized || !launched_by_mpi()) return;
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS) {
        fprintf(stderr, "rnntrain: error: MPI_Init failed (code %d)\n", rc);
        exit(EXIT_RUNTIME);
    }
    g_initialized = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &g_size), "MPI_Comm_size");
}

void dist_finalize(void) {
    if (!g_initialized) return;
    MPI_Finalize();
    g_initialized = 0;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }

void dist_abort(int status) {
    fflush(stdout);
    fflush(stderr);
    if (g_initialized && g_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    if (g_initialized) MPI_Finalize();
    exit(status);
}

void dist_barrier(void) {
    if (g_size == 1) return;
    wait_begin("MPI_Barrier");
    check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
    wait_end();
}

/* MPI counts are int: long buffers go in pieces. */
static void sum_pieces(void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op,
                       const char *what) {
    if (g_size == 1) return;
    char *p = buf;
    while (n > 0) {
        int count = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        wait_begin(what);
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, p, count, type, op, MPI_COMM_WORLD), what);
        wait_end();
        p += (size_t)count * elem;
        n -= (size_t)count;
    }
}

void dist_sum_f32(float *buf, size_t n) {
    sum_pieces(buf, n, sizeof *buf, MPI_FLOAT, MPI_SUM, "MPI_Allreduce(float sum)");
}
void dist_sum_f64(double *buf, size_t n) {
    sum_pieces(buf, n, sizeof *buf, MPI_DOUBLE, MPI_SUM, "MPI_Allreduce(double sum)");
}
void dist_sum_i64(int64_t *buf, size_t n) {
    sum_pieces(buf, n, sizeof *buf, MPI_INT64_T, MPI_SUM, "MPI_Allreduce(int64 sum)");
}
void dist_max_i64(int64_t *buf, size_t n) {
    sum_pieces(buf, n, sizeof *buf, MPI_INT64_T, MPI_MAX, "MPI_Allreduce(int64 max)");
}

static void bcast_pieces(void *buf, size_t n, size_t elem, MPI_Datatype type) {
    if (g_size == 1) return;
    char *p = buf;
    while (n > 0) {
        int count = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        wait_begin("MPI_Bcast");
        check_mpi(MPI_Bcast(p, count, type, 0, MPI_COMM_WORLD), "MPI_Bcast");
        wait_end();
        p += (size_t)count * elem;
        n -= (size_t)count;
    }
}

void dist_bcast_f32(float *buf, size_t n) { bcast_pieces(buf, n, sizeof *buf, MPI_FLOAT); }
void dist_bcast_bytes(void *buf, size_t n) { bcast_pieces(buf, n, 1, MPI_BYTE); }

int dist_all_equal_u64(uint64_t v) {
    if (g_size == 1) return 1;
    uint64_t lohi[2] = {v, ~v};
    wait_begin("MPI_Allreduce(check)");
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, lohi, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD),
              "MPI_Allreduce(check)");
    wait_end();
    return lohi[0] == v && lohi[1] == ~v;
}

void dist_gather_f32(const float *send, size_t n, float *recv) {
    if (g_size == 1) {
        for (size_t i = 0; i < n; i++) recv[i] = send[i];
        return;
    }
    if (n > (size_t)INT_MAX) rt_die(EXIT_RUNTIME, "gather of %zu floats is too large", n);
    wait_begin("MPI_Gather");
    check_mpi(MPI_Gather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD),
              "MPI_Gather");
    wait_end();
}

/* Outstanding non-blocking sums (one per gradient bucket, or per INT_MAX piece). */
#define DIST_MAX_REQUESTS 256
static MPI_Request g_requests[DIST_MAX_REQUESTS];
static int g_nrequests = 0;

void dist_isum_f32(float *buf, size_t n) {
    if (g_size == 1) return;
    while (n > 0) {
        if (g_nrequests == DIST_MAX_REQUESTS)
            rt_die(EXIT_RUNTIME, "too many outstanding gradient sums (%d)", DIST_MAX_REQUESTS);
        int count = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                 &g_requests[g_nrequests++]),
                  "MPI_Iallreduce");
        buf += count;
        n -= (size_t)count;
    }
}

void dist_progress(void) {
    if (g_nrequests == 0) return;
    int done = 0;
    check_mpi(MPI_Testall(g_nrequests, g_requests, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (done) g_nrequests = 0;
}

double dist_wait_all(void) {
    if (g_nrequests == 0) return 0.0;
    double t0 = MPI_Wtime();
    wait_begin("MPI_Waitall(gradient sums)");
    check_mpi(MPI_Waitall(g_nrequests, g_requests, MPI_STATUSES_IGNORE), "MPI_Waitall");
    wait_end();
    g_nrequests = 0;
    return MPI_Wtime() - t0;
}
