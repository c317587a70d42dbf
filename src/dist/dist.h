/* dist: the only module that talks to MPI. Everything else sees ranks, sums and aborts.
 *
 * Before dist_init (and for tools that never call it) the process behaves as rank 0 of 1,
 * so errors during argument parsing still print and exit cleanly. */
#ifndef RNNTRAIN_DIST_H
#define RNNTRAIN_DIST_H

#include <stddef.h>
#include <stdint.h>

void dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
/* Ends the whole job with this status: MPI_Abort when MPI is up, exit() otherwise. */
void dist_abort(int status) __attribute__((noreturn));
void dist_barrier(void);
/* With more than one rank and seconds > 0: a thread ends this rank with EXIT_STALLED (and a
 * message naming the call and the step) when one of this file's blocking calls has waited
 * longer than seconds: another rank has stopped. */
void dist_watchdog_start(double seconds);
/* The step the watchdog's message names. */
void dist_watchdog_step(int64_t step);

/* In-place sums across ranks. */
void dist_sum_f32(float *buf, size_t n);
void dist_sum_f64(double *buf, size_t n);
void dist_sum_i64(int64_t *buf, size_t n);
/* In-place maximum across ranks. */
void dist_max_i64(int64_t *buf, size_t n);
/* Non-blocking in-place sum of buf (n floats): started now, completed by dist_wait_all.
 * Every rank must start the same sums in the same order. */
void dist_isum_f32(float *buf, size_t n);
/* Lets outstanding non-blocking sums advance (call now and then during computation). */
void dist_progress(void);
/* Waits for every outstanding non-blocking sum; returns the seconds spent waiting. */
double dist_wait_all(void);
/* Broadcast from rank 0. */
void dist_bcast_f32(float *buf, size_t n);
void dist_bcast_bytes(void *buf, size_t n);
/* Rank 0 receives every rank's n floats, in rank order, into recv (size*n); recv may be
 * NULL elsewhere. */
void dist_gather_f32(const float *send, size_t n, float *recv);
/* 1 if the 64-bit value is the same on every rank, else 0 (on every rank). */
int dist_all_equal_u64(uint64_t v);

#endif
