/* ademamix.c — AdEMAMix (Pagliardini, Ablin & Grangier, 2024, "The AdEMAMix Optimizer: Better, Faster, Older",
 * Algorithm 1): Adam plus a slow EMA of the gradient, in pytorch-optimizer 4.1's order of operations
 * (pytorch_optimizer/optimizer/ademamix.py, AdEMAMix, its per-parameter loop); instantiated by fo_instantiate.h.
 *
 *   g  = -grad if maximize else grad                          grad          IN
 *   g  = g + wd * p             (weight_decouple off, wd > 0) param         INOUT
 *   p  = p * (1 - wd * lr)      (weight_decouple on; wd alone if fixed_decay)
 *   m1 = lerp(m1, g, 1 - beta1)                               exp_avg       INOUT
 *   v  = v * beta2 + ((1 - beta2) * g) * g                    exp_avg_sq    INOUT
 *   m2 = lerp(m2, g, 1 - beta3_t)                             exp_avg_slow  INOUT
 *   u  = m1 / bc1 + alpha_t * m2            (one fma)         bc1 = 1 - beta1^t, alpha_t, beta3_t: per tensor
 *   p  = p + (-lr * u) / (sqrt(v) / bc2_sqrt + eps)
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* AdEMAMix: 2 exp_avg, 3 exp_avg_sq, 4 exp_avg_slow; scalars 0 bias_correction1 = 1 - beta1^t,
 * 1 sqrt(1 - beta2^t), 2 alpha_t, 3 1 - beta3_t (the warm-up schedules, computed in Python) */
FO_KERNEL(ademamix, 5, 4, D(lr) D(beta1) D(beta2) D(eps) D(weight_decay) I(weight_decouple) I(fixed_decay) I(maximize))
#define FO_IMPL "ademamix.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(ademamix_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m,
                                    FO_T *FO_RESTRICT v, FO_T *FO_RESTRICT slow, const int64_t n, const FO_T wd,
                                    const FO_T decay, const FO_T w1, const FO_T b2, const FO_T w2, const FO_T w3,
                                    const FO_T bc1, const FO_T bc2s, const FO_T alpha, const FO_T eps,
                                    const FO_T neg_lr, const int maximize, const int l2, const int small_w1,
                                    const int small_w3)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_T pi = p[i];
        const FO_T gi = FO_GRAD(g[i], pi, wd, maximize, l2);
        pi = pi * decay; /* exactly 1 unless decoupled weight decay is on */
        const FO_T mi = FO_LERP(m[i], gi, w1, small_w1);
        const FO_T vi = FO_FMA(w2 * gi, gi, v[i] * b2);
        const FO_T si = FO_LERP(slow[i], gi, w3, small_w3);
        const FO_T u = FO_FMA(alpha, si, mi / bc1);
        const FO_T denom = FO_SQRT(vi) / bc2s + eps;
        m[i] = mi;
        v[i] = vi;
        slow[i] = si;
        p[i] = pi + (neg_lr * u) / denom;
    }
}

FO_RANGE(ademamix)
{
    const int l2 = h->weight_decay > 0 && !h->weight_decouple;
    const FO_T decay = (FO_T)((h->weight_decay != 0 && h->weight_decouple)
                                  ? 1 - h->weight_decay * (h->fixed_decay ? 1.0 : h->lr) : 1.0);
    const FO_T w1 = (FO_T)(1 - h->beta1), w3 = (FO_T)s[3];
    const int small_w1 = fo_small_weight(w1), small_w3 = fo_small_weight(w3);
    const FO_T wd = (FO_T)h->weight_decay, b2 = (FO_T)h->beta2, w2 = (FO_T)(1 - h->beta2);
    const FO_T bc1 = (FO_T)s[0], bc2s = (FO_T)s[1], alpha = (FO_T)s[2], eps = (FO_T)h->eps;
    const FO_T neg_lr = (FO_T)(-h->lr);
    /* Unswitch the common flag combinations so that each is its own vectorised loop. */
    if (small_w1 && small_w3 && !l2)
        FO_FN(ademamix_loop)(bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], n, wd, decay, w1, b2, w2, w3, bc1, bc2s,
                             alpha, eps, neg_lr, h->maximize, 0, 1, 1);
    else
        FO_FN(ademamix_loop)(bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], n, wd, decay, w1, b2, w2, w3, bc1, bc2s,
                             alpha, eps, neg_lr, h->maximize, l2, small_w1, small_w3);
}

FO_NEEDS_FIRST(ademamix, 5)

FO_ELEMENTWISE(ademamix)
#endif
