/* lamb.c — LAMB (You et al., 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
 * Algorithm 2) in pytorch-optimizer 4.1's variant and order of operations (pytorch_optimizer/optimizer/lamb.py,
 * Lamb.update: the first moment's bias correction in the step size only, none on v; the weight norm clamped to
 * [0, 10]); a reduce-then-update kernel (fo_reduce.h).
 *
 * Pass 1, per element, and the two sums of its tensor:
 *   g  = -grad if maximize else grad                              grad        IN
 *   m  = m * beta1 + c * g          c = 1 - beta1 if grad_averaging else 1 (one fma)   exp_avg     INOUT
 *   v  = v * beta2 + ((1 - beta2) * g) * g                                              exp_avg_sq  INOUT
 *   x  = p * (1 - wd * lr)          (weight_decouple, wd != 0; wd alone if fixed_decay)  param       INOUT
 *   u  = m / (sqrt(v) + eps) + wd * x     (the decay term only without weight_decouple, wd > 0; one fma)
 *   sums: |x|^2, |u|^2    (in double, fixed lanes and order)
 * Per tensor:  w = min(|x|, 10), a = |u|,  trust = 1 if w == 0 or a == 0 (or adam) else w / (a + eps)
 * Pass 2, per element (u as pass 1 kept it in the driver's scratch for a small tensor, fo_reduce.h, else recomputed
 * from the new m, v: the same operations, the same bits):
 *   p  = x + (-step_size * trust) * u      (one fma; step_size = lr / (1 - beta1^t), or lr under adam_debias)
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* LAMB (reduce then update, fo_reduce.h): 2 exp_avg, 3 exp_avg_sq; scalars 0 step_size = lr / (1 - beta1^t)
 * (lr under adam_debias) */
FO_KERNEL(lamb, 4, 1, D(lr) D(beta1) D(beta2) D(eps) D(weight_decay) I(weight_decouple) I(fixed_decay)
    I(grad_averaging) I(adam) I(maximize))
#define FO_IMPL "lamb.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
#include "fo_reduce.h"

/* The decoupled factor applied to p (exactly 1 when off: p * 1 == p). */
#define FO_LAMB_DECAY(h) \
    ((FO_T)(((h)->weight_decay != 0 && (h)->weight_decouple) ? 1 - (h)->weight_decay * ((h)->fixed_decay ? 1.0 : (h)->lr) : 1.0))
#define FO_LAMB_L2(h) ((h)->weight_decay > 0 && !(h)->weight_decouple)

/* Pass 1 over one work item, element i into lane i % FO_SUM_LANES of both sums (fo_sum.h); u into keep[i] if
 * kept. */
FO_INLINE void FO_FN(lamb_reduce_loop)(FO_T *const *bufs, const int64_t n, const FO_T decay, const FO_T wd,
                                       const FO_T eps, const FO_T b1, const FO_T c, const FO_T b2, const FO_T w2,
                                       const int l2, const int maximize, double *acc, FO_T *FO_RESTRICT keep,
                                       const int kept)
{
    FO_T *FO_RESTRICT p = bufs[0], *FO_RESTRICT m = bufs[2], *FO_RESTRICT v = bufs[3];
    const FO_T *FO_RESTRICT g = bufs[1];
    double xs[FO_SUM_LANES] = {0.0}, us[FO_SUM_LANES] = {0.0};
    FO_SUM_LOOP(n, i, k, {
        const FO_T gi = maximize ? -g[i] : g[i];
        const FO_T mi = FO_FMA(c, gi, m[i] * b1);
        const FO_T vi = FO_FMA(w2 * gi, gi, v[i] * b2);
        const FO_T x = p[i] * decay;
        FO_T u = mi / (FO_SQRT(vi) + eps);
        if (l2)
            u = FO_FMA(wd, x, u);
        m[i] = mi;
        v[i] = vi;
        if (kept)
            keep[i] = u;
        xs[k] += (double)x * (double)x;
        us[k] += (double)u * (double)u;
    });
    acc[0] = fo_sum_fold(xs);
    acc[1] = fo_sum_fold(us);
}

FO_REDUCE_RANGE(lamb)
{
    (void)s;
    const FO_T decay = FO_LAMB_DECAY(h), wd = (FO_T)h->weight_decay, eps = (FO_T)h->eps;
    const FO_T b1 = (FO_T)h->beta1, c = (FO_T)(h->grad_averaging ? 1 - h->beta1 : 1.0);
    const FO_T b2 = (FO_T)h->beta2, w2 = (FO_T)(1 - h->beta2);
    /* Unswitch the flags so that each combination is its own vectorised loop. */
#define FO_LAMB_REDUCE_(l2, mx) \
    (keep != NULL ? FO_FN(lamb_reduce_loop)(bufs, n, decay, wd, eps, b1, c, b2, w2, l2, mx, acc, keep, 1) \
                  : FO_FN(lamb_reduce_loop)(bufs, n, decay, wd, eps, b1, c, b2, w2, l2, mx, acc, keep, 0))
    if (FO_LAMB_L2(h)) {
        if (h->maximize) FO_LAMB_REDUCE_(1, 1);
        else             FO_LAMB_REDUCE_(1, 0);
    } else {
        if (h->maximize) FO_LAMB_REDUCE_(0, 1);
        else             FO_LAMB_REDUCE_(0, 0);
    }
#undef FO_LAMB_REDUCE_
}

static inline void FO_FN(lamb_combine)(const fo_lamb_hyper *h, const double *s, const double *sums, double *out)
{
    double w = sqrt(sums[0]);
    if (w > 10.0)
        w = 10.0; /* pytorch-optimizer's Lamb.clamp */
    const double a = sqrt(sums[1]);
    const double trust = (h->adam || w == 0 || a == 0) ? 1.0 : w / (a + h->eps);
    out[0] = -s[0] * trust;
}

FO_INLINE void FO_FN(lamb_apply_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT m, const FO_T *FO_RESTRICT v,
                                      const int64_t n, const FO_T decay, const FO_T wd, const FO_T eps,
                                      const FO_T coef, const int l2)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T x = p[i] * decay;
        FO_T u = m[i] / (FO_SQRT(v[i]) + eps);
        if (l2)
            u = FO_FMA(wd, x, u);
        p[i] = FO_FMA(coef, u, x);
    }
}

/* Pass 2 with u as pass 1 kept it. */
FO_INLINE void FO_FN(lamb_apply_kept)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT u, const int64_t n,
                                      const FO_T decay, const FO_T coef)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
        p[i] = FO_FMA(coef, u[i], p[i] * decay);
}

FO_APPLY_RANGE(lamb)
{
    (void)s;
    const FO_T decay = FO_LAMB_DECAY(h), wd = (FO_T)h->weight_decay, eps = (FO_T)h->eps, coef = (FO_T)r[0];
    if (keep != NULL)
        FO_FN(lamb_apply_kept)(bufs[0], keep, n, decay, coef);
    else if (FO_LAMB_L2(h))
        FO_FN(lamb_apply_loop)(bufs[0], bufs[2], bufs[3], n, decay, wd, eps, coef, 1);
    else
        FO_FN(lamb_apply_loop)(bufs[0], bufs[2], bufs[3], n, decay, wd, eps, coef, 0);
}

FO_NEEDS_FIRST(lamb, 4)

FO_REDUCE_THEN_UPDATE(lamb)
#endif
