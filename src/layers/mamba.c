/* mamba: the Mamba-1 block (Gu and Dao 2023) as one residual layer of width H:
 *
 *   r     = x, or encoder(x) (Linear D->H) when the input width D differs from H
 *   xn    = RMSNorm(r)                                   (rows,H)
 *   xi, z = xn W_in[0:E]^T, xn W_in[E:2E]^T              (rows,E) each
 *   xc    = causal depthwise conv of xi over time (kernel K, bias), the K-1 inputs before
 *           the chunk from the carried conv state;  u = silu(xc)
 *   dt, Bm, Cm = u W_x[0:R]^T, u W_x[R:R+N]^T, u W_x[R+N:R+2N]^T
 *   delta = softplus(dt W_dt^T + b_dt)                   (rows,E)
 *   h[d,n] = exp(delta[d] A[d,n]) h[d,n] + delta[d] Bm[n] u[d],  A = -exp(A_log)
 *   ys[d] = sum_n Cm[n] h[d,n] + D[d] u[d]
 *   g     = ys * silu(z);   y = r + g W_out^T            (rows,H)
 *
 * Names and shapes are mamba_ssm's Mamba module under prefix "mixer." (in_proj.weight
 * (2E,H), conv1d.weight (E,1,K) stored (E,K), conv1d.bias, x_proj.weight (R+2N,E),
 * dt_proj.weight (E,R), dt_proj.bias (E), A_log (E,N), D (E), out_proj.weight (H,E)), with
 * the block's "norm.weight" (H) and, for D != H, "encoder.weight" (H,D), "encoder.bias".
 *
 * Carried state per stream: "ssm" h (E,N) laid out [d*N + n] (mamba_ssm's ssm_state) and
 * "conv" the last K-1 conv inputs xi, (K-1,E) laid out [j*E + d], j = 0 the oldest.
 *
 * Cost structure. All projections are GEMMs over the chunk's T*B rows. The scan runs per
 * stream and step over (n, d) with the channel d innermost and contiguous, so it vectorises
 * across channels without horizontal sums: internally h and A are (N,E). Forward keeps no
 * (T,B,E,N) tensor: only h at the start of every segment of MAMBA_SEG steps. Backward walks
 * the segments from the last, recomputes the segment's states from the saved one into a
 * (MAMBA_SEG,N,E) buffer of one stream, and runs the reverse recurrence through it; the
 * memory is that of one chunk's (T,B,E) activations. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activ.h"
#include "common.h"
#include "layer.h"
#include "linalg.h"
#include "norm.h"

#define MAMBA_SEG 16
#define MAMBA_DB 64
#define SCAN_LANES 16 /* the channels of a vector chunk in the scan kernels */

typedef struct {
    int E, N, K, R, enc;
    /* parameter indices */
    int p_enc_w, p_enc_b, p_norm, p_in, p_conv_w, p_conv_b, p_x, p_dt_w, p_dt_b, p_alog, p_d,
        p_out;
    const float *enc_w, *enc_b, *norm_w, *w_in, *conv_w, *conv_b, *w_x, *dt_w, *dt_b, *a_log,
        *dd, *w_out;
    float *g_enc_w, *g_enc_b, *g_norm, *g_in, *g_conv_w, *g_conv_b, *g_x, *g_dt_w, *g_dt_b,
        *g_alog, *g_d, *g_out;
    /* activations, (Tmax*B, width) time-major */
    float *r;      /* (rows,H) encoder output (enc only) */
    float *xn;     /* (rows,H) */
    float *rinv;   /* (rows) */
    float *xpad;   /* ((K-1+Tmax)*B, E): the K-1 carried inputs, then xi of the chunk */
    float *z;      /* (rows,E) */
    float *xc;     /* (rows,E) conv output before silu */
    float *u;      /* (rows,E) */
    float *dt;     /* (rows,R) */
    float *bm, *cm; /* (rows,N) */
    float *dbc;    /* (rows,R+2N) x_proj's output; its gradient in backward */
    float *delta;  /* (rows,E) */
    float *dsig;   /* (rows,E) softplus'(pre) = sigmoid(pre) */
    float *ys;     /* (rows,E) scan output incl. D u */
    float *g;      /* (rows,E) gated */
    float *hsave;  /* (nseg, B, N, E) h at the start of each segment */
    float *at;     /* (N,E) A transposed, this chunk */
    float *wct;    /* (K,E) conv weight transposed */
    /* backward */
    float *dres;   /* (rows,H) dLoss/dy: the residual path's gradient */
    float *dxn;    /* (rows,H) */
    float *dz, *du, *ddelta, *ddt, *dbm, *dcm; /* like their forward buffers */
    float *dxpad;  /* like xpad */
    float *hseg;   /* (MAMBA_SEG+1, N, MAMBA_DB) a block's states over one segment */
    float *eseg;   /* (MAMBA_SEG, N, MAMBA_DB) their exp(delta A) */
    float *dh;     /* (N,MAMBA_DB) a block's state gradient */
    /* hseg, eseg and dh: one of each per thread (nthr, for --threads), at a stride of
     * seg_floats, eseg_floats, dh_floats */
    int nthr;
    size_t seg_floats, eseg_floats, dh_floats;
    float *dbc_part; /* (nblk, 2, rows, N) each channel block's sums for dbm, dcm */
    float *dat;    /* (N,E) dLoss/dA accumulated over the chunk */
    float *dwct;   /* (K,E) */
    float *yrow;   /* (E) scratch */
    int T_last;
} Mamba;

static Mamba *mamba_of(const Layer *l) { return (Mamba *)l->impl; }

static void mamba_resolve_opts(LayerOpts *o, int H) {
    if (!o->d_state) o->d_state = 16;
    if (!o->d_conv) o->d_conv = 4;
    if (!o->expand) o->expand = 2;
    if (!o->dt_rank) o->dt_rank = (H + 15) / 16;
}

static int mamba_check_opts(const LayerOpts *o, int D, int H, char *err, size_t size) {
    (void)D;
    if (o->d_state < 1 || o->d_state > 1024) {
        snprintf(err, size, "--d-state %d: a Mamba layer needs 1 to 1024 states per channel",
                 o->d_state);
        return 1;
    }
    if (o->d_conv < 2 || o->d_conv > 64) {
        snprintf(err, size, "--d-conv %d: the causal convolution width must be 2 to 64",
                 o->d_conv);
        return 1;
    }
    if (o->expand < 1 || (long long)o->expand * H > 1 << 20) {
        snprintf(err, size, "--expand %d: the inner width expand * %d = %lld must be 1 to %d",
                 o->expand, H, (long long)o->expand * H, 1 << 20);
        return 1;
    }
    if (o->dt_rank < 1 || o->dt_rank > o->expand * H) {
        snprintf(err, size, "--dt-rank %d: must be 1 to the inner width %d", o->dt_rank,
                 o->expand * H);
        return 1;
    }
    return 0;
}

static int mamba_state_width(const Layer *l, int s) {
    const LayerOpts *o = &l->opt;
    int E = o->expand * l->H;
    return s == 0 ? E * o->d_state : E * (o->d_conv - 1);
}

#define add layer_param_add

static void mamba_declare(Layer *l, Params *p, const char *prefix, const char *suffix) {
    (void)suffix;
    Mamba *m = rt_calloc(1, sizeof *m, "mamba layer");
    l->impl = m;
    const LayerOpts *o = &l->opt;
    int H = l->H;
    m->E = o->expand * H;
    m->N = o->d_state;
    m->K = o->d_conv;
    m->R = o->dt_rank;
    m->enc = l->D != H;
    m->p_enc_w = m->p_enc_b = -1;
    if (m->enc) {
        m->p_enc_w = add(p, prefix, "encoder.weight", H, l->D);
        m->p_enc_b = add(p, prefix, "encoder.bias", H, 0);
    }
    m->p_norm = add(p, prefix, "norm.weight", H, 0);
    m->p_in = add(p, prefix, "mixer.in_proj.weight", 2 * m->E, H);
    m->p_conv_w = add(p, prefix, "mixer.conv1d.weight", m->E, m->K);
    m->p_conv_b = add(p, prefix, "mixer.conv1d.bias", m->E, 0);
    m->p_x = add(p, prefix, "mixer.x_proj.weight", m->R + 2 * m->N, m->E);
    m->p_dt_w = add(p, prefix, "mixer.dt_proj.weight", m->E, m->R);
    m->p_dt_b = add(p, prefix, "mixer.dt_proj.bias", m->E, 0);
    m->p_alog = add(p, prefix, "mixer.A_log", m->E, m->N);
    m->p_d = add(p, prefix, "mixer.D", m->E, 0);
    m->p_out = add(p, prefix, "mixer.out_proj.weight", H, m->E);
    l->param_first = m->enc ? m->p_enc_w : m->p_norm;
    l->param_count = m->p_out - l->param_first + 1;
}

static void mamba_alloc(Layer *l, const Params *p) {
    Mamba *m = mamba_of(l);
    int H = l->H, E = m->E, N = m->N, K = m->K, R = m->R, B = l->B;
    m->enc_w = m->enc ? params_value(p, m->p_enc_w) : NULL;
    m->enc_b = m->enc ? params_value(p, m->p_enc_b) : NULL;
    m->g_enc_w = m->enc ? params_grad(p, m->p_enc_w) : NULL;
    m->g_enc_b = m->enc ? params_grad(p, m->p_enc_b) : NULL;
    m->norm_w = params_value(p, m->p_norm);
    m->g_norm = params_grad(p, m->p_norm);
    m->w_in = params_value(p, m->p_in);
    m->g_in = params_grad(p, m->p_in);
    m->conv_w = params_value(p, m->p_conv_w);
    m->g_conv_w = params_grad(p, m->p_conv_w);
    m->conv_b = params_value(p, m->p_conv_b);
    m->g_conv_b = params_grad(p, m->p_conv_b);
    m->w_x = params_value(p, m->p_x);
    m->g_x = params_grad(p, m->p_x);
    m->dt_w = params_value(p, m->p_dt_w);
    m->g_dt_w = params_grad(p, m->p_dt_w);
    m->dt_b = params_value(p, m->p_dt_b);
    m->g_dt_b = params_grad(p, m->p_dt_b);
    m->a_log = params_value(p, m->p_alog);
    m->g_alog = params_grad(p, m->p_alog);
    m->dd = params_value(p, m->p_d);
    m->g_d = params_grad(p, m->p_d);
    m->w_out = params_value(p, m->p_out);
    m->g_out = params_grad(p, m->p_out);
    size_t rows = (size_t)l->Tmax * B, nseg = ((size_t)l->Tmax + MAMBA_SEG - 1) / MAMBA_SEG;
    size_t pad = (size_t)(K - 1 + l->Tmax) * B * E;
    if (m->enc) m->r = rt_alloc_floats(rows * H, "mamba encoder output");
    m->xn = rt_alloc_floats(rows * H, "mamba normed input");
    m->rinv = rt_alloc_floats(rows, "mamba norm roots");
    m->xpad = rt_alloc_floats(pad, "mamba conv inputs");
    m->z = rt_alloc_floats(rows * E, "mamba gate inputs");
    m->xc = rt_alloc_floats(rows * E, "mamba conv outputs");
    m->u = rt_alloc_floats(rows * E, "mamba scan inputs");
    m->dt = rt_alloc_floats(rows * R, "mamba step ranks");
    m->bm = rt_alloc_floats(rows * N, "mamba B");
    m->dbc = rt_alloc_floats(rows * (R + 2 * N), "mamba x_proj output");
    m->cm = rt_alloc_floats(rows * N, "mamba C");
    m->delta = rt_alloc_floats(rows * E, "mamba steps");
    m->dsig = rt_alloc_floats(rows * E, "mamba step derivatives");
    m->ys = rt_alloc_floats(rows * E, "mamba scan outputs");
    m->g = rt_alloc_floats(rows * E, "mamba gated outputs");
    m->hsave = rt_alloc_floats(nseg * B * N * E, "mamba saved states");
    m->at = rt_alloc_floats((size_t)N * E, "mamba A");
    m->wct = rt_alloc_floats((size_t)K * E, "mamba conv weight");
    m->dres = rt_alloc_floats(rows * H, "mamba output gradient");
    m->dxn = rt_alloc_floats(rows * H, "mamba normed gradient");
    m->dz = rt_alloc_floats(rows * E, "mamba gate gradient");
    m->du = rt_alloc_floats(rows * E, "mamba scan input gradient");
    m->ddelta = rt_alloc_floats(rows * E, "mamba step gradient");
    m->ddt = rt_alloc_floats(rows * R, "mamba step rank gradient");
    m->dbm = rt_alloc_floats(rows * N, "mamba B gradient");
    m->dcm = rt_alloc_floats(rows * N, "mamba C gradient");
    m->dxpad = rt_alloc_floats(pad, "mamba conv input gradient");
    m->nthr = omp_get_max_threads();
    m->seg_floats = (size_t)(MAMBA_SEG + 1) * N * MAMBA_DB;
    m->eseg_floats = (size_t)MAMBA_SEG * N * MAMBA_DB;
    m->dh_floats = (size_t)N * MAMBA_DB;
    m->hseg = rt_alloc_floats(m->nthr * m->seg_floats, "mamba segment states");
    m->dh = rt_alloc_floats(m->nthr * m->dh_floats, "mamba state gradient");
    m->eseg = rt_alloc_floats(m->nthr * m->eseg_floats, "mamba segment decays");
    size_t nblk = ((size_t)E + MAMBA_DB - 1) / MAMBA_DB;
    m->dbc_part = rt_alloc_floats(nblk * 2 * rows * N, "mamba per-block B, C gradients");
    m->dat = rt_alloc_floats((size_t)N * E, "mamba A gradient");
    m->dwct = rt_alloc_floats((size_t)K * E, "mamba conv weight gradient");
    m->yrow = rt_alloc_floats((size_t)E, "mamba scratch");
    l->y = rt_alloc_floats(rows * H, "mamba output");
}

static void mamba_free(Layer *l) {
    Mamba *m = mamba_of(l);
    if (!m) return;
    float *bufs[] = {m->r,   m->xn,  m->rinv,   m->xpad, m->z,   m->xc,    m->u,    m->dt,
                     m->bm,  m->cm,  m->delta,  m->ys,   m->g,   m->hsave, m->at,   m->wct,
                     m->dres, m->dxn, m->dz,    m->du,   m->ddelta, m->ddt, m->dbm, m->dcm,
                     m->dxpad, m->hseg, m->dh,  m->dat,  m->dwct, m->yrow, m->dsig, m->dbc, m->eseg, m->dbc_part, l->y};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(m);
    l->impl = NULL;
    l->y = NULL;
}

/* mamba_ssm's init: Linear and conv weights PyTorch's default; dt_proj.weight U(+-R^-1/2);
 * dt_proj.bias the inverse softplus of dt = exp(U(ln dt_min, ln dt_max)) (at least 1e-4;
 * dt_min, dt_max 1e-3 and 1e-1 unless LayerInit says otherwise);
 * A_log[d,n] = log(n+1); D = 1; norm 1; out_proj redrawn / sqrt(n_layer) (the language
 * model's rescaling of the residual branch). */
static void mamba_init_weights(Layer *l, const LayerInit *init) {
    Mamba *m = mamba_of(l);
    int H = l->H, E = m->E, N = m->N, K = m->K, R = m->R;
    TorchRng *g = init->torch;
    if (m->enc) layer_init_linear(g, (float *)m->enc_w, (float *)m->enc_b, H, l->D);
    for (int j = 0; j < H; j++) ((float *)m->norm_w)[j] = 1.0f;
    double b_in = layer_linear_bound(H), b_conv = layer_linear_bound(K), b_conv_b = 1.0 / sqrt((double)K);
    torch_uniform_fill(g, (float *)m->w_in, (size_t)2 * E * H, -b_in, b_in);
    torch_uniform_fill(g, (float *)m->conv_w, (size_t)E * K, -b_conv, b_conv);
    torch_uniform_fill(g, (float *)m->conv_b, (size_t)E, -b_conv_b, b_conv_b);
    double b_x = layer_linear_bound(E), b_dt = 1.0 / sqrt((double)R);
    torch_uniform_fill(g, (float *)m->w_x, (size_t)(R + 2 * N) * E, -b_x, b_x);
    torch_uniform_fill(g, (float *)m->dt_w, (size_t)E * R, -b_dt, b_dt);
    float *u = rt_alloc_floats((size_t)E, "dt init");
    torch_uniform_fill(g, u, (size_t)E, 0.0, 1.0);
    double lo = log(init->dt_min > 0.0 ? init->dt_min : 1e-3),
           hi = log(init->dt_max > 0.0 ? init->dt_max : 1e-1);
    for (int d = 0; d < E; d++) {
        double dt = exp(u[d] * (hi - lo) + lo);
        if (dt < 1e-4) dt = 1e-4;
        ((float *)m->dt_b)[d] = (float)(dt + log(-expm1(-dt)));
    }
    free(u);
    for (int d = 0; d < E; d++)
        for (int n = 0; n < N; n++) ((float *)m->a_log)[(size_t)d * N + n] = (float)log(n + 1.0);
    for (int d = 0; d < E; d++) ((float *)m->dd)[d] = 1.0f;
    double b_out = layer_linear_bound(E);
    torch_uniform_fill(g, (float *)m->w_out, (size_t)H * E, -b_out, b_out);
    double scale = 1.0 / sqrt((double)(init->n_layer > 0 ? init->n_layer : 1));
    for (size_t i = 0; i < (size_t)H * E; i++) ((float *)m->w_out)[i] *= (float)scale;
}

static double mamba_flops_per_token(const Layer *l) {
    const Mamba *m = mamba_of(l);
    double H = l->H, E = m->E, N = m->N, K = m->K, R = m->R;
    double gemm = 2.0 * (2 * E * H + E * (R + 2 * N) + R * E + H * E) +
                  (m->enc ? 2.0 * l->D * H : 0.0);
    /* scan per (d,n): exp argument 1, update 3 (mul, fma), output fma 2; conv 2K per d */
    return gemm + E * N * 6.0 + E * 2.0 * K;
}

/* ---- elementwise kernels (vectorised across channels) ------------------------------- */

static inline float silu(float x) { return x * activ_sigmoidf(x); }

/* log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, odd series to s^15. */
static inline float log1p_unit(float e) {
    float s = e / (2.0f + e), s2 = s * s;
    float p = 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

/* softplus as PyTorch (x for x > 20): v = softplus(v) in place, and its derivative
 * sig = sigmoid(v before). */
RT_SIMD_CLONES
static void softplus_rows(float *restrict v, float *restrict sig, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = v[i], ax = x < 0.0f ? -x : x;
        float e = activ_expf(-ax);
        float sp = (x > 0.0f ? x : 0.0f) + log1p_unit(e);
        float r = 1.0f / (1.0f + e);
        sig[i] = x >= 0.0f ? r : e * r;
        v[i] = x > 20.0f ? x : sp;
    }
}

/* g = ys silu(z) */
RT_SIMD_CLONES
static void gate_forward(float *restrict g, const float *restrict ys, const float *restrict z,
                         size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = ys[i] * (z[i] * activ_sigmoidf(z[i]));
}

/* From dg (in dz): dys = dg silu(z), dz = dg ys silu'(z). */
RT_SIMD_CLONES
static void gate_backward(float *restrict dys, float *restrict dz, const float *restrict ys,
                          const float *restrict z, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float zi = z[i], s = activ_sigmoidf(zi), d = dz[i];
        dys[i] = d * zi * s;
        dz[i] = d * ys[i] * s * (1.0f + zi * (1.0f - s));
    }
}

/* du = du silu'(xc) */
RT_SIMD_CLONES
static void silu_backward(float *restrict du, const float *restrict xc, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = activ_sigmoidf(xc[i]);
        du[i] *= s * (1.0f + xc[i] * (1.0f - s));
    }
}

RT_SIMD_CLONES
static void mul_rows(float *restrict a, const float *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] *= b[i];
}

/* One time row of the conv's backward: dw (K,E) += dxc . xpad rows, dxpad rows += w dxc. */
RT_SIMD_CLONES
static void conv_backward_row(float *restrict dw, float *restrict dxs, const float *restrict dxc,
                              const float *restrict xs, const float *restrict w, int B, int E) {
    for (int b = 0; b < B; b++)
        for (int d = 0; d < E; d++) {
            size_t i = (size_t)b * E + d;
            dw[d] += dxc[i] * xs[i];
            dxs[i] += w[d] * dxc[i];
        }
}

/* dD (E) += sum over rows of dys u */
RT_SIMD_CLONES
static void d_grad(float *restrict gd, const float *restrict dys, const float *restrict u,
                   int rows, int E) {
    for (int i = 0; i < rows; i++)
        for (int d = 0; d < E; d++) gd[d] += dys[(size_t)i * E + d] * u[(size_t)i * E + d];
}

/* xc[t] = b + sum_j wct[j] * xpad[t + j], u = silu(xc), one time row of B*E at a time. */
RT_SIMD_CLONES
static void conv_forward(float *restrict xc, float *restrict u, const float *restrict xpad,
                         const float *restrict wct, const float *restrict bias, int T, int B,
                         int E, int K) {
    size_t BE = (size_t)B * E;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            float *o = xc + t * BE + (size_t)b * E, *uo = u + t * BE + (size_t)b * E;
            for (int d = 0; d < E; d++) o[d] = bias[d];
            for (int j = 0; j < K; j++) {
                const float *xs = xpad + (t + j) * BE + (size_t)b * E, *w = wct + (size_t)j * E;
                for (int d = 0; d < E; d++) o[d] += w[d] * xs[d];
            }
            for (int d = 0; d < E; d++) uo[d] = silu(o[d]);
        }
}

/* The scan works on blocks of MAMBA_DB channels of one stream, all T steps of a block
 * before the next block: the block's state (N, MAMBA_DB) and A stay in L1. In the kernels
 * w <= MAMBA_DB is the block's width, h and e are (N, MAMBA_DB), at and dat (N, ld) point at
 * the block's first channel of the (N,E) arrays. */

/* exp(delta A) of one (channel, state): delta > 0 and A < 0, so the argument is clamped to
 * [-87, 0] (a NaN is then a number, and the NaN goes on through delta B u). */
static RT_ALWAYS_INLINE float scan_decay(float dl, float a) {
    return activ_exp_fma(activ_clampf(dl * a, -87.0f, 0.0f));
}

/* The kernels run with explicit fmaf (RT_FMA_CLONES: the same results on every clone).
 * The forward kernels take the channels in chunks of SCAN_LANES. */

/* scan_step over channels [d0, d0 + wk) of the block, wk <= SCAN_LANES: the channels outer
 * and the states inner, so that ys stays in registers (no store-load chain over n). */
static RT_ALWAYS_INLINE void scan_step_chunk(float *restrict h, float *restrict ys,
                                   const float *restrict delta, const float *restrict u,
                                   const float *restrict bm, const float *restrict cm,
                                   const float *restrict at, const float *restrict dd, int d0,
                                   int wk, int N, int ld) {
    float acc[SCAN_LANES], du[SCAN_LANES], dl[SCAN_LANES];
    for (int k = 0; k < wk; k++) {
        dl[k] = delta[d0 + k];
        du[k] = dl[k] * u[d0 + k];
        acc[k] = dd[d0 + k] * u[d0 + k];
    }
    for (int n = 0; n < N; n++) {
        float *hn = h + (size_t)n * MAMBA_DB + d0;
        const float *an = at + (size_t)n * ld + d0;
        float bn = bm[n], cn = cm[n];
        for (int k = 0; k < wk; k++) {
            float v = fmaf(scan_decay(dl[k], an[k]), hn[k], bn * du[k]);
            hn[k] = v;
            acc[k] = fmaf(cn, v, acc[k]);
        }
    }
    for (int k = 0; k < wk; k++) ys[d0 + k] = acc[k];
}

/* One step: h advanced; ys (w) = C.h + D u. */
RT_FMA_CLONES
static void scan_step(float *restrict h, float *restrict ys, const float *restrict delta,
                      const float *restrict u, const float *restrict bm,
                      const float *restrict cm, const float *restrict at,
                      const float *restrict dd, int w, int N, int ld) {
    int d0 = 0;
    for (; d0 + SCAN_LANES <= w; d0 += SCAN_LANES)
        scan_step_chunk(h, ys, delta, u, bm, cm, at, dd, d0, SCAN_LANES, N, ld);
    if (d0 < w) scan_step_chunk(h, ys, delta, u, bm, cm, at, dd, d0, w - d0, N, ld);
}

/* scan_step without the output, from hp (the state before the step) into h, keeping e =
 * exp(delta A) for the reverse step. */
RT_FMA_CLONES
static void scan_step_keep(float *restrict h, const float *restrict hp, float *restrict e,
                           const float *restrict delta, const float *restrict u,
                           const float *restrict bm, const float *restrict at, int w, int N,
                           int ld) {
    float du[MAMBA_DB];
    for (int d = 0; d < w; d++) du[d] = delta[d] * u[d];
    for (int n = 0; n < N; n++) {
        float *hn = h + (size_t)n * MAMBA_DB, *en = e + (size_t)n * MAMBA_DB;
        const float *hpn = hp + (size_t)n * MAMBA_DB, *an = at + (size_t)n * ld;
        float bn = bm[n];
        for (int d = 0; d < w; d++) {
            float a = scan_decay(delta[d], an[d]);
            en[d] = a;
            hn[d] = fmaf(a, hpn[d], bn * du[d]);
        }
    }
}

/* The reverse step of one (state n, channel d): see scan_back_step. */
static RT_ALWAYS_INLINE void scan_back_one(int d, float *restrict dhn, float *restrict datn,
                                           float *restrict du, float *restrict ddelta,
                                           float *sb, float *sc, const float *restrict hpn,
                                           const float *restrict hcn,
                                           const float *restrict exn,
                                           const float *restrict dys,
                                           const float *restrict delta,
                                           const float *restrict u, const float *restrict an,
                                           float bn, float cn) {
    float dl = delta[d], e = exn[d];
    float g = fmaf(cn, dys[d], dhn[d]); /* dLoss/dh_t */
    *sc = fmaf(hcn[d], dys[d], *sc);
    float ge = g * hpn[d] * e; /* dLoss/d(dl a) */
    ddelta[d] += fmaf(ge, an[d], g * bn * u[d]);
    datn[d] = fmaf(ge, dl, datn[d]);
    float gdl = g * dl;
    *sb = fmaf(gdl, u[d], *sb);
    du[d] = fmaf(gdl, bn, du[d]);
    dhn[d] = g * e;
}

/* One step of the reverse recurrence. hp = h_{t-1}, hc = h_t, ex = exp(delta A) of the
 * step; dh holds dLoss/dh_t from later steps and leaves as dLoss/dh_{t-1}; dys (w) =
 * dLoss/dys_t. Accumulates dat (+= dLoss/dA), du, ddelta (w), dbm, dcm (N). The sums over
 * the channels (dbm, dcm) go to SCAN_LANES partial sums, channel d in lane d % SCAN_LANES,
 * then a fixed pairwise tree: vectorised and deterministic. */
RT_FMA_CLONES
static void scan_back_step(float *restrict dh, float *restrict dat, float *restrict du,
                           float *restrict ddelta, float *restrict dbm, float *restrict dcm,
                           const float *restrict hp, const float *restrict hc,
                           const float *restrict ex, const float *restrict dys,
                           const float *restrict delta, const float *restrict u,
                           const float *restrict bm, const float *restrict cm,
                           const float *restrict at, int w, int N, int ld) {
    for (int n = 0; n < N; n++) {
        float *dhn = dh + (size_t)n * MAMBA_DB, *datn = dat + (size_t)n * ld;
        const float *an = at + (size_t)n * ld, *hpn = hp + (size_t)n * MAMBA_DB,
                    *hcn = hc + (size_t)n * MAMBA_DB, *exn = ex + (size_t)n * MAMBA_DB;
        float bn = bm[n], cn = cm[n], sb[SCAN_LANES] = {0}, sc[SCAN_LANES] = {0};
        int d = 0;
        for (; d + SCAN_LANES <= w; d += SCAN_LANES)
            for (int k = 0; k < SCAN_LANES; k++)
                scan_back_one(d + k, dhn, datn, du, ddelta, &sb[k], &sc[k], hpn, hcn, exn, dys,
                              delta, u, an, bn, cn);
        for (; d < w; d++)
            scan_back_one(d, dhn, datn, du, ddelta, &sb[d % SCAN_LANES], &sc[d % SCAN_LANES],
                          hpn, hcn, exn, dys, delta, u, an, bn, cn);
        for (int half = SCAN_LANES / 2; half >= 1; half /= 2)
            for (int k = 0; k < half; k++) {
                sb[k] += sb[k + half];
                sc[k] += sc[k + half];
            }
        dbm[n] += sb[0];
        dcm[n] += sc[0];
    }
}

/* ---- forward ----------------------------------------------------------------------- */

static void mamba_forward(Layer *l, float *const *state, const float *x, int T, float *ws) {
    (void)ws;
    Mamba *m = mamba_of(l);
    int H = l->H, E = m->E, N = m->N, K = m->K, R = m->R, B = l->B;
    int rows = T * B;
    size_t BE = (size_t)B * E, NE = (size_t)N * E;
    REQUIRE(T >= 1 && T <= l->Tmax);
    m->T_last = T;
    const float *r = x;
    if (m->enc) {
        layer_encoder_forward(m->r, x, m->enc_w, m->enc_b, rows, H, l->D);
        r = m->r;
    }
    norm_rms_forward(m->xn, m->rinv, r, m->norm_w, rows, H);
    /* carried conv inputs in front of the chunk: state (B,(K-1),E) -> xpad rows 0..K-2 */
    for (int j = 0; j < K - 1; j++)
        for (int b = 0; b < B; b++)
            memcpy(m->xpad + j * BE + (size_t)b * E, state[1] + (size_t)b * (K - 1) * E + (size_t)j * E,
                   (size_t)E * sizeof(float));
    float *xi = m->xpad + (size_t)(K - 1) * BE;
    la_matmul_nt(xi, m->xn, m->w_in, rows, E, H, 0.0f);
    la_matmul_nt(m->z, m->xn, m->w_in + (size_t)E * H, rows, E, H, 0.0f);
    for (int d = 0; d < E; d++)
        for (int j = 0; j < K; j++) m->wct[(size_t)j * E + d] = m->conv_w[(size_t)d * K + j];
    conv_forward(m->xc, m->u, m->xpad, m->wct, m->conv_b, T, B, E, K);
    int W = R + 2 * N;
    la_matmul_nt(m->dbc, m->u, m->w_x, rows, W, E, 0.0f);
    for (int i = 0; i < rows; i++) {
        const float *src = m->dbc + (size_t)i * W;
        memcpy(m->dt + (size_t)i * R, src, (size_t)R * sizeof(float));
        memcpy(m->bm + (size_t)i * N, src + R, (size_t)N * sizeof(float));
        memcpy(m->cm + (size_t)i * N, src + R + N, (size_t)N * sizeof(float));
    }
    for (int i = 0; i < rows; i++) memcpy(m->delta + (size_t)i * E, m->dt_b, (size_t)E * sizeof(float));
    la_matmul_nt(m->delta, m->dt, m->dt_w, rows, E, R, 1.0f);
    softplus_rows(m->delta, m->dsig, (size_t)rows * E);
    for (int d = 0; d < E; d++)
        for (int n = 0; n < N; n++)
            m->at[(size_t)n * E + d] = -expf(m->a_log[(size_t)d * N + n]);
    /* the scan, stream by stream, block by block; the block's h in the thread's hseg[0]
     * (--threads: the (stream, block) pairs are shared out; each is computed alone) */
    int nblk = (E + MAMBA_DB - 1) / MAMBA_DB;
#pragma omp parallel for collapse(2) schedule(static) num_threads(m->nthr) if (B * nblk > 1 && m->nthr > 1)
    for (int b = 0; b < B; b++)
        for (int blk = 0; blk < nblk; blk++) {
            int d0 = blk * MAMBA_DB, w = E - d0 < MAMBA_DB ? E - d0 : MAMBA_DB;
            int tid = omp_get_thread_num();
            REQUIRE(tid < m->nthr);
            float *h = m->hseg + (size_t)tid * m->seg_floats;
            float *s = state[0] + (size_t)b * E * N;
            for (int j = 0; j < w; j++)
                for (int n = 0; n < N; n++) h[(size_t)n * MAMBA_DB + j] = s[(size_t)(d0 + j) * N + n];
            for (int t = 0; t < T; t++) {
                if (t % MAMBA_SEG == 0) {
                    float *hs = m->hsave + ((size_t)(t / MAMBA_SEG) * B + b) * NE + d0;
                    for (int n = 0; n < N; n++)
                        memcpy(hs + (size_t)n * E, h + (size_t)n * MAMBA_DB, (size_t)w * sizeof(float));
                }
                size_t o = ((size_t)t * B + b) * E + d0, on = ((size_t)t * B + b) * N;
                scan_step(h, m->ys + o, m->delta + o, m->u + o, m->bm + on, m->cm + on, m->at + d0,
                          m->dd + d0, w, N, E);
            }
            for (int j = 0; j < w; j++)
                for (int n = 0; n < N; n++) s[(size_t)(d0 + j) * N + n] = h[(size_t)n * MAMBA_DB + j];
        }
    /* the conv state after the chunk: the last K-1 rows of xpad */
    for (int j = 0; j < K - 1; j++)
        for (int b = 0; b < B; b++)
            memcpy(state[1] + (size_t)b * (K - 1) * E + (size_t)j * E, m->xpad + (T + j) * BE + (size_t)b * E,
                   (size_t)E * sizeof(float));
    gate_forward(m->g, m->ys, m->z, (size_t)rows * E);
    memcpy(l->y, r, (size_t)rows * H * sizeof(float));
    la_matmul_nt(l->y, m->g, m->w_out, rows, H, E, 1.0f);
}

static void mamba_step(Layer *l, float *const *state, const float *x, float *ws) {
    mamba_forward(l, state, x, 1, ws);
}

/* ---- backward ---------------------------------------------------------------------- */

static void mamba_backward(Layer *l, const float *dy, float *const *dstate0, int T, float *ws,
                           const LayerHooks *hooks) {
    (void)ws;
    Mamba *m = mamba_of(l);
    int H = l->H, E = m->E, N = m->N, K = m->K, R = m->R, B = l->B;
    int rows = T * B;
    size_t BE = (size_t)B * E, NE = (size_t)N * E, RE = (size_t)rows * E;
    REQUIRE(T == m->T_last);
    memcpy(m->dres, dy, (size_t)rows * H * sizeof(float));
    /* out: dW_out += dy^T g; dg = dy W_out (into dz's buffer first) */
    la_matmul_tn(m->g_out, dy, m->g, H, E, rows, 1.0f);
    float *dg = m->dz;
    la_matmul_nn(dg, dy, m->w_out, rows, E, H, 0.0f);
    /* gate: dys = dg silu(z) (into g's buffer), dz = dg ys silu'(z) */
    float *dys = m->g;
    gate_backward(dys, dg, m->ys, m->z, RE);
    /* the reverse scan, stream by stream, segment by segment */
    memset(m->du, 0, RE * sizeof(float));
    memset(m->ddelta, 0, RE * sizeof(float));
    memset(m->dat, 0, NE * sizeof(float));
    int nseg = (T + MAMBA_SEG - 1) / MAMBA_SEG, nblk = (E + MAMBA_DB - 1) / MAMBA_DB;
    size_t HB = (size_t)N * MAMBA_DB, RN = (size_t)rows * N; /* one block's state */
    memset(m->dbc_part, 0, (size_t)nblk * 2 * RN * sizeof(float));
    /* block by block, stream by stream (--threads: the blocks are shared out; dat is a
     * block's own, and each block sums its channels' dB, dC into a part of its own, which
     * are then added in block order: the same bits as one thread adding them block by
     * block) */
#pragma omp parallel for schedule(static) num_threads(m->nthr) if (nblk > 1 && m->nthr > 1)
    for (int blk = 0; blk < nblk; blk++) {
        int d0 = blk * MAMBA_DB, w = E - d0 < MAMBA_DB ? E - d0 : MAMBA_DB;
        int tid = omp_get_thread_num();
        REQUIRE(tid < m->nthr);
        float *hseg = m->hseg + (size_t)tid * m->seg_floats;
        float *eseg = m->eseg + (size_t)tid * m->eseg_floats;
        float *dh = m->dh + (size_t)tid * m->dh_floats;
        float *dbm = m->dbc_part + (size_t)blk * 2 * RN, *dcm = dbm + RN;
        for (int b = 0; b < B; b++) {
            memset(dh, 0, HB * sizeof(float));
            for (int sg = nseg - 1; sg >= 0; sg--) {
                int t0 = sg * MAMBA_SEG, t1 = t0 + MAMBA_SEG < T ? t0 + MAMBA_SEG : T;
                /* hseg[0] = h before step t0, hseg[i+1] = h after step t0+i */
                const float *hs = m->hsave + ((size_t)sg * B + b) * NE + d0;
                for (int n = 0; n < N; n++)
                    memcpy(hseg + (size_t)n * MAMBA_DB, hs + (size_t)n * E, (size_t)w * sizeof(float));
                for (int t = t0; t < t1; t++) {
                    size_t o = ((size_t)t * B + b) * E + d0, on = ((size_t)t * B + b) * N;
                    float *hn = hseg + (size_t)(t - t0 + 1) * HB;
                    scan_step_keep(hn, hn - HB, eseg + (size_t)(t - t0) * HB, m->delta + o,
                                   m->u + o, m->bm + on, m->at + d0, w, N, E);
                }
                for (int t = t1 - 1; t >= t0; t--) {
                    size_t o = ((size_t)t * B + b) * E + d0, on = ((size_t)t * B + b) * N;
                    const float *hc = hseg + (size_t)(t - t0 + 1) * HB;
                    float *dur = m->du + o;
                    for (int d = 0; d < w; d++) dur[d] += dys[o + d] * m->dd[d0 + d];
                    scan_back_step(dh, m->dat + d0, dur, m->ddelta + o, dbm + on, dcm + on,
                                   hc - HB, hc, eseg + (size_t)(t - t0) * HB, dys + o,
                                   m->delta + o, m->u + o, m->bm + on, m->cm + on, m->at + d0,
                                   w, N, E);
                }
            }
            if (dstate0) {
                float *ds = dstate0[0] + (size_t)b * E * N;
                for (int j = 0; j < w; j++)
                    for (int n = 0; n < N; n++)
                        ds[(size_t)(d0 + j) * N + n] = dh[(size_t)n * MAMBA_DB + j];
            }
            if (omp_get_thread_num() == 0) layer_progress(hooks, b); /* MPI: the main thread */
        }
    }
    memset(m->dbm, 0, RN * sizeof(float));
    memset(m->dcm, 0, RN * sizeof(float));
    for (int blk = 0; blk < nblk; blk++) {
        const float *pb = m->dbc_part + (size_t)blk * 2 * RN, *pc = pb + RN;
        for (size_t i = 0; i < RN; i++) {
            m->dbm[i] += pb[i];
            m->dcm[i] += pc[i];
        }
    }
    /* D, A_log: dD += sum dys u; dA_log[d,n] = dA[n,d] * A[n,d] */
    d_grad(m->g_d, dys, m->u, rows, E);
    for (int d = 0; d < E; d++)
        for (int n = 0; n < N; n++)
            m->g_alog[(size_t)d * N + n] += m->dat[(size_t)n * E + d] * m->at[(size_t)n * E + d];
    /* delta = softplus(pre): dpre = ddelta * sigmoid(pre) = ddelta * (1 - exp(-delta)) */
    mul_rows(m->ddelta, m->dsig, RE);
    la_matmul_tn(m->g_dt_w, m->ddelta, m->dt, E, R, rows, 1.0f);
    la_colsum_add(m->g_dt_b, m->ddelta, rows, E);
    la_matmul_nn(m->ddt, m->ddelta, m->dt_w, rows, R, E, 0.0f);
    /* x_proj: dW_x += [ddt dB dC]^T u; du += [ddt dB dC] W_x */
    int W = R + 2 * N;
    for (int i = 0; i < rows; i++) {
        float *dst = m->dbc + (size_t)i * W;
        memcpy(dst, m->ddt + (size_t)i * R, (size_t)R * sizeof(float));
        memcpy(dst + R, m->dbm + (size_t)i * N, (size_t)N * sizeof(float));
        memcpy(dst + R + N, m->dcm + (size_t)i * N, (size_t)N * sizeof(float));
    }
    la_matmul_tn(m->g_x, m->dbc, m->u, W, E, rows, 1.0f);
    la_matmul_nn(m->du, m->dbc, m->w_x, rows, E, W, 1.0f);
    /* u = silu(xc): dxc = du silu'(xc) (in du) */
    silu_backward(m->du, m->xc, RE);
    la_colsum_add(m->g_conv_b, m->du, rows, E);
    /* conv: dwct[j] += sum_t dxc[t] xpad[t+j]; dxpad[t+j] += wct[j] dxc[t] */
    memset(m->dxpad, 0, (size_t)(K - 1 + T) * BE * sizeof(float));
    memset(m->dwct, 0, (size_t)K * E * sizeof(float));
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            const float *dxc = m->du + (size_t)t * BE, *xs = m->xpad + (size_t)(t + j) * BE;
            conv_backward_row(m->dwct + (size_t)j * E, m->dxpad + (size_t)(t + j) * BE, dxc, xs,
                              m->wct + (size_t)j * E, B, E);
        }
    for (int d = 0; d < E; d++)
        for (int j = 0; j < K; j++) m->g_conv_w[(size_t)d * K + j] += m->dwct[(size_t)j * E + d];
    if (dstate0)
        for (int j = 0; j < K - 1; j++)
            for (int b = 0; b < B; b++)
                memcpy(dstate0[1] + (size_t)b * (K - 1) * E + (size_t)j * E,
                       m->dxpad + j * BE + (size_t)b * E, (size_t)E * sizeof(float));
    /* in_proj: dW_in += [dxi dz]^T xn; dxn = dxi W_in[0:E] + dz W_in[E:2E] */
    const float *dxi = m->dxpad + (size_t)(K - 1) * BE;
    la_matmul_tn(m->g_in, dxi, m->xn, E, H, rows, 1.0f);
    la_matmul_tn(m->g_in + (size_t)E * H, m->dz, m->xn, E, H, rows, 1.0f);
    la_matmul_nn(m->dxn, dxi, m->w_in, rows, H, E, 0.0f);
    la_matmul_nn(m->dxn, m->dz, m->w_in + (size_t)E * H, rows, H, E, 1.0f);
    if (m->enc) /* r is ours: the norm's backward now, dres += dLoss/dr through the norm */
        norm_rms_backward(m->dres, m->g_norm, m->dxn, m->r, m->norm_w, m->rinv, rows, H, 1);
}

static void mamba_backward_input(Layer *l, const float *x, float *dx, int T) {
    Mamba *m = mamba_of(l);
    int H = l->H, rows = T * l->B;
    REQUIRE(T == m->T_last);
    if (m->enc) {
        layer_encoder_backward(m->g_enc_w, m->g_enc_b, dx, m->dres, x, m->enc_w, rows, H, l->D);
        return;
    }
    norm_rms_backward(m->dres, m->g_norm, m->dxn, x, m->norm_w, m->rinv, rows, H, 1);
    if (dx) memcpy(dx, m->dres, (size_t)rows * H * sizeof(float));
}

const LayerKind layer_mamba = {
    .name = "mamba",
    .stacked_module = 0,
    .resolve_opts = mamba_resolve_opts,
    .check_opts = mamba_check_opts,
    .nstates = 2,
    .state_names = {"ssm", "conv"},
    .state_width = mamba_state_width,
    .declare = mamba_declare,
    .alloc = mamba_alloc,
    .free = mamba_free,
    .workspace_floats = layer_no_workspace,
    .init_weights = mamba_init_weights,
    .forward = mamba_forward,
    .backward = mamba_backward,
    .backward_input = mamba_backward_input,
    .input_grad_grouped = NULL,
    .step = mamba_step,
    .flops_per_token = mamba_flops_per_token,
};
