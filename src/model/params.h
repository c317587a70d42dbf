/* params: one contiguous buffer for every parameter of a model, with named views.
 *
 * A layout table (name, shape, offset) is built first; then one allocation holds four
 * arrays of the same layout: values, gradients and two optimizer-state arrays. So the
 * optimizer is one flat loop, the gradient reduction is one call, and saving a model is a
 * walk over the table. Names and shapes are PyTorch's state_dict ones. */
#ifndef RNNTRAIN_PARAMS_H
#define RNNTRAIN_PARAMS_H

#include <stddef.h>

#define PARAM_NAME_MAX 48

typedef struct {
    char name[PARAM_NAME_MAX];
    int rows, cols; /* cols == 0: a vector of `rows` entries */
    size_t offset;  /* in floats, from the start of each array */
    size_t size;    /* rows * max(cols, 1) */
    int group;      /* PARAM_GROUP_*: which learning rate and weight decay apply */
} ParamTensor;

/* PARAM_GROUP_SSM: S5's Lambda, B and log_step (Smith et al. 2022): the SSM learning rate
 * (--ssm-lr) and no weight decay. */
enum { PARAM_GROUP_BASE = 0, PARAM_GROUP_SSM = 1 };

typedef struct {
    ParamTensor *tensors;
    int count, capacity;
    size_t total; /* floats per array */
    float *block; /* the one allocation: 4 * total floats */
    float *value, *grad, *state1, *state2;
} Params;

/* Adds a tensor to the layout (before params_alloc); returns its index. */
int params_add(Params *p, const char *name, int rows, int cols);
/* Allocates the buffer, zeroed. */
void params_alloc(Params *p);
void params_free(Params *p);
/* Views into each array for tensor i. */
float *params_value(const Params *p, int i);
float *params_grad(const Params *p, int i);
void params_zero_grad(Params *p);
/* FNV-1a hash of the parameter bytes: equal on every rank after every step. */
unsigned long long params_checksum(const Params *p);

#endif
