/* attention: Luong global attention (see attention.h). */
#include "attention.h"

#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "activ.h"
#include "common.h"
#include "layer.h"
#include "linalg.h"

static const char *const names[] = {"none", "dot", "general"};

const char *attention_name(AttentionKind k) { return names[k]; }

int attention_by_name(const char *name) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

void attention_declare(Attention *at, AttentionKind kind, int Hd, int He, Params *p) {
    REQUIRE(kind != ATTENTION_NONE && (kind == ATTENTION_GENERAL || Hd == He));
    memset(at, 0, sizeof *at);
    at->kind = kind;
    at->Hd = Hd;
    at->He = He;
    at->w_a = kind == ATTENTION_GENERAL ? params_add(p, "attention.weight", Hd, He) : -1;
    at->w_c = params_add(p, "attention.combine.weight", Hd, He + Hd);
}

void attention_alloc(Attention *at, int B, int Tmax, int Smax) {
    at->B = B;
    at->Tmax = Tmax;
    at->Smax = Smax;
    size_t rows = (size_t)Tmax * B, srows = (size_t)Smax * B;
    int U = at->He + at->Hd;
    if (at->kind == ATTENTION_GENERAL) at->keys = rt_alloc_floats(srows * at->Hd, "attention keys");
    at->a = rt_alloc_floats((size_t)B * Tmax * Smax, "attention weights");
    at->u = rt_alloc_floats(rows * U, "attention context");
    at->out = rt_alloc_floats(rows * at->Hd, "attention output");
    at->dpre = rt_alloc_floats(rows * at->Hd, "attention gradient");
    at->du = rt_alloc_floats(rows * U, "attention gradient");
    at->da = rt_alloc_floats((size_t)Tmax * Smax, "attention gradient");
    at->dkeys = rt_alloc_floats(srows * at->Hd, "attention gradient");
}

void attention_free(Attention *at) {
    free(at->keys);
    free(at->a);
    free(at->u);
    free(at->out);
    free(at->dpre);
    free(at->du);
    free(at->da);
    free(at->dkeys);
    memset(at, 0, sizeof *at);
}

void attention_init_weights(Attention *at, TorchRng *g, const Params *p) {
    if (at->w_a >= 0) {
        double b = layer_linear_bound(at->He);
        torch_uniform_fill(g, params_value(p, at->w_a), (size_t)at->Hd * at->He, -b, b);
    }
    double b = layer_linear_bound(at->He + at->Hd);
    torch_uniform_fill(g, params_value(p, at->w_c), (size_t)at->Hd * (at->He + at->Hd), -b, b);
}

void attention_keys(Attention *at, const Params *p, const float *e, const int32_t *len, int S) {
    REQUIRE(S >= 1 && S <= at->Smax);
    at->e = e;
    at->len = len;
    at->S = S;
    if (at->kind == ATTENTION_GENERAL) /* keys (S*B,Hd) = e (S*B,He) W_a^T */
        la_matmul_nt(at->keys, e, params_value(p, at->w_a), S * at->B, at->Hd, at->He, 0.0f);
}

static const float *keys_of(const Attention *at) {
    return at->kind == ATTENTION_GENERAL ? at->keys : at->e;
}

void attention_forward(Attention *at, const Params *p, const float *h, int T) {
    REQUIRE(T >= 1 && T <= at->Tmax && at->e);
    int B = at->B, Hd = at->Hd, He = at->He, U = He + Hd, Sm = at->Smax;
    const float *k = keys_of(at);
    for (int b = 0; b < B; b++) {
        int n = at->len[b];
        float *a = at->a + (size_t)b * at->Tmax * Sm; /* (T, Smax) */
        /* scores (T,n) = h_b (T,Hd) . k_b (n,Hd)^T: stream b's rows are B apart */
        la_gemm_nt(a, Sm, h + (size_t)b * Hd, B * Hd, k + (size_t)b * Hd, B * Hd, T, n, Hd, 0.0f);
        for (int t = 0; t < T; t++) {
            float *r = a + (size_t)t * Sm, mx = r[0];
            for (int s = 1; s < n; s++) mx = r[s] > mx ? r[s] : mx;
            double sum = 0.0;
            for (int s = 0; s < n; s++) {
                r[s] = expf(r[s] - mx);
                sum += r[s];
            }
            float inv = (float)(1.0 / sum);
            for (int s = 0; s < n; s++) r[s] *= inv;
            for (int s = n; s < Sm; s++) r[s] = 0.0f;
        }
        /* context (T,He) = a (T,n) . e_b (n,He), into u's first He columns */
        la_gemm_nn(at->u + (size_t)b * U, B * U, a, Sm, at->e + (size_t)b * He, B * He, T, He, n,
                   0.0f);
    }
    for (size_t r = 0; r < (size_t)T * B; r++)
        memcpy(at->u + r * U + He, h + r * Hd, (size_t)Hd * sizeof(float));
    /* out (T*B,Hd) = tanh(u W_c^T) */
    la_matmul_nt(at->out, at->u, params_value(p, at->w_c), T * B, Hd, U, 0.0f);
    activ_tanh(at->out, at->out, (size_t)T * B * Hd);
}

void attention_backward(Attention *at, Params *p, const float *dout, float *dh, float *de, int T) {
    int B = at->B, Hd = at->Hd, He = at->He, U = He + Hd, Sm = at->Smax, S = at->S;
    size_t rows = (size_t)T * B;
    for (size_t i = 0; i < rows * Hd; i++) at->dpre[i] = dout[i] * (1.0f - at->out[i] * at->out[i]);
    /* dW_c (Hd,U) += dpre^T u; du (T*B,U) = dpre W_c */
    la_matmul_tn(params_grad(p, at->w_c), at->dpre, at->u, Hd, U, (int)rows, 1.0f);
    la_matmul_nn(at->du, at->dpre, params_value(p, at->w_c), (int)rows, U, Hd, 0.0f);
    for (size_t r = 0; r < rows; r++) /* dh: the direct path through [c; h] */
        memcpy(dh + r * Hd, at->du + r * U + He, (size_t)Hd * sizeof(float));
    const float *k = keys_of(at);
    memset(at->dkeys, 0, (size_t)S * B * Hd * sizeof(float));
    for (int b = 0; b < B; b++) {
        int n = at->len[b];
        const float *a = at->a + (size_t)b * at->Tmax * Sm;
        const float *dctx = at->du + (size_t)b * U; /* (T,He), rows B*U apart */
        const float *hb = at->u + (size_t)b * U + He;  /* (T,Hd) */
        /* da (T,n) = dctx e_b^T; de_b (n,He) += a^T dctx */
        la_gemm_nt(at->da, Sm, dctx, B * U, at->e + (size_t)b * He, B * He, T, n, He, 0.0f);
        la_gemm_tn(de + (size_t)b * He, B * He, a, Sm, dctx, B * U, n, He, T, 1.0f);
        /* softmax: ds = a * (da - sum_s a da), in place in da */
        for (int t = 0; t < T; t++) {
            float *d = at->da + (size_t)t * Sm;
            const float *r = a + (size_t)t * Sm;
            double dot = 0.0;
            for (int s = 0; s < n; s++) dot += (double)r[s] * d[s];
            for (int s = 0; s < n; s++) d[s] = r[s] * (d[s] - (float)dot);
        }
        /* dh_b (T,Hd) += ds k_b; dk_b (n,Hd) = ds^T h_b */
        la_gemm_nn(dh + (size_t)b * Hd, B * Hd, at->da, Sm, k + (size_t)b * Hd, B * Hd, T, Hd, n,
                   1.0f);
        la_gemm_tn(at->dkeys + (size_t)b * Hd, B * Hd, at->da, Sm, hb, B * U, n, Hd, T, 0.0f);
    }
    size_t srows = (size_t)S * B;
    if (at->kind == ATTENTION_GENERAL) {
        /* keys = e W_a^T: dW_a (Hd,He) += dk^T e; de += dk W_a */
        la_matmul_tn(params_grad(p, at->w_a), at->dkeys, at->e, Hd, He, (int)srows, 1.0f);
        la_matmul_nn(de, at->dkeys, params_value(p, at->w_a), (int)srows, He, Hd, 1.0f);
    } else {
        for (size_t i = 0; i < srows * Hd; i++) de[i] += at->dkeys[i];
    }
}

double attention_flops_per_token(const Attention *at, int S) {
    /* scores, context, combine; the keys are per source step */
    return 2.0 * S * at->Hd + 2.0 * S * at->He + 2.0 * (at->He + at->Hd) * at->Hd;
}
