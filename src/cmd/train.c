/* rnntrain train: the command line of the trainer (train/trainer.h).
 *
 * Prolog: options, signal handlers, the trainer (data, model, resume), the report.
 * Loop: one step; every --verify-every steps all ranks compare parameters; a checkpoint
 * every --ckpt-every steps, every --ckpt-minutes, at the end, and when a signal (USR1,
 * TERM, INT) asks the job to stop: all ranks agree on that at a step boundary (one small
 * all-reduce per step), write a checkpoint and exit with status 75; progress every
 * --print-every steps; validation every --eval-every steps and at the end.
 * Epilog: the model file (rank 0). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "dist.h"
#include "trainer.h"

/* Set by USR1/TERM/INT; the loop checkpoints and stops at the next step boundary. A second
 * INT stops at once. */
static volatile sig_atomic_t g_stop_signal = 0;

static void on_signal(int sig) {
    if (sig == SIGINT && g_stop_signal == SIGINT) {
        static const char msg[] = "rnntrain: second interrupt: stopping now, no checkpoint\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(130);
    }
    g_stop_signal = sig;
}

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* Test hook (docs/checkpoints.md): RNNTRAIN_TEST_NAN_AT=STEP:COUNT makes the loss of COUNT
 * updates from STEP on non-finite, once, to exercise skip/rollback/stop. */
typedef struct {
    long long at, left;
} NanInjection;

static void inject_nan(void *ctx, int64_t step, double *loss) {
    NanInjection *n = ctx;
    if (n->left > 0 && step + 1 >= n->at) {
        *loss = (double)NAN;
        n->left--;
    }
}

static int due(int64_t done, int64_t every) { return every > 0 && done % every == 0; }

static void validate(Trainer *t, Report *rep) {
    double t0 = rt_seconds();
    ValidReport v = trainer_evaluate(t);
    report_valid(rep, t->progress.step, &v, rt_seconds() - t0);
}

int cmd_train(int argc, char **argv) {
    TrainConfig c;
    train_config_parse(&c, argc, argv);
    NanInjection nan = {0, 0};
    const char *nan_env = getenv("RNNTRAIN_TEST_NAN_AT");
    if (nan_env && sscanf(nan_env, "%lld:%lld", &nan.at, &nan.left) != 2)
        rt_die(EXIT_USAGE, "RNNTRAIN_TEST_NAN_AT: expected STEP:COUNT, found '%s'", nan_env);
    install_signal_handlers();
    TrainerCallbacks cb = {nan.left > 0 ? inject_nan : NULL, &nan};
    Trainer *t = trainer_init(&c, &cb);
    Report rep;
    report_open(&rep, c.metrics_path, t->progress.step, c.steps, t->tokens_per_step,
                3.0 * model_forward_flops_per_token(&t->model));
    double t_ckpt = rt_seconds();
    int stopped = 0;
    /* Resumed at a step whose validation was due: the interrupted run may have been killed
     * between that checkpoint and its validation (the final one included), so do it now. */
    int64_t at = t->progress.step;
    if (at > 0 && (due(at, c.eval_every) || at == c.steps) && t->has_valid)
        validate(t, &rep);
    dist_watchdog_start(c.watchdog); /* after the start-up (file checks, resume) */
    while (t->progress.step < c.steps) {
        dist_watchdog_step(t->progress.step);
        StepResult s = trainer_step(t);
        if (s.rolled_back) continue;
        if (s.updated) report_loss(&rep, s.loss);
        if (s.tokens) report_tokens(&rep, s.tokens);
        int64_t done = t->progress.step;
        if (due(done, c.verify_every) && !dist_all_equal_u64(params_checksum(&t->model.params)))
            rt_die(EXIT_RUNTIME, "after step %lld the ranks hold different parameters (checksum "
                   "%016llx on rank %d)", (long long)done, params_checksum(&t->model.params),
                   dist_rank());
        /* stop request and checkpoint clock, agreed by all ranks */
        int64_t flags[2] = {g_stop_signal != 0, dist_rank() == 0 && c.ckpt_minutes > 0 &&
                                                    rt_seconds() - t_ckpt >= 60.0 * c.ckpt_minutes};
        dist_max_i64(flags, 2);
        if (due(done, c.ckpt_every) || flags[0] || flags[1] || done == c.steps) {
            trainer_checkpoint(t);
            t_ckpt = rt_seconds();
        }
        if (flags[0]) {
            rt_log("stop requested by a signal: checkpoint %s written at step %lld; exiting with "
                   "status %d (resume with --resume auto)\n", t->last_ckpt, (long long)done,
                   EXIT_CHECKPOINTED);
            stopped = 1;
            break;
        }
        if (due(done, c.print_every) || done == c.steps)
            report_progress(&rep, done, trainer_epoch(t), s.lr, s.grad_norm, t->progress.skipped,
                            t->comm_wait);
        if ((due(done, c.eval_every) || done == c.steps) && t->has_valid)
            validate(t, &rep);
    }
    if (!stopped) {
        char path[4200];
        snprintf(path, sizeof path, "%s/model.h5", c.out);
        trainer_save_model(t, path);
        rt_log("model written to %s | peak RSS %.1f MB (rank 0)\n", path, rt_peak_rss_mb());
    }
    report_close(&rep);
    trainer_free(t);
    train_config_free(&c);
    return stopped ? EXIT_CHECKPOINTED : 0;
}
