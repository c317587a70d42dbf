#include "optim.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "common.h"

static const char *const optim_names[] = {"sgd", "adam", "adamw", "rmsprop"};
static const char *const sched_names[] = {"constant", "cosine", "step"};

int optim_kind_by_name(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, optim_names[i]) == 0) return i;
    return -1;
}
const char *optim_kind_name(OptimKind k) { return optim_names[k]; }
int sched_kind_by_name(const char *name) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, sched_names[i]) == 0) return i;
    return -1;
}

void optim_defaults(Optim *o, OptimKind kind) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->momentum = 0.9;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->alpha = 0.99;
    o->eps = 1e-8;
}

/* One pass over a range [begin, end) of the buffer with one learning rate and weight
 * decay: memory-bound once vectorised (RT_SIMD_CLONES). */
RT_SIMD_CLONES static void update_range(const Optim *o, Params *p, size_t begin, size_t end,
                                        double lr, double weight_decay, int first) {
    float *w = p->value, *g = p->grad, *s1 = p->state1, *s2 = p->state2;
    float flr = (float)lr, wd = (float)weight_decay;
    switch (o->kind) {
    case OPT_SGD: {
        float mu = (float)o->momentum;
        for (size_t i = begin; i < end; i++) {
            float gi = g[i] + wd * w[i];
            if (mu != 0.0f) {
                s1[i] = first ? gi : mu * s1[i] + gi;
                gi = s1[i];
            }
            w[i] -= flr * gi;
        }
        break;
    }
    case OPT_ADAM:
    case OPT_ADAMW: {
        float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
        double bc1 = 1.0 - pow(o->beta1, (double)o->step);
        double bc2 = 1.0 - pow(o->beta2, (double)o->step);
        float step_size = (float)(lr / bc1), sqrt_bc2 = (float)sqrt(bc2);
        int decoupled = o->kind == OPT_ADAMW;
        float decay = 1.0f - flr * wd;
        for (size_t i = begin; i < end; i++) {
            float gi = g[i];
            if (decoupled)
                w[i] *= decay;
            else
                gi += wd * w[i];
            s1[i] = b1 * s1[i] + (1.0f - b1) * gi;
            s2[i] = b2 * s2[i] + (1.0f - b2) * gi * gi;
            float denom = sqrtf(s2[i]) / sqrt_bc2 + eps;
            w[i] -= step_size * s1[i] / denom;
        }
        break;
    }
    case OPT_RMSPROP: {
        float a = (float)o->alpha, eps = (float)o->eps;
        for (size_t i = begin; i < end; i++) {
            float gi = g[i] + wd * w[i];
            s2[i] = a * s2[i] + (1.0f - a) * gi * gi;
            w[i] -= flr * gi / (sqrtf(s2[i]) + eps);
        }
        break;
    }
    }
}

/* --threads: the range in pieces of whole cache lines, one per thread (element-wise: the
 * same bits on any thread count) */
static void update_threads(const Optim *o, Params *p, size_t begin, size_t end, double lr,
                           double weight_decay, int first) {
    int n = omp_get_max_threads();
    if (n < 2 || end - begin < 65536) {
        update_range(o, p, begin, end, lr, weight_decay, first);
        return;
    }
    size_t piece = ((end - begin) / (size_t)n + 15) & ~(size_t)15;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        size_t b = begin + (size_t)i * piece, e = b + piece < end ? b + piece : end;
        if (b < e) update_range(o, p, b, e, lr, weight_decay, first);
    }
}

void optim_step(Optim *o, Params *p, double lr) {
    int first = o->step == 0;
    o->step++;
    /* runs of tensors of one group; the padding after a tensor goes with it */
    size_t begin = 0;
    for (int i = 0; i < p->count; i++) {
        int g = p->tensors[i].group;
        size_t end = i + 1 < p->count ? p->tensors[i + 1].offset : p->total;
        if (i + 1 < p->count && p->tensors[i + 1].group == g) continue;
        double glr = g == PARAM_GROUP_SSM && o->ssm_lr_scale > 0.0 ? lr * o->ssm_lr_scale : lr;
        update_threads(o, p, begin, end, glr, g == PARAM_GROUP_SSM ? 0.0 : o->weight_decay,
                       first);
        begin = end;
    }
    if (begin < p->total) update_threads(o, p, begin, p->total, lr, o->weight_decay, first);
}

/* Eight partial sums: one chain of dependent double additions would take 4 cycles per
 * parameter; eight interleaved chains keep the adders busy. */
double optim_grad_norm(const Params *p) {
    enum { LANES = 8 };
    double part[LANES] = {0};
    size_t n = p->total, i = 0;
    const float *g = p->grad;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) part[l] += (double)g[i + l] * g[i + l];
    for (; i < n; i++) part[i % LANES] += (double)g[i] * g[i];
    double s = 0.0;
    for (int l = 0; l < LANES; l++) s += part[l];
    return sqrt(s);
}

double optim_clip(Params *p, double max_norm) {
    double norm = optim_grad_norm(p);
    if (max_norm > 0.0 && isfinite(norm)) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            float c = (float)coef;
            for (size_t i = 0; i < p->total; i++) p->grad[i] *= c;
        }
    }
    return norm;
}

double sched_lr(const Schedule *s, int64_t step) {
    if (s->warmup > 0 && step < s->warmup) return s->lr * (double)(step + 1) / (double)s->warmup;
    switch (s->kind) {
    case SCHED_CONSTANT:
        return s->lr;
    case SCHED_STEP:
        return s->lr * pow(s->gamma, (double)((step - s->warmup) / (s->every > 0 ? s->every : 1)));
    case SCHED_COSINE: {
        int64_t span = s->total - s->warmup;
        if (span <= 0) return s->min_lr;
        double frac = (double)(step - s->warmup) / (double)span;
        if (frac > 1.0) frac = 1.0;
        return s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(3.14159265358979323846 * frac));
    }
    }
    return s->lr;
}
