/* adam.c — Adam and AdamW (Kingma & Ba, 2015; Loshchilov & Hutter, 2019), in torch's single-tensor order
 * (torch/optim/adam.py, _single_tensor_adam), instantiated for float and double by fo_instantiate.h.
 *
 *   g  = -grad if maximize else grad                          grad            IN
 *   g  = g + wd * p                 (L2 weight decay)         param           INOUT
 *   p  = p * (1 - lr * wd)          (decoupled weight decay)  exp_avg         INOUT
 *   m  = lerp(m, g, 1 - beta1)                                exp_avg_sq      INOUT
 *   v  = v * beta2 + ((1 - beta2) * g) * g                    max_exp_avg_sq  INOUT (amsgrad only)
 *   vh = max(vmax, v) -> vmax        (amsgrad; NaN wins, as torch.maximum)
 *   p  = p + (-step_size * m) / (sqrt(vh) / bc2_sqrt + eps)   step_size = lr / (1 - beta1^t): per tensor
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Adam / AdamW: 2 exp_avg, 3 exp_avg_sq, 4 max_exp_avg_sq (NULL unless amsgrad);
 * scalars 0 step_size = lr / (1 - beta1^t), 1 bias_correction2_sqrt = sqrt(1 - beta2^t) */
FO_KERNEL(adam, 5, 2, D(lr) D(beta1) D(beta2) D(eps) D(weight_decay) I(amsgrad) I(maximize) I(decoupled_weight_decay))
FO_KERNEL_STEP_SCALARS(adam)
#define FO_IMPL "adam.c"
#include "fo_instantiate.h"

/* The per-tensor scalars at step count t, in double as torch computes them in Python:
 *   0 step_size = lr / (1 - beta1^t),  1 bias_correction2_sqrt = (1 - beta2^t)^0.5
 * with pow() both times, as Python's float ** int and ** 0.5 call it (not sqrt), so the values are the same bits
 * whichever side computes them; fastopt/optim/adam.py's spec calls this function too. */
void fo_adam_step_scalars(const fo_adam_hyper *h, int64_t t, double *out)
{
    out[0] = h->lr / (1 - pow(h->beta1, (double)t));
    out[1] = pow(1 - pow(h->beta2, (double)t), 0.5);
}
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(adam_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m,
                                FO_T *FO_RESTRICT v, FO_T *FO_RESTRICT vmax, const int64_t n,
                                const FO_T wd, const FO_T decay, const FO_T w1, const FO_T b2, const FO_T w2,
                                const FO_T bc2s, const FO_T eps, const FO_T neg_step,
                                const int maximize, const int l2, const int amsgrad, const int small_w)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_T pi = p[i];
        FO_T gi = FO_GRAD(g[i], pi, wd, maximize, l2); /* -grad if maximize; + wd * p for L2 weight decay */
        pi = pi * decay; /* decay is exactly 1 unless decoupled weight decay is on: p * 1 == p for every p */
        const FO_T mi = FO_LERP(m[i], gi, w1, small_w);
        const FO_T vi = FO_FMA(w2 * gi, gi, v[i] * b2);
        FO_T vh = vi;
        if (amsgrad) {
            vh = FO_MAX_NAN(vmax[i], vi);
            vmax[i] = vh;
        }
        const FO_T denom = FO_SQRT(vh) / bc2s + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + (neg_step * mi) / denom;
    }
}

FO_RANGE(adam)
{
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *m = bufs[2];
    FO_T *v = bufs[3];
    FO_T *vmax = h->amsgrad ? bufs[4] : NULL;
    const int l2 = FO_L2(h);
    const FO_T decay = FO_DECOUPLED_DECAY(h);
    const FO_T w1 = (FO_T)(1 - h->beta1);
    const int small_w = fo_small_weight(w1);
    const FO_T wd = (FO_T)h->weight_decay, b2 = (FO_T)h->beta2, w2 = (FO_T)(1 - h->beta2);
    const FO_T bc2s = (FO_T)s[1], eps = (FO_T)h->eps, neg_step = (FO_T)(-s[0]);
    /* Unswitch the flags so that each combination is its own vectorised loop. */
    if (h->amsgrad) {
        if (l2) FO_FN(adam_loop)(p, g, m, v, vmax, n, wd, decay, w1, b2, w2, bc2s, eps, neg_step, h->maximize, 1, 1, small_w);
        else    FO_FN(adam_loop)(p, g, m, v, vmax, n, wd, decay, w1, b2, w2, bc2s, eps, neg_step, h->maximize, 0, 1, small_w);
    } else if (small_w) {
        if (l2) FO_FN(adam_loop)(p, g, m, v, vmax, n, wd, decay, w1, b2, w2, bc2s, eps, neg_step, h->maximize, 1, 0, 1);
        else    FO_FN(adam_loop)(p, g, m, v, vmax, n, wd, decay, w1, b2, w2, bc2s, eps, neg_step, h->maximize, 0, 0, 1);
    } else {
        FO_FN(adam_loop)(p, g, m, v, vmax, n, wd, decay, w1, b2, w2, bc2s, eps, neg_step, h->maximize, l2, 0, 0);
    }
}

static inline int64_t FO_FN(adam_needs)(const fo_adam_hyper *h)
{
    return FO_FIRST(h->amsgrad ? 5 : 4);
}

FO_ELEMENTWISE(adam)
#endif
