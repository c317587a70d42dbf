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

/* ---- the watchdog ---------------------------------------------------------------------
 * Every blocking collective of this file is a non-blocking one completed by poll_requests,
 * which watches the clock. A collective that has not completed within the limit means that
 * another rank has stopped (stalled, SIGSTOPped, lost, or cut off from the network). The
 * waiting rank then tells every other rank it is alive (a small message on a communicator
 * of its own), listens for a grace period for the same from the others (a rank still
 * waiting joins in as soon as such a message reaches it), names the ranks that did not
 * answer, and ends with EXIT_STALLED, which the SLURM scripts requeue (resume from the last
 * checkpoint).
 *
 * The limit is --watchdog seconds, raised to WATCH_STEP_FACTOR times the longest step (the
 * loop iteration between two dist_watchdog_step calls: validation and checkpoints included)
 * seen so far: a run whose steps take minutes is not cut off by a default made for steps
 * of milliseconds.
 *
 * A thread (dist_watchdog_start) is the backstop for a rank that stops inside MPI itself
 * or in a call not polled here: past limit + grace + WATCH_BACKSTOP_S it reports the call
 * and the step and ends the rank. The thread calls no MPI. */
#define WATCH_STEP_FACTOR 10.0
#define WATCH_BACKSTOP_S 30.0
#define WATCH_TAG 7601

static _Atomic double g_wait_since = 0.0; /* 0: not in a blocking call */
static const char *_Atomic g_wait_what = NULL;
static _Atomic long long g_wait_step = -1;
static _Atomic double g_watch_limit = 0.0; /* seconds; 0: off */
static double g_watch_base = 0.0;
static double g_step_started = 0.0, g_longest_step = 0.0;
static MPI_Comm g_watch_comm = MPI_COMM_NULL;
static char (*g_hosts)[MPI_MAX_PROCESSOR_NAME]; /* every rank's host, for the messages */

static double mono_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds the other ranks get to answer: their collective may have begun up to a step
 * later than ours. */
static double watch_grace(void) {
    double g = 3.0 + 2.0 * g_longest_step;
    return g < 60.0 ? g : 60.0;
}

static void *watchdog_loop(void *arg) {
    (void)arg;
    for (;;) {
        struct timespec half = {0, 500000000L};
        nanosleep(&half, NULL);
        double since = atomic_load(&g_wait_since);
        double limit = atomic_load(&g_watch_limit) + watch_grace() + WATCH_BACKSTOP_S;
        if (since <= 0.0 || mono_seconds() - since < limit) continue;
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
    g_watch_base = seconds;
    atomic_store(&g_watch_limit, seconds);
    g_step_started = mono_seconds();
    pthread_t th;
    if (pthread_create(&th, NULL, watchdog_loop, NULL) != 0)
        rt_die(EXIT_RUNTIME, "cannot start the watchdog thread");
    pthread_detach(th);
    started = 1;
}

void dist_watchdog_step(int64_t step) {
    atomic_store(&g_wait_step, (long long)step);
    if (g_watch_base <= 0.0) return;
    double now = mono_seconds(), took = now - g_step_started;
    g_step_started = now;
    if (took > g_longest_step) g_longest_step = took;
    double limit = WATCH_STEP_FACTOR * g_longest_step;
    atomic_store(&g_watch_limit, limit > g_watch_base ? limit : g_watch_base);
}

static void wait_begin(const char *what) {
    atomic_store(&g_wait_what, what);
    atomic_store(&g_wait_since, mono_seconds());
}
static void wait_end(void) { atomic_store(&g_wait_since, 0.0); }

/* An MPI failure is a runtime failure of the job: report and abort (errors are returned,
 * not fatal, because we install MPI_ERRORS_RETURN on the world communicator). */
static void check_mpi(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    rt_die(EXIT_RUNTIME, "MPI call %s failed: %s", what, msg);
}

/* Has another rank declared a stall? (a message on the watchdog's communicator) */
static int stall_announced(void) {
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, WATCH_TAG, g_watch_comm, &flag, MPI_STATUS_IGNORE);
    return flag;
}

/* The stall protocol (see the top of this section); does not return. */
static void __attribute__((noreturn)) stall_exit(const char *what, double since, int joined) {
    double waited = mono_seconds() - since;
    long long step = atomic_load(&g_wait_step);
    long long mine[2] = {step, g_rank};
    MPI_Request *sends = calloc((size_t)g_size, sizeof *sends);
    char *heard = calloc((size_t)g_size, 1);
    if (!sends || !heard) _exit(EXIT_STALLED);
    for (int r = 0; r < g_size; r++) {
        sends[r] = MPI_REQUEST_NULL;
        if (r != g_rank) MPI_Isend(mine, 2, MPI_LONG_LONG, r, WATCH_TAG, g_watch_comm, &sends[r]);
    }
    heard[g_rank] = 1;
    double t_end = mono_seconds() + watch_grace();
    int nheard = 1;
    while (nheard < g_size && mono_seconds() < t_end) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, WATCH_TAG, g_watch_comm, &flag, &st);
        if (flag) {
            long long theirs[2];
            MPI_Recv(theirs, 2, MPI_LONG_LONG, st.MPI_SOURCE, WATCH_TAG, g_watch_comm,
                     MPI_STATUS_IGNORE);
            if (!heard[st.MPI_SOURCE]) nheard++;
            heard[st.MPI_SOURCE] = 1;
        } else {
            struct timespec ms = {0, 1000000L};
            nanosleep(&ms, NULL);
        }
    }
    char silent[1024] = "", *p = silent;
    size_t left = sizeof silent;
    int shown = 0;
    for (int r = 0; r < g_size && left > 64; r++) {
        if (heard[r]) continue;
        int n = snprintf(p, left, "%s%d (%s)", shown ? ", " : "", r,
                         g_hosts ? g_hosts[r] : "?");
        if (n < 0 || (size_t)n >= left) break;
        p += n;
        left -= (size_t)n;
        if (++shown == 16 && g_size - nheard > 16) {
            snprintf(p, left, ", ...");
            break;
        }
    }
    fprintf(stderr,
            "rnntrain[rank %d on %s]: error: %s has not completed after %.0f s at step %lld%s: "
            "%s %s did not answer within %.0f s (stalled, stopped by a signal, lost, or cut "
            "off from the network); %d of %d ranks are alive; exiting with status %d so that "
            "the job can be requeued and resumed from its last checkpoint (--watchdog sets the "
            "limit, now %.0f s)\n",
            g_rank, g_hosts ? g_hosts[g_rank] : "?", what, waited, step,
            joined ? " (another rank reported the stall first)" : "",
            g_size - nheard == 1 ? "rank" : "ranks", nheard == g_size ? "none" : silent,
            watch_grace(), nheard, g_size, EXIT_STALLED, atomic_load(&g_watch_limit));
    fflush(stderr);
    _exit(EXIT_STALLED);
}

/* Completes n requests, polling: spins for the first SPIN_S, then sleeps between tests so
 * that a rank waiting for a slower one leaves its core to it. Past the watchdog's limit
 * (or when another rank announces a stall) the stall protocol ends the rank. */
#define POLL_SPIN_S 0.02
static void poll_requests(int n, MPI_Request *reqs, const char *what) {
    wait_begin(what);
    double t0 = mono_seconds(), t_probe = t0;
    for (;;) {
        int done = 0;
        check_mpi(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE), what);
        if (done) break;
        double now = mono_seconds();
        if (now - t0 < POLL_SPIN_S) continue;
        double limit = atomic_load(&g_watch_limit);
        if (limit > 0.0) {
            if (now - t0 > limit) stall_exit(what, t0, 0);
            if (now - t_probe > 0.01) {
                t_probe = now;
                if (stall_announced()) stall_exit(what, t0, 1);
            }
        }
        /* short: between tests MPI makes no progress (a long transfer over TCP moves in
         * many of them), and the blocking calls this replaces never slept at all */
        struct timespec pause = {0, 20000L};
        nanosleep(&pause, NULL);
    }
    wait_end();
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
    if (g_size == 1) return;
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &g_watch_comm), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(g_watch_comm, MPI_ERRORS_RETURN);
    g_hosts = calloc((size_t)g_size, sizeof *g_hosts);
    if (!g_hosts) rt_die(EXIT_RUNTIME, "out of memory for %d host names", g_size);
    int len = 0;
    check_mpi(MPI_Get_processor_name(g_hosts[g_rank], &len), "MPI_Get_processor_name");
    check_mpi(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, g_hosts, MPI_MAX_PROCESSOR_NAME,
                            MPI_CHAR, MPI_COMM_WORLD),
              "MPI_Allgather(host names)");
}

void dist_finalize(void) {
    if (!g_initialized) return;
    if (g_watch_comm != MPI_COMM_NULL) MPI_Comm_free(&g_watch_comm);
    free(g_hosts);
    g_hosts = NULL;
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
    MPI_Request req;
    check_mpi(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier");
    poll_requests(1, &req, "MPI_Barrier");
}

/* MPI counts are int: long buffers go in pieces. */
static void sum_pieces(void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op,
                       const char *what) {
    if (g_size == 1) return;
    char *p = buf;
    while (n > 0) {
        int count = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        MPI_Request req;
        check_mpi(MPI_Iallreduce(MPI_IN_PLACE, p, count, type, op, MPI_COMM_WORLD, &req), what);
        poll_requests(1, &req, what);
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
        MPI_Request req;
        check_mpi(MPI_Ibcast(p, count, type, 0, MPI_COMM_WORLD, &req), "MPI_Ibcast");
        poll_requests(1, &req, "MPI_Bcast");
        p += (size_t)count * elem;
        n -= (size_t)count;
    }
}

void dist_bcast_f32(float *buf, size_t n) { bcast_pieces(buf, n, sizeof *buf, MPI_FLOAT); }
void dist_bcast_bytes(void *buf, size_t n) { bcast_pieces(buf, n, 1, MPI_BYTE); }

int dist_all_equal_u64(uint64_t v) {
    if (g_size == 1) return 1;
    uint64_t lohi[2] = {v, ~v};
    MPI_Request req;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, lohi, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD, &req),
              "MPI_Allreduce(check)");
    poll_requests(1, &req, "MPI_Allreduce(check)");
    return lohi[0] == v && lohi[1] == ~v;
}

void dist_gather_f32(const float *send, size_t n, float *recv) {
    if (g_size == 1) {
        for (size_t i = 0; i < n; i++) recv[i] = send[i];
        return;
    }
    if (n > (size_t)INT_MAX) rt_die(EXIT_RUNTIME, "gather of %zu floats is too large", n);
    MPI_Request req;
    check_mpi(MPI_Igather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD,
                          &req),
              "MPI_Gather");
    poll_requests(1, &req, "MPI_Gather");
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
    poll_requests(g_nrequests, g_requests, "MPI_Waitall(gradient sums)");
    g_nrequests = 0;
    return MPI_Wtime() - t0;
}
