/* eval: mean cross-entropy of a model over a split read as S carried-state streams,
 * distributed over ranks (rank r evaluates streams [r*S/N, (r+1)*S/N)), every in-stream
 * prediction scored, a short last chunk included. */
#ifndef RNNTRAIN_EVAL_H
#define RNNTRAIN_EVAL_H

#include <stdint.h>

#include "data.h"
#include "model.h"

typedef struct {
    double nats_sum; /* summed over all ranks */
    int64_t tokens;  /* predictions scored, all ranks */
} EvalResult;

/* m must have S/N streams and chunks of up to T steps; the streams start from zero state. */
EvalResult eval_split(Model *m, const TokenFile *tf, const char *split, int S);
double eval_nats(EvalResult r);

#endif
