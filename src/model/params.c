#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int params_add(Params *p, const char *name, int rows, int cols) {
    REQUIRE(p->block == NULL);
    REQUIRE(rows > 0 && cols >= 0);
    REQUIRE(strlen(name) < PARAM_NAME_MAX);
    if (p->count == p->capacity) {
        p->capacity = p->capacity ? 2 * p->capacity : 16;
        p->tensors = rt_realloc(p->tensors, (size_t)p->capacity * sizeof *p->tensors,
                                "parameter table");
    }
    ParamTensor *t = &p->tensors[p->count];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->offset = p->total;
    t->size = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    /* Keep every tensor 16-float (64-byte) aligned for vector loads. */
    p->total += (t->size + 15) & ~(size_t)15;
    return p->count++;
}

void params_alloc(Params *p) {
    REQUIRE(p->block == NULL && p->total > 0);
    p->block = rt_alloc_floats(4 * p->total, "parameters, gradients and optimizer state");
    p->value = p->block;
    p->grad = p->block + p->total;
    p->state1 = p->block + 2 * p->total;
    p->state2 = p->block + 3 * p->total;
}

void params_free(Params *p) {
    free(p->block);
    free(p->tensors);
    memset(p, 0, sizeof *p);
}

float *params_value(const Params *p, int i) { return p->value + p->tensors[i].offset; }
float *params_grad(const Params *p, int i) { return p->grad + p->tensors[i].offset; }

void params_zero_grad(Params *p) { memset(p->grad, 0, p->total * sizeof(float)); }

unsigned long long params_checksum(const Params *p) {
    unsigned long long h = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)p->value;
    for (size_t i = 0; i < p->total * sizeof(float); i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}
