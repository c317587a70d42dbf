#include "report.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "dist.h"

void report_open(Report *r, const char *metrics_path, int64_t first_step, int64_t total_steps,
                 int64_t tokens_per_step, double flops_per_token) {
    memset(r, 0, sizeof *r);
    r->total_steps = total_steps;
    r->tokens_per_step = tokens_per_step;
    r->flops_per_token = flops_per_token;
    r->first_step = r->step_mark = first_step;
    r->t_start = r->t_mark = rt_seconds();
    if (dist_rank() != 0) return;
    r->metrics_path = metrics_path;
    r->metrics = fopen(metrics_path, "a");
    if (!r->metrics)
        rt_die(EXIT_RUNTIME, "--log: cannot open '%s' for writing: %s", metrics_path,
               strerror(errno));
}

/* Every record reaches the file, or the run stops saying why (a full disk cut the log
 * silently): the last checkpoint stays, the run resumes once there is room. */
static void metrics_flush(Report *r) {
    if (!r->metrics) return;
    errno = 0;
    if (fflush(r->metrics) != 0 || ferror(r->metrics))
        rt_die(EXIT_RUNTIME, "--log: writing '%s' failed: %s", r->metrics_path,
               errno ? strerror(errno) : "write error");
}

void report_close(Report *r) {
    if (r->metrics) {
        metrics_flush(r);
        if (fclose(r->metrics) != 0)
            rt_die(EXIT_RUNTIME, "--log: closing '%s' failed: %s", r->metrics_path,
                   strerror(errno));
    }
    r->metrics = NULL;
}

void report_tokens(Report *r, int64_t n) {
    r->tokens += n;
    r->counted = 1;
}

void report_loss(Report *r, double loss) {
    r->loss_acc += loss;
    r->loss_n++;
}

void report_progress(Report *r, int64_t done, double epoch, double lr, double grad_norm,
                     int64_t skipped, double comm_wait_total) {
    double now = rt_seconds();
    double span = now - r->t_mark - (r->t_eval - r->eval_mark);
    double ntok = r->counted ? (double)(r->tokens - r->tokens_mark)
                             : (double)(done - r->step_mark) * r->tokens_per_step;
    double tps = ntok / (span > 0 ? span : 1e-9);
    double elapsed = now - r->t_start;
    double per_step = (elapsed - r->t_eval) / (double)(done - r->first_step);
    double mean = r->loss_n ? r->loss_acc / (double)r->loss_n : NAN;
    double comm = span > 0 ? (comm_wait_total - r->comm_mark) / span : 0.0;
    rt_log("step %lld/%lld | epoch %.3f | loss %.4f | %.3f bits | lr %.3e | gnorm %.3f | "
           "%.0f tok/s | %.1f GFLOP/s | comm wait %.1f%% | %.1f s | ETA %.0f s\n",
           (long long)done, (long long)r->total_steps, epoch, mean, mean / log(2.0), lr,
           grad_norm, tps, tps * r->flops_per_token * 1e-9, 100.0 * comm, elapsed,
           per_step * (double)(r->total_steps - done));
    if (r->metrics) {
        fprintf(r->metrics, "{\"kind\": \"train\", \"step\": %lld, \"epoch\": %.6f, "
                "\"tokens\": %lld, \"loss\": %.9g, \"bits\": %.9g, \"lr\": %.9g, "
                "\"grad_norm\": %.9g, \"tokens_per_s\": %.6g, \"comm_wait\": %.6g, "
                "\"elapsed\": %.6g, \"skipped\": %lld}\n", (long long)done, epoch,
                (long long)(r->counted ? r->tokens : done * r->tokens_per_step), mean,
                mean / log(2.0), lr, grad_norm,
                tps, comm, elapsed, (long long)skipped);
        metrics_flush(r);
    }
    r->loss_acc = 0.0;
    r->loss_n = 0;
    r->t_mark = now;
    r->eval_mark = r->t_eval;
    r->comm_mark = comm_wait_total;
    r->step_mark = done;
    r->tokens_mark = r->tokens;
}

void report_valid(Report *r, int64_t done, const ValidReport *v, double seconds) {
    r->t_eval += seconds;
    long long tokens = (long long)(r->counted ? r->tokens : done * r->tokens_per_step);
    if (v->lm) {
        rt_log("valid step %lld | %.4f nats | %.4f bits | perplexity %.3f | %.0f tokens\n",
               (long long)done, v->loss, v->loss / log(2.0), exp(v->loss), v->count);
        if (r->metrics)
            fprintf(r->metrics, "{\"kind\": \"valid\", \"step\": %lld, \"tokens\": %lld, "
                    "\"nats\": %.9g, \"bits\": %.9g, \"perplexity\": %.9g}\n", (long long)done,
                    tokens, v->loss, v->loss / log(2.0), exp(v->loss));
    } else {
        if (!isnan(v->accuracy))
            rt_log("valid step %lld | loss %.4f | accuracy %.2f%% | %.0f sequences\n",
                   (long long)done, v->loss, 100.0 * v->accuracy, v->count);
        else
            rt_log("valid step %lld | loss %.4f (%s) | %.0f sequences\n", (long long)done,
                   v->loss, "MSE, normalised", v->count);
        if (r->metrics)
            fprintf(r->metrics, "{\"kind\": \"valid\", \"step\": %lld, \"tokens\": %lld, "
                    "\"nats\": %.9g, \"accuracy\": %.9g}\n", (long long)done, tokens, v->loss,
                    isnan(v->accuracy) ? -1.0 : v->accuracy);
    }
    metrics_flush(r);
}
