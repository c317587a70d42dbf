/* layer: the registry of layer kinds and the kind-independent part of a layer's life. */
#include "layer.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cell.h"
#include "common.h"
#include "linalg.h"

const LayerKind *const layer_kinds[] = {&layer_rnn, &layer_lstm, &layer_gru, &layer_mamba, &layer_s5, NULL};

const LayerKind *layer_kind_by_name(const char *name) {
    for (int i = 0; layer_kinds[i]; i++)
        if (strcmp(layer_kinds[i]->name, name) == 0) return layer_kinds[i];
    return NULL;
}

const char *layer_kind_names(void) {
    static char names[256];
    if (!names[0])
        for (int i = 0; layer_kinds[i]; i++) {
            if (i) strncat(names, "|", sizeof names - strlen(names) - 1);
            strncat(names, layer_kinds[i]->name, sizeof names - strlen(names) - 1);
        }
    return names;
}

#define OPT(field, kinds, min) {#field, offsetof(LayerOpts, field), kinds, min}
const LayerOptField layer_opt_fields[] = {
    OPT(d_state, "mamba,s5", 1), OPT(d_conv, "mamba", 1), OPT(expand, "mamba", 1),
    OPT(dt_rank, "mamba", 1), OPT(blocks, "s5", 1), OPT(conj_sym, "s5", 1),
    OPT(bilinear, "s5", 0), OPT(clip_eigs, "s5", 0), OPT(glu, "s5", 0), {NULL, 0, NULL, 0}};
#undef OPT

int layer_opt_used(const LayerOptField *f, const LayerKind *kind) {
    size_t n = strlen(kind->name);
    for (const char *k = f->kinds; *k;) {
        const char *end = strchr(k, ',');
        size_t len = end ? (size_t)(end - k) : strlen(k);
        if (len == n && strncmp(k, kind->name, n) == 0) return 1;
        if (!end) break;
        k = end + 1;
    }
    return 0;
}

LayerOpts layer_opts_resolve(const LayerKind *kind, const LayerOpts *o, int H) {
    LayerOpts r;
    if (o) r = *o;
    else memset(&r, 0, sizeof r);
    if (kind->resolve_opts) kind->resolve_opts(&r, H);
    return r;
}

int layer_opts_check(const LayerKind *kind, const LayerOpts *o, int D, int H, char *err,
                     size_t size) {
    if (!kind->check_opts) return 0;
    LayerOpts r = layer_opts_resolve(kind, o, H);
    return kind->check_opts(&r, D, H, err, size);
}

void layer_declare(Layer *l, const LayerKind *kind, int D, int H, const LayerOpts *o, Params *p,
                   const char *prefix, const char *suffix) {
    REQUIRE(kind && D > 0 && H > 0);
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->D = D;
    l->H = H;
    l->opt = layer_opts_resolve(kind, o, H);
    char err[256];
    if (layer_opts_check(kind, &l->opt, D, H, err, sizeof err)) rt_die(2, "%s", err);
    REQUIRE(kind->forward && kind->backward && kind->backward_input && kind->step);
    kind->declare(l, p, prefix, suffix);
    REQUIRE(l->param_count > 0 && l->param_first + l->param_count <= p->count);
}

void layer_alloc(Layer *l, const Params *p, int B, int Tmax) {
    REQUIRE(B > 0 && Tmax > 0);
    l->B = B;
    l->Tmax = Tmax;
    l->kind->alloc(l, p);
    REQUIRE(l->y != NULL);
}

void layer_free(Layer *l) {
    if (l->kind) l->kind->free(l);
    memset(l, 0, sizeof *l);
}

int layer_param_add(Params *p, const char *prefix, const char *name, int rows, int cols) {
    char full[PARAM_NAME_MAX];
    int n = snprintf(full, sizeof full, "%s%s", prefix, name);
    REQUIRE(n > 0 && (size_t)n < sizeof full);
    return params_add(p, full, rows, cols);
}

double layer_linear_bound(int fan_in) {
    double a = sqrt(5.0), gain = sqrt(2.0 / (1.0 + a * a));
    return sqrt(3.0) * (gain / sqrt((double)fan_in));
}

void layer_init_linear(TorchRng *g, float *w, float *b, int out, int in) {
    double wb = layer_linear_bound(in), bb = 1.0 / sqrt((double)in);
    torch_uniform_fill(g, w, (size_t)out * in, -wb, wb);
    torch_uniform_fill(g, b, (size_t)out, -bb, bb);
}

void layer_encoder_forward(float *r, const float *x, const float *w, const float *b, int rows,
                           int H, int D) {
    for (int i = 0; i < rows; i++) memcpy(r + (size_t)i * H, b, (size_t)H * sizeof(float));
    la_matmul_nt(r, x, w, rows, H, D, 1.0f);
}

void layer_encoder_backward(float *gw, float *gb, float *dx, const float *dr, const float *x,
                            const float *w, int rows, int H, int D) {
    la_matmul_tn(gw, dr, x, H, D, rows, 1.0f);
    la_colsum_add(gb, dr, rows, H);
    if (dx) la_matmul_nn(dx, dr, w, rows, D, H, 0.0f);
}

size_t layer_no_workspace(const Layer *l) {
    (void)l;
    return 0;
}
