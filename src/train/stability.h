/* stability: what to do about a step whose loss or gradient is not finite. Such an update
 * is skipped; after max_bad of them in a row the run rolls back to its last checkpoint with
 * the learning rate times factor (at most 3 times), or stops with a clear message if there
 * is no checkpoint to go back to. */
#ifndef RNNTRAIN_STABILITY_H
#define RNNTRAIN_STABILITY_H

#include <stdint.h>

typedef enum { STEP_UPDATE, STEP_SKIP, STEP_ROLLBACK } StepVerdict;

typedef struct {
    int64_t max_bad, bad_run, skipped, rollbacks;
    double factor;
} Stability;

#define STABILITY_MAX_ROLLBACKS 3

void stability_init(Stability *s, int64_t max_bad, double factor, int64_t skipped);
/* The verdict on update number step (0-based); logs skips; dies when a rollback is due but
 * impossible (no checkpoint, or STABILITY_MAX_ROLLBACKS done). */
StepVerdict stability_judge(Stability *s, int finite, int64_t step, int have_checkpoint);
/* After the trainer rolled back: the bad run starts afresh. */
void stability_rolled_back(Stability *s);

#endif
