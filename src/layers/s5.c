/* s5: the S5 layer (Smith, Warrington, Linderman 2022) as one prenorm residual layer of
 * width H, the S5 reference's SequenceLayer around its S5SSM:
 *
 *   r   = x, or encoder(x) (Linear D->H) when the input width D differs from H
 *   un  = LayerNorm(r)                                         (rows,H)
 *   x_t = Lbar x_{t-1} + Bbar un_t    complex, P modes, diagonal Lbar     (B,P) per step
 *   ys  = f Re(C x_t) + D un_t        f = 2 with conjugate symmetry (one of each pair
 *                                     stored), 1 without                  (rows,H)
 *   g   = gelu_tanh(ys);  out = g, or g sigmoid(g W2^T + b2) (half-GLU)
 *   y   = r + out
 *
 * Discretisation, from Lambda = Lambda_re (or min(Lambda_re, -1e-4) with clip_eigs) +
 * i Lambda_im and step = exp(log_step), z = Lambda step:
 *   ZOH       Lbar = exp(z), Bbar = step expm1(z)/z B  (expm1 in two real parts: no
 *             cancellation for small |z|, where (Lbar - 1)/Lambda loses digits in float)
 *   bilinear  Lbar = (1 + z/2)/(1 - z/2), Bbar = step/(1 - z/2) B
 * computed in double once per chunk (P + P*H values).
 *
 * Names and shapes (the S5 reference's, under prefix): "norm.weight", "norm.bias" (H);
 * "seq.Lambda_re", "seq.Lambda_im" (P); "seq.B" (P,2H) = the reference's (P,H,2) (re, im
 * interleaved); "seq.C" (H,2P) = (H,P,2); "seq.D" (H); "seq.log_step" (P,1); with the
 * half-GLU "out2.weight" (H,H), "out2.bias" (H); for D != H "encoder.weight" (H,D),
 * "encoder.bias". Lambda, B and log_step are PARAM_GROUP_SSM (their own learning rate, no
 * weight decay, as the paper trains them).
 *
 * Carried state per stream: "x" (2P) = [Re x_0 .. Re x_{P-1}, Im x_0 .. Im x_{P-1}].
 *
 * Cost structure. Both dense maps are GEMMs over the chunk's T*B rows: Bu = un [Bbar_re;
 * Bbar_im]^T (rows,2P) and ys = xs [f C_re, -f C_im]^T (rows,H). The recurrence between
 * them is elementwise per (stream, mode), run in place over Bu (which becomes the states
 * xs, vectorised across modes); xs (rows,2P) is kept for backward, which needs x_{t-1}:
 * memory is that of one chunk. Backward runs the reverse recurrence over the same buffer. */
#include "s5.h"

#include <complex.h>
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

#define S5_CLIP_RE (-1e-4)

typedef struct {
    int P, enc, glu;
    double fac; /* 2 with conjugate symmetry, else 1 */
    int p_enc_w, p_enc_b, p_norm_w, p_norm_b, p_lre, p_lim, p_b, p_c, p_d, p_step, p_o2_w,
        p_o2_b;
    const float *enc_w, *enc_b, *norm_w, *norm_b, *lre, *lim, *bp, *cp, *dd, *log_step, *o2_w,
        *o2_b;
    float *g_enc_w, *g_enc_b, *g_norm_w, *g_norm_b, *g_lre, *g_lim, *g_b, *g_c, *g_d, *g_step,
        *g_o2_w, *g_o2_b;
    /* the chunk's discretisation */
    float *lbar;   /* (2P) [re, im] */
    double *coef;  /* (2P) Bbar = coef B, [re, im] */
    float *bbar;   /* (2P,H): rows [0,P) real, [P,2P) imaginary parts */
    float *cmat;   /* (H,2P): [f C_re | -f C_im] */
    /* activations, (Tmax*B, width) time-major */
    float *r;      /* (rows,H) encoder output (enc only) */
    float *un;     /* (rows,H) */
    float *mean, *rinv; /* (rows) */
    float *xs;     /* (rows,2P) the states after each step */
    float *x0;     /* (B,2P) the state before the chunk */
    float *ys;     /* (rows,H) SSM output */
    float *g;      /* (rows,H) gelu(ys) */
    float *sg;     /* (rows,H) the GLU's sigmoid (glu only) */
    /* backward */
    float *dres;   /* (rows,H) dLoss/dy, then += the residual branch's dLoss/dr */
    float *dg;     /* (rows,H) */
    float *da;     /* (rows,H) the GLU's pre-sigmoid gradient (glu only) */
    float *dxs;    /* (rows,2P) dLoss/d(Bu) after the reverse recurrence */
    float *dun;    /* (rows,H) */
    float *carry;  /* (B,2P) dLoss/dx_{t} from later steps */
    double *dl;    /* (2P) dLoss/dLbar */
    float *dbbar;  /* (2P,H) */
    float *dcmat;  /* (H,2P) */
    int T_last;
} S5;

static S5 *s5_of(const Layer *l) { return (S5 *)l->impl; }

static double *s5_alloc_doubles(size_t n, const char *what) {
    return rt_calloc(n, sizeof(double), what);
}

/* ---- HiPPO-N ------------------------------------------------------------------------ */

/* LAPACK's Hermitian eigensolver (OpenBLAS ships it); the trailing lengths are the hidden
 * Fortran string lengths. */
extern void zheev_(const char *jobz, const char *uplo, const int *n, double complex *a,
                   const int *lda, double *w, double complex *work, const int *lwork,
                   double *rwork, int *info, size_t jobz_len, size_t uplo_len);

void s5_hippo_normal_part(int Pb, double *S) {
    for (int n = 0; n < Pb; n++)
        for (int k = 0; k < Pb; k++) {
            double pp = sqrt((n + 0.5) * (k + 0.5));
            /* A_LegS: -sqrt((2n+1)(2k+1)) below the diagonal, -(n+1) on it; plus p p^T */
            S[(size_t)n * Pb + k] = n > k ? -2.0 * pp + pp : n == k ? -(n + 1.0) + pp : pp;
        }
}

int s5_hippo_n(int Pb, double *im, double complex *V) {
    REQUIRE(Pb >= 1);
    double *S = s5_alloc_doubles((size_t)Pb * Pb, "hippo matrix");
    s5_hippo_normal_part(Pb, S);
    /* A = -i K, K = S + I/2 skew-symmetric; column-major, lower triangle used */
    double complex *A = rt_calloc((size_t)Pb * Pb, sizeof *A, "hippo matrix");
    for (int n = 0; n < Pb; n++)
        for (int k = 0; k <= n; k++)
            A[n + (size_t)k * Pb] = n == k ? 0.0 : -I * S[(size_t)n * Pb + k];
    free(S);
    int lwork = -1, info = 0;
    double complex wq;
    double *rwork = s5_alloc_doubles((size_t)(3 * Pb > 2 ? 3 * Pb - 2 : 1), "zheev");
    zheev_("V", "L", &Pb, A, &Pb, im, &wq, &lwork, rwork, &info, 1, 1);
    if (info == 0) {
        lwork = (int)creal(wq);
        if (lwork < 2 * Pb) lwork = 2 * Pb;
        double complex *work = rt_calloc((size_t)lwork, sizeof *work, "zheev");
        zheev_("V", "L", &Pb, A, &Pb, im, work, &lwork, rwork, &info, 1, 1);
        free(work);
    }
    free(rwork);
    if (V && info == 0) memcpy(V, A, (size_t)Pb * Pb * sizeof *A);
    free(A);
    return info;
}

/* ---- settings, parameters, buffers ----------------------------------------------------- */

static void s5_resolve_opts(LayerOpts *o, int H) {
    if (!o->conj_sym) o->conj_sym = 1;
    if (!o->blocks) o->blocks = 1;
    /* the width, made even when conjugate symmetry halves it (one block) */
    if (!o->d_state) o->d_state = o->conj_sym == 1 && o->blocks == 1 ? H + (H & 1) : H;
}

static int s5_check_opts(const LayerOpts *o, int D, int H, char *err, size_t size) {
    (void)D;
    (void)H;
    if (o->d_state < 1 || o->d_state > 8192) {
        snprintf(err, size, "--d-state %d: an S5 layer needs a state size of 1 to 8192",
                 o->d_state);
        return 1;
    }
    if (o->blocks < 1 || o->d_state % o->blocks != 0) {
        snprintf(err, size,
                 "--ssm-blocks %d: the HiPPO-N blocks must divide the state size --d-state %d",
                 o->blocks, o->d_state);
        return 1;
    }
    if (o->conj_sym != 1 && o->conj_sym != 2) {
        snprintf(err, size, "conj_sym %d: expected 1 (conjugate symmetry) or 2 (all modes)",
                 o->conj_sym);
        return 1;
    }
    if (o->conj_sym == 1 && (o->d_state / o->blocks) % 2 != 0) {
        snprintf(err, size,
                 "--d-state %d: conjugate symmetry stores one of each conjugate pair, so the "
                 "state size per block (%d / --ssm-blocks %d = %d) must be even; use an even "
                 "size or --no-conj-sym",
                 o->d_state, o->d_state, o->blocks, o->d_state / o->blocks);
        return 1;
    }
    if ((o->bilinear | o->clip_eigs | o->glu) & ~1) {
        snprintf(err, size, "bilinear %d, clip_eigs %d, glu %d: each must be 0 or 1",
                 o->bilinear, o->clip_eigs, o->glu);
        return 1;
    }
    return 0;
}

static int s5_modes(const LayerOpts *o) { return o->conj_sym == 1 ? o->d_state / 2 : o->d_state; }

static int s5_state_width(const Layer *l, int s) {
    (void)s;
    return 2 * s5_modes(&l->opt);
}

static int add(Params *p, const char *prefix, const char *name, int rows, int cols, int group) {
    int i = layer_param_add(p, prefix, name, rows, cols);
    p->tensors[i].group = group;
    return i;
}

static void s5_declare(Layer *l, Params *p, const char *prefix, const char *suffix) {
    (void)suffix;
    S5 *m = rt_calloc(1, sizeof *m, "s5 layer");
    l->impl = m;
    int H = l->H, P = s5_modes(&l->opt);
    const int base = PARAM_GROUP_BASE, ssm = PARAM_GROUP_SSM;
    m->P = P;
    m->enc = l->D != H;
    m->glu = l->opt.glu;
    m->fac = l->opt.conj_sym == 1 ? 2.0 : 1.0;
    m->p_enc_w = m->p_enc_b = m->p_o2_w = m->p_o2_b = -1;
    if (m->enc) {
        m->p_enc_w = add(p, prefix, "encoder.weight", H, l->D, base);
        m->p_enc_b = add(p, prefix, "encoder.bias", H, 0, base);
    }
    m->p_norm_w = add(p, prefix, "norm.weight", H, 0, base);
    m->p_norm_b = add(p, prefix, "norm.bias", H, 0, base);
    m->p_lre = add(p, prefix, "seq.Lambda_re", P, 0, ssm);
    m->p_lim = add(p, prefix, "seq.Lambda_im", P, 0, ssm);
    m->p_b = add(p, prefix, "seq.B", P, 2 * H, ssm);
    m->p_c = add(p, prefix, "seq.C", H, 2 * P, base);
    m->p_d = add(p, prefix, "seq.D", H, 0, base);
    m->p_step = add(p, prefix, "seq.log_step", P, 1, ssm);
    int last = m->p_step;
    if (m->glu) {
        m->p_o2_w = add(p, prefix, "out2.weight", H, H, base);
        m->p_o2_b = last = add(p, prefix, "out2.bias", H, 0, base);
    }
    l->param_first = m->enc ? m->p_enc_w : m->p_norm_w;
    l->param_count = last - l->param_first + 1;
}

static void s5_alloc(Layer *l, const Params *p) {
    S5 *m = s5_of(l);
    int H = l->H, P = m->P, B = l->B;
#define VIEW(field, idx)                                                                       \
    do {                                                                                       \
        m->field = (idx) >= 0 ? params_value(p, idx) : NULL;                                   \
        m->g_##field = (idx) >= 0 ? params_grad(p, idx) : NULL;                                \
    } while (0)
    VIEW(enc_w, m->p_enc_w);
    VIEW(enc_b, m->p_enc_b);
    VIEW(norm_w, m->p_norm_w);
    VIEW(norm_b, m->p_norm_b);
    VIEW(lre, m->p_lre);
    VIEW(lim, m->p_lim);
    VIEW(o2_w, m->p_o2_w);
    VIEW(o2_b, m->p_o2_b);
#undef VIEW
    m->bp = params_value(p, m->p_b);
    m->g_b = params_grad(p, m->p_b);
    m->cp = params_value(p, m->p_c);
    m->g_c = params_grad(p, m->p_c);
    m->dd = params_value(p, m->p_d);
    m->g_d = params_grad(p, m->p_d);
    m->log_step = params_value(p, m->p_step);
    m->g_step = params_grad(p, m->p_step);
    size_t rows = (size_t)l->Tmax * B, RH = rows * H, RP = rows * 2 * P;
    m->lbar = rt_alloc_floats((size_t)2 * P, "s5 Lambda_bar");
    m->coef = s5_alloc_doubles((size_t)2 * P, "s5 B_bar factors");
    m->bbar = rt_alloc_floats((size_t)2 * P * H, "s5 B_bar");
    m->cmat = rt_alloc_floats((size_t)2 * P * H, "s5 C");
    if (m->enc) m->r = rt_alloc_floats(RH, "s5 encoder output");
    m->un = rt_alloc_floats(RH, "s5 normed input");
    m->mean = rt_alloc_floats(rows, "s5 norm means");
    m->rinv = rt_alloc_floats(rows, "s5 norm roots");
    m->xs = rt_alloc_floats(RP, "s5 states");
    m->x0 = rt_alloc_floats((size_t)B * 2 * P, "s5 initial state");
    m->ys = rt_alloc_floats(RH, "s5 ssm outputs");
    m->g = rt_alloc_floats(RH, "s5 gelu outputs");
    if (m->glu) {
        m->sg = rt_alloc_floats(RH, "s5 glu gates");
        m->da = rt_alloc_floats(RH, "s5 glu gradient");
    }
    m->dres = rt_alloc_floats(RH, "s5 output gradient");
    m->dg = rt_alloc_floats(RH, "s5 activation gradient");
    m->dxs = rt_alloc_floats(RP, "s5 state gradient");
    m->dun = rt_alloc_floats(RH, "s5 normed gradient");
    m->carry = rt_alloc_floats((size_t)B * 2 * P, "s5 carried gradient");
    m->dl = s5_alloc_doubles((size_t)2 * P, "s5 Lambda_bar gradient");
    m->dbbar = rt_alloc_floats((size_t)2 * P * H, "s5 B_bar gradient");
    m->dcmat = rt_alloc_floats((size_t)2 * P * H, "s5 C gradient");
    l->y = rt_alloc_floats(RH, "s5 output");
}

static void s5_free(Layer *l) {
    S5 *m = s5_of(l);
    if (!m) return;
    void *bufs[] = {m->lbar, m->coef, m->bbar, m->cmat, m->r,     m->un,    m->mean,
                    m->rinv, m->xs,   m->x0,   m->ys,   m->g,     m->sg,    m->dres,
                    m->dg,   m->da,   m->dxs,  m->dun,  m->carry, m->dl,    m->dbbar,
                    m->dcmat, l->y};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(m);
    l->impl = NULL;
    l->y = NULL;
}

/* ---- initialisation ------------------------------------------------------------------ */

/* JAX's lecun_normal: a normal truncated at +-2 standard deviations, scaled so that the
 * variance is 1/fan_in. */
static double lecun_normal(Rng *rng, int fan_in) {
    double z;
    do z = rng_normal(rng);
    while (fabs(z) > 2.0);
    return z / 0.87962566103423978 / sqrt((double)fan_in);
}

/* The S5 reference's init: Lambda the HiPPO-N eigenvalues of blocks of size Pb = d_state /
 * blocks (-1/2 + i w; with conjugate symmetry the Pb/2 with w < 0), V block-diagonal with
 * the block's eigenvectors; B = V^-1 B0 = V^H B0, B0 (d_state,H) and C = C0 V, C0
 * (H,d_state) complex, lecun-normal with fan-in d_state (the reference's shapes); D N(0,1);
 * log_step U(ln 1e-3, ln 1e-1); LayerNorm 1, 0; encoder and out2 PyTorch's Linear. */
static void s5_init_weights(Layer *l, const LayerInit *init) {
    S5 *m = s5_of(l);
    int H = l->H, P = m->P, Pf = l->opt.d_state, J = l->opt.blocks, Pb = Pf / J,
        Pk = l->opt.conj_sym == 1 ? Pb / 2 : Pb; /* stored modes per block */
    TorchRng *g = init->torch;
    Rng *rng = init->rng;
    REQUIRE(g && rng && Pk * J == P);
    if (m->enc) layer_init_linear(g, (float *)m->enc_w, (float *)m->enc_b, H, l->D);
    for (int h = 0; h < H; h++) {
        ((float *)m->norm_w)[h] = 1.0f;
        ((float *)m->norm_b)[h] = 0.0f;
    }
    double *w = s5_alloc_doubles((size_t)Pb, "hippo eigenvalues");
    double complex *V = rt_calloc((size_t)Pb * Pb, sizeof *V, "hippo eigenvectors");
    int info = s5_hippo_n(Pb, w, V);
    if (info != 0) rt_die(3, "s5: LAPACK zheev failed (info %d) on the HiPPO-N block of size %d", info, Pb);
    for (int j = 0; j < J; j++)
        for (int i = 0; i < Pk; i++) {
            ((float *)m->lre)[j * Pk + i] = -0.5f;
            ((float *)m->lim)[j * Pk + i] = (float)w[i];
        }
    /* B = V^H B0, block by block */
    double *b0 = s5_alloc_doubles((size_t)Pf * H, "s5 B0");
    for (size_t i = 0; i < (size_t)Pf * H; i++) b0[i] = lecun_normal(rng, Pf);
    float *bp = (float *)m->bp;
    for (int j = 0; j < J; j++)
        for (int i = 0; i < Pk; i++)
            for (int h = 0; h < H; h++) {
                double complex s = 0.0;
                for (int k = 0; k < Pb; k++)
                    s += conj(V[k + (size_t)i * Pb]) * b0[(size_t)(j * Pb + k) * H + h];
                size_t o = (size_t)(j * Pk + i) * 2 * H + 2 * (size_t)h;
                bp[o] = (float)creal(s);
                bp[o + 1] = (float)cimag(s);
            }
    free(b0);
    /* C = C0 V */
    double complex *c0 = rt_calloc((size_t)H * Pf, sizeof *c0, "s5 C0");
    for (size_t i = 0; i < (size_t)H * Pf; i++) {
        double re = lecun_normal(rng, Pf);
        c0[i] = re + I * lecun_normal(rng, Pf);
    }
    float *cp = (float *)m->cp;
    for (int h = 0; h < H; h++)
        for (int j = 0; j < J; j++)
            for (int i = 0; i < Pk; i++) {
                double complex s = 0.0;
                for (int k = 0; k < Pb; k++) s += c0[(size_t)h * Pf + j * Pb + k] * V[k + (size_t)i * Pb];
                size_t o = (size_t)h * 2 * P + 2 * (size_t)(j * Pk + i);
                cp[o] = (float)creal(s);
                cp[o + 1] = (float)cimag(s);
            }
    free(c0);
    free(V);
    free(w);
    for (int h = 0; h < H; h++) ((float *)m->dd)[h] = (float)rng_normal(rng);
    double lo = log(init->dt_min > 0.0 ? init->dt_min : 1e-3),
           hi = log(init->dt_max > 0.0 ? init->dt_max : 1e-1);
    for (int p = 0; p < P; p++)
        ((float *)m->log_step)[p] = (float)(lo + rng_uniform(rng) * (hi - lo));
    if (m->glu) layer_init_linear(g, (float *)m->o2_w, (float *)m->o2_b, H, H);
}

static double s5_flops_per_token(const Layer *l) {
    const S5 *m = s5_of(l);
    double H = l->H, P = m->P;
    double gemm = 2.0 * H * 2 * P * 2 + (m->glu ? 2.0 * H * H : 0.0) + (m->enc ? 2.0 * l->D * H : 0.0);
    return gemm + 8.0 * P; /* the complex multiply-add per mode */
}

/* ---- discretisation ------------------------------------------------------------------ */

static double complex expm1c(double complex z) {
    double x = creal(z), y = cimag(z), s = sin(0.5 * y);
    return (expm1(x) * cos(y) - 2.0 * s * s) + I * (exp(x) * sin(y));
}

/* expm1(z)/z, 1 at 0 */
static double complex expm1c_over(double complex z) {
    if (cabs(z) < 1e-5) return 1.0 + z * (0.5 + z / 6.0);
    return expm1c(z) / z;
}

static double complex s5_lambda(const S5 *m, const LayerOpts *o, int p) {
    double re = m->lre[p];
    if (o->clip_eigs && re > S5_CLIP_RE) re = S5_CLIP_RE;
    return re + I * (double)m->lim[p];
}

/* lbar, coef, bbar and cmat from the parameters. */
static void s5_discretise(Layer *l) {
    S5 *m = s5_of(l);
    int H = l->H, P = m->P;
    for (int p = 0; p < P; p++) {
        double complex lam = s5_lambda(m, &l->opt, p), lb, c;
        double step = exp((double)m->log_step[p]);
        double complex z = lam * step;
        if (!l->opt.bilinear) {
            lb = cexp(z);
            c = step * expm1c_over(z);
        } else {
            double complex w = 1.0 - 0.5 * z;
            lb = (1.0 + 0.5 * z) / w;
            c = step / w;
        }
        m->lbar[p] = (float)creal(lb);
        m->lbar[P + p] = (float)cimag(lb);
        m->coef[p] = creal(c);
        m->coef[P + p] = cimag(c);
        const float *bp = m->bp + (size_t)p * 2 * H;
        float *br = m->bbar + (size_t)p * H, *bi = m->bbar + (size_t)(P + p) * H;
        for (int h = 0; h < H; h++) {
            double re = bp[2 * h], im = bp[2 * h + 1];
            br[h] = (float)(creal(c) * re - cimag(c) * im);
            bi[h] = (float)(creal(c) * im + cimag(c) * re);
        }
    }
    for (int h = 0; h < H; h++) {
        const float *cp = m->cp + (size_t)h * 2 * P;
        float *row = m->cmat + (size_t)h * 2 * P;
        for (int p = 0; p < P; p++) {
            row[p] = (float)(m->fac * cp[2 * p]);
            row[P + p] = (float)(-m->fac * cp[2 * p + 1]);
        }
    }
}

/* The discretisation's backward: from dLoss/dLbar (m->dl) and dLoss/dBbar (m->dbbar) to
 * the gradients of Lambda_re, Lambda_im, log_step and B. For a holomorphic w(Lambda) and
 * a real loss, dLoss/dLambda (as re + i im) = conj(dw/dLambda) dLoss/dw. */
static void s5_discretise_backward(Layer *l) {
    S5 *m = s5_of(l);
    int H = l->H, P = m->P;
    for (int p = 0; p < P; p++) {
        const float *bp = m->bp + (size_t)p * 2 * H;
        const float *dbr = m->dbbar + (size_t)p * H, *dbi = m->dbbar + (size_t)(P + p) * H;
        float *gb = m->g_b + (size_t)p * 2 * H;
        double cr = m->coef[p], ci = m->coef[P + p], gcr = 0.0, gci = 0.0;
        for (int h = 0; h < H; h++) {
            double re = bp[2 * h], im = bp[2 * h + 1], dr = dbr[h], di = dbi[h];
            gb[2 * h] += (float)(cr * dr + ci * di);
            gb[2 * h + 1] += (float)(-ci * dr + cr * di);
            gcr += dr * re + di * im;
            gci += -dr * im + di * re;
        }
        double complex gl = m->dl[p] + I * m->dl[P + p], gc = gcr + I * gci;
        double complex lam = s5_lambda(m, &l->opt, p);
        double step = exp((double)m->log_step[p]);
        double complex z = lam * step, dlb_dlam, dlb_dstep, dc_dlam, dc_dstep;
        if (!l->opt.bilinear) {
            double complex e = cexp(z), f = expm1c_over(z), fp; /* f' = (e^z - f)/z */
            if (cabs(z) < 1e-5) fp = 0.5 + z / 3.0;
            else fp = (e - f) / z;
            dlb_dlam = step * e;
            dlb_dstep = lam * e;
            dc_dlam = step * step * fp;
            dc_dstep = e;
        } else {
            double complex w = 1.0 - 0.5 * z, w2 = w * w;
            dlb_dlam = step / w2;
            dlb_dstep = lam / w2;
            dc_dlam = 0.5 * step * step / w2;
            dc_dstep = 1.0 / w2;
        }
        double complex glam = conj(dlb_dlam) * gl + conj(dc_dlam) * gc;
        double gstep = creal(conj(dlb_dstep) * gl + conj(dc_dstep) * gc);
        int clipped = l->opt.clip_eigs && m->lre[p] > S5_CLIP_RE;
        if (!clipped) m->g_lre[p] += (float)creal(glam);
        m->g_lim[p] += (float)cimag(glam);
        m->g_step[p] += (float)(gstep * step);
    }
}

/* ---- elementwise kernels ------------------------------------------------------------- */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* g = gelu_tanh(y) = y (1 + tanh(k (y + 0.044715 y^3)))/2 = y sigmoid(2 k (y + 0.044715 y^3));
 * out = r + g if out != NULL (the residual, without the GLU). */
RT_SIMD_CLONES
static void gelu_forward(float *restrict g, float *restrict out, const float *restrict r,
                         const float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = y[i];
        g[i] = v * activ_sigmoidf(2.0f * GELU_K * (v + 0.044715f * v * v * v));
    }
    if (out)
        for (size_t i = 0; i < n; i++) out[i] = r[i] + g[i];
}

/* ys (rows,H) = D un, the feed-through, before the C GEMM adds to it */
RT_SIMD_CLONES
static void feedthrough_forward(float *restrict ys, const float *restrict dd,
                                const float *restrict un, int rows, int H) {
    for (int i = 0; i < rows; i++)
        for (int h = 0; h < H; h++) ys[(size_t)i * H + h] = dd[h] * un[(size_t)i * H + h];
}

/* gd (H) += sum over rows of dys un; dun = D dys */
RT_SIMD_CLONES
static void feedthrough_backward(float *restrict gd, float *restrict dun,
                                 const float *restrict dys, const float *restrict un,
                                 const float *restrict dd, int rows, int H) {
    for (int i = 0; i < rows; i++)
        for (int h = 0; h < H; h++) {
            size_t o = (size_t)i * H + h;
            gd[h] += dys[o] * un[o];
            dun[o] = dd[h] * dys[o];
        }
}

/* dy = dg gelu'(y) (dy may be dg) */
RT_SIMD_CLONES
static void gelu_backward(float *dy, const float *dg, const float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = y[i], s = activ_sigmoidf(2.0f * GELU_K * (v + 0.044715f * v * v * v));
        dy[i] = dg[i] * (s + v * s * (1.0f - s) * 2.0f * GELU_K * (1.0f + 3.0f * 0.044715f * v * v));
    }
}

/* the GLU and the residual: sg = sigmoid(sg) in place, out = r + g sg */
RT_SIMD_CLONES
static void glu_forward(float *restrict out, float *restrict sg, const float *restrict r,
                        const float *restrict g, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = activ_sigmoidf(sg[i]);
        sg[i] = s;
        out[i] = r[i] + g[i] * s;
    }
}

/* from dout: dg = dout sg (the direct path), da = dout g sg (1 - sg) */
RT_SIMD_CLONES
static void glu_backward(float *restrict dg, float *restrict da, const float *restrict dout,
                         const float *restrict g, const float *restrict sg, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = sg[i];
        dg[i] = dout[i] * s;
        da[i] = dout[i] * g[i] * s * (1.0f - s);
    }
}

/* One step of the recurrence for one stream, in place: x = lbar prev + x (x holds Bu). */
RT_SIMD_CLONES
static void s5_step_row(float *restrict x, const float *restrict prev, const float *restrict lbar,
                        int P) {
    const float *lr = lbar, *li = lbar + P;
    const float *pr = prev, *pi = prev + P;
    float *xr = x, *xi = x + P;
    for (int p = 0; p < P; p++) {
        float a = lr[p], b = li[p], u = pr[p], v = pi[p];
        xr[p] += a * u - b * v;
        xi[p] += a * v + b * u;
    }
}

#define S5_MODE_CHUNK 64 /* modes per piece of the reverse recurrence (--threads) */

/* One reverse step for one stream, modes [0, n) of the row (real parts at [0, n), imaginary
 * at [P, P + n)): g = dx + carry is dLoss/dx_t (left in dx: it is also dLoss/dBu_t); dl +=
 * dLoss/dLbar through prev = x_{t-1}; carry = conj(Lbar) g. */
RT_SIMD_CLONES
static void s5_back_row(float *restrict dx, float *restrict carry, double *restrict dl,
                        const float *restrict prev, const float *restrict lbar, int P, int n) {
    const float *lr = lbar, *li = lbar + P, *pr = prev, *pi = prev + P;
    for (int p = 0; p < n; p++) {
        float gr = dx[p] + carry[p], gi = dx[P + p] + carry[P + p];
        dx[p] = gr;
        dx[P + p] = gi;
        dl[p] += (double)(gr * pr[p] + gi * pi[p]);
        dl[P + p] += (double)(gi * pr[p] - gr * pi[p]);
        carry[p] = lr[p] * gr + li[p] * gi;
        carry[P + p] = lr[p] * gi - li[p] * gr;
    }
}

/* ---- forward ----------------------------------------------------------------------- */

static void s5_forward(Layer *l, float *const *state, const float *x, int T, float *ws) {
    (void)ws;
    S5 *m = s5_of(l);
    int H = l->H, P = m->P, B = l->B, rows = T * B;
    size_t P2 = (size_t)2 * P, RH = (size_t)rows * H;
    REQUIRE(T >= 1 && T <= l->Tmax);
    m->T_last = T;
    const float *r = x;
    if (m->enc) {
        layer_encoder_forward(m->r, x, m->enc_w, m->enc_b, rows, H, l->D);
        r = m->r;
    }
    norm_layer_forward(m->un, m->mean, m->rinv, r, m->norm_w, m->norm_b, rows, H);
    s5_discretise(l);
    /* Bu for every row, then the recurrence in place over it */
    la_matmul_nt(m->xs, m->un, m->bbar, rows, (int)P2, H, 0.0f);
    memcpy(m->x0, state[0], (size_t)B * P2 * sizeof(float));
    /* --threads: the streams are shared out */
#pragma omp parallel for schedule(static) if (B > 1 && omp_get_max_threads() > 1)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *row = m->xs + ((size_t)t * B + b) * P2;
            const float *prev = t ? row - (size_t)B * P2 : m->x0 + (size_t)b * P2;
            s5_step_row(row, prev, m->lbar, P);
        }
    memcpy(state[0], m->xs + (size_t)(T - 1) * B * P2, (size_t)B * P2 * sizeof(float));
    /* ys = D un + xs Cmat^T; the activation; the residual */
    feedthrough_forward(m->ys, m->dd, m->un, rows, H);
    la_matmul_nt(m->ys, m->xs, m->cmat, rows, H, (int)P2, 1.0f);
    gelu_forward(m->g, m->glu ? NULL : l->y, r, m->ys, RH);
    if (m->glu) { /* y = r + g sigmoid(g W2^T + b2) */
        for (int i = 0; i < rows; i++) memcpy(m->sg + (size_t)i * H, m->o2_b, (size_t)H * sizeof(float));
        la_matmul_nt(m->sg, m->g, m->o2_w, rows, H, H, 1.0f);
        glu_forward(l->y, m->sg, r, m->g, RH);
    }
}

static void s5_step(Layer *l, float *const *state, const float *x, float *ws) {
    s5_forward(l, state, x, 1, ws);
}

/* ---- backward ---------------------------------------------------------------------- */

static void s5_backward(Layer *l, const float *dy, float *const *dstate0, int T, float *ws,
                        const LayerHooks *hooks) {
    (void)ws;
    S5 *m = s5_of(l);
    int H = l->H, P = m->P, B = l->B, rows = T * B;
    size_t P2 = (size_t)2 * P, RH = (size_t)rows * H;
    REQUIRE(T == m->T_last);
    memcpy(m->dres, dy, RH * sizeof(float));
    /* the activation: dg = dLoss/dg, then dys in its place */
    if (m->glu) {
        glu_backward(m->dg, m->da, dy, m->g, m->sg, RH);
        la_matmul_tn(m->g_o2_w, m->da, m->g, H, H, rows, 1.0f);
        la_colsum_add(m->g_o2_b, m->da, rows, H);
        la_matmul_nn(m->dg, m->da, m->o2_w, rows, H, H, 1.0f);
        gelu_backward(m->dg, m->dg, m->ys, RH);
    } else {
        gelu_backward(m->dg, dy, m->ys, RH);
    }
    const float *dys = m->dg;
    layer_progress(hooks, 0);
    /* ys = D un + xs Cmat^T */
    la_matmul_tn(m->dcmat, dys, m->xs, H, (int)P2, rows, 0.0f);
    for (int h = 0; h < H; h++) {
        float *gc = m->g_c + (size_t)h * P2;
        const float *dc = m->dcmat + (size_t)h * P2;
        for (int p = 0; p < P; p++) {
            gc[2 * p] += (float)(m->fac * dc[p]);
            gc[2 * p + 1] += (float)(-m->fac * dc[P + p]);
        }
    }
    feedthrough_backward(m->g_d, m->dun, dys, m->un, m->dd, rows, H);
    la_matmul_nn(m->dxs, dys, m->cmat, rows, (int)P2, H, 0.0f);
    /* the reverse recurrence */
    memset(m->carry, 0, (size_t)B * P2 * sizeof(float));
    memset(m->dl, 0, P2 * sizeof(double));
    /* --threads: the modes in chunks of S5_MODE_CHUNK shared out (dl sums over streams and
     * steps: each mode's sum stays in one thread, in the order of one thread) */
    int nchunk = (P + S5_MODE_CHUNK - 1) / S5_MODE_CHUNK;
#pragma omp parallel for schedule(static) if (nchunk > 1 && omp_get_max_threads() > 1)
    for (int ck = 0; ck < nchunk; ck++) {
        int p0 = ck * S5_MODE_CHUNK, n = P - p0 < S5_MODE_CHUNK ? P - p0 : S5_MODE_CHUNK;
        for (int t = T - 1; t >= 0; t--) {
            for (int b = 0; b < B; b++) {
                size_t o = ((size_t)t * B + b) * P2;
                const float *prev = t ? m->xs + o - (size_t)B * P2 : m->x0 + (size_t)b * P2;
                s5_back_row(m->dxs + o + p0, m->carry + (size_t)b * P2 + p0, m->dl + p0,
                            prev + p0, m->lbar + p0, P, n);
            }
            if (omp_get_thread_num() == 0) layer_progress(hooks, t); /* MPI: the main thread */
        }
    }
    if (dstate0) memcpy(dstate0[0], m->carry, (size_t)B * P2 * sizeof(float));
    /* Bu = un Bbar^T */
    la_matmul_tn(m->dbbar, m->dxs, m->un, (int)P2, H, rows, 0.0f);
    la_matmul_nn(m->dun, m->dxs, m->bbar, rows, H, (int)P2, 1.0f);
    s5_discretise_backward(l);
    if (m->enc) /* r is ours: the norm's backward now, dres += dLoss/dr through the norm */
        norm_layer_backward(m->dres, m->g_norm_w, m->g_norm_b, m->dun, m->r, m->norm_w, m->mean,
                            m->rinv, rows, H, 1);
}

static void s5_backward_input(Layer *l, const float *x, float *dx, int T) {
    S5 *m = s5_of(l);
    int H = l->H, rows = T * l->B;
    REQUIRE(T == m->T_last);
    if (m->enc) {
        layer_encoder_backward(m->g_enc_w, m->g_enc_b, dx, m->dres, x, m->enc_w, rows, H, l->D);
        return;
    }
    norm_layer_backward(m->dres, m->g_norm_w, m->g_norm_b, m->dun, x, m->norm_w, m->mean, m->rinv,
                        rows, H, 1);
    if (dx) memcpy(dx, m->dres, (size_t)rows * H * sizeof(float));
}

const LayerKind layer_s5 = {
    .name = "s5",
    .stacked_module = 0,
    .resolve_opts = s5_resolve_opts,
    .check_opts = s5_check_opts,
    .nstates = 1,
    .state_names = {"x"},
    .state_width = s5_state_width,
    .declare = s5_declare,
    .alloc = s5_alloc,
    .free = s5_free,
    .workspace_floats = layer_no_workspace,
    .init_weights = s5_init_weights,
    .forward = s5_forward,
    .backward = s5_backward,
    .backward_input = s5_backward_input,
    .input_grad_grouped = NULL,
    .step = s5_step,
    .flops_per_token = s5_flops_per_token,
};
