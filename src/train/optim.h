/* optim: SGD with momentum, Adam, AdamW and RMSprop over the flat parameter buffer (PyTorch's
 * update rules, so runs compare with torch.optim), global-norm clipping and learning-rate
 * schedules. Optimizer state lives in params->state1 / state2 (same layout as the values). */
#ifndef RNNTRAIN_OPTIM_H
#define RNNTRAIN_OPTIM_H

#include <stdint.h>

#include "params.h"

typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_RMSPROP } OptimKind;

typedef struct {
    OptimKind kind;
    double momentum;      /* sgd */
    double beta1, beta2;  /* adam, adamw */
    double alpha;         /* rmsprop smoothing */
    double eps;           /* adam, adamw, rmsprop */
    double weight_decay;  /* L2 added to the gradient; decoupled (p *= 1 - lr*wd) for adamw */
    double ssm_lr_scale;  /* tensors of PARAM_GROUP_SSM: lr times this, no weight decay */
    int64_t step;         /* updates done so far */
} Optim;

typedef enum { SCHED_CONSTANT, SCHED_COSINE, SCHED_STEP } SchedKind;

typedef struct {
    SchedKind kind;
    double lr;        /* peak / base learning rate */
    double min_lr;    /* cosine floor */
    int64_t warmup;   /* linear warm-up steps (all kinds) */
    int64_t total;    /* cosine: steps to reach min_lr */
    int64_t every;    /* step decay: multiply by gamma every `every` steps */
    double gamma;
} Schedule;

/* Name -> kind; -1 if unknown. */
int optim_kind_by_name(const char *name);
const char *optim_kind_name(OptimKind k);
int sched_kind_by_name(const char *name);

/* Defaults as torch.optim: betas (0.9, 0.999), eps 1e-8, alpha 0.99, momentum 0.9 (sgd). */
void optim_defaults(Optim *o, OptimKind kind);
/* One update of every parameter with learning rate lr (PARAM_GROUP_SSM tensors: lr *
 * ssm_lr_scale and no weight decay). */
void optim_step(Optim *o, Params *p, double lr);
/* Euclidean norm of the whole gradient (double accumulation). */
double optim_grad_norm(const Params *p);
/* If max_norm > 0 and the norm exceeds it, scales the gradient by max_norm/(norm+1e-6)
 * (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping. */
double optim_clip(Params *p, double max_norm);
/* Learning rate for update number `step` (0-based). */
double sched_lr(const Schedule *s, int64_t step);

#endif
