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
} ParamTensor;

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
