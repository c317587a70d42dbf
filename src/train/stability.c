#include "stability.h"

#include "common.h"

void stability_init(Stability *s, int64_t max_bad, double factor, int64_t skipped) {
    s->max_bad = max_bad;
    s->factor = factor;
    s->bad_run = 0;
    s->rollbacks = 0;
    s->skipped = skipped;
}

StepVerdict stability_judge(Stability *s, int finite, int64_t step, int have_checkpoint) {
    if (finite) {
        s->bad_run = 0;
        return STEP_UPDATE;
    }
    s->skipped++;
    s->bad_run++;
    rt_log("step %lld: non-finite loss or gradient norm; update skipped (%lld in a row, "
           "%lld in all)\n", (long long)step + 1, (long long)s->bad_run, (long long)s->skipped);
    if (s->bad_run < s->max_bad) return STEP_SKIP;
    if (!have_checkpoint || s->rollbacks >= STABILITY_MAX_ROLLBACKS)
        rt_die(EXIT_RUNTIME, "%lld non-finite steps in a row at step %lld and %s; lower --lr or "
               "--clip", (long long)s->bad_run, (long long)step + 1,
               have_checkpoint ? "3 rollbacks already" : "no checkpoint to roll back to");
    return STEP_ROLLBACK;
}

void stability_rolled_back(Stability *s) {
    s->rollbacks++;
    s->bad_run = 0;
}
