/* lars.c — LARS (You, Gitman & Ginsburg, 2017, "Large Batch Training of Convolutional Networks", Algorithm 1)
 * in pytorch-optimizer 4.1's variant and order of operations (pytorch_optimizer/optimizer/lars.py,
 * LARS._step_per_param: only tensors of more than one dimension are adapted and decayed); a reduce-then-update
 * kernel (fo_reduce.h).
 *
 * Pass 1 (adapted tensors only; reads only):  sums |p|^2, |g|^2   (in double, fixed lanes and order)
 * Per tensor:  P = |p|, G = |g|, D = G + wd * P,  trust = tc * P / D if P > 0 and D > 0, else 1
 * Pass 2, per element:
 *   g  = -grad if maximize else grad                                     grad             IN
 *   g  = (g + wd * p) * trust          (adapted tensors; one fma, then the product)   param  INOUT
 *   b  = b * momentum + (1 - dampening) * g      (momentum > 0; one fma)  momentum_buffer  INOUT (starts at 0)
 *   g  = g + momentum * b (nesterov; one fma)  or  g = b
 *   p  = p + (-lr) * g                 (one fma)
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* LARS (reduce then update): 2 momentum_buffer (NULL iff momentum == 0); scalars 0 1.0 if the tensor has more
 * than one dimension (only those are adapted, as pytorch-optimizer), else 0.0 */
FO_KERNEL(lars, 3, 1, D(lr) D(momentum) D(dampening) D(weight_decay) D(trust_coefficient) I(nesterov) I(adapt)
    I(maximize))
#define FO_IMPL "lars.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
#include "fo_reduce.h"

#define FO_LARS_ADAPTED(h, s) ((h)->adapt && (s)[0] != 0)

FO_REDUCE_RANGE(lars)
{
    (void)keep; /* nothing to keep: pass 2 reads its inputs again */
    if (!FO_LARS_ADAPTED(h, s))
        return;
    /* the two sums of squares (fo_sum.h's lanes; one pass reads both) */
    const FO_T *FO_RESTRICT p = bufs[0], *FO_RESTRICT g = bufs[1];
    double ps[FO_SUM_LANES] = {0.0}, gs[FO_SUM_LANES] = {0.0};
    FO_SUM_LOOP(n, i, k, {
        const double x = (double)p[i], y = (double)g[i];
        ps[k] += x * x;
        gs[k] += y * y;
    });
    acc[0] = fo_sum_fold(ps);
    acc[1] = fo_sum_fold(gs);
}

static inline void FO_FN(lars_combine)(const fo_lars_hyper *h, const double *s, const double *sums, double *out)
{
    const double pn = sqrt(sums[0]), gn = sqrt(sums[1]);
    const double den = gn + h->weight_decay * pn;
    out[0] = (pn > 0 && den > 0) ? h->trust_coefficient * pn / den : 1.0;
    out[1] = FO_LARS_ADAPTED(h, s) ? 1.0 : 0.0;
}

FO_INLINE void FO_FN(lars_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT b,
                                const int64_t n, const FO_T wd, const FO_T trust, const FO_T mom, const FO_T w,
                                const FO_T neg_lr, const int maximize, const int adapted, const int use_mom,
                                const int nesterov)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T pi = p[i];
        FO_T gi = maximize ? -g[i] : g[i];
        if (adapted)
            gi = FO_FMA(wd, pi, gi) * trust;
        if (use_mom) {
            const FO_T bi = FO_FMA(w, gi, b[i] * mom);
            b[i] = bi;
            gi = nesterov ? FO_FMA(mom, bi, gi) : bi;
        }
        p[i] = FO_FMA(neg_lr, gi, pi);
    }
}

FO_APPLY_RANGE(lars)
{
    (void)keep; /* nothing to keep: pass 2 reads its inputs again */
    const int adapted = r[1] != 0, use_mom = h->momentum > 0;
    const FO_T wd = (FO_T)h->weight_decay, trust = (FO_T)r[0], mom = (FO_T)h->momentum;
    const FO_T w = (FO_T)(1 - h->dampening), neg_lr = (FO_T)(-h->lr);
    FO_T *b = use_mom ? bufs[2] : NULL;
    if (use_mom) {
        if (adapted) FO_FN(lars_loop)(bufs[0], bufs[1], b, n, wd, trust, mom, w, neg_lr, h->maximize, 1, 1, h->nesterov);
        else         FO_FN(lars_loop)(bufs[0], bufs[1], b, n, wd, trust, mom, w, neg_lr, h->maximize, 0, 1, h->nesterov);
    } else {
        FO_FN(lars_loop)(bufs[0], bufs[1], b, n, wd, trust, mom, w, neg_lr, h->maximize, adapted, 0, 0);
    }
}

static inline int64_t FO_FN(lars_needs)(const fo_lars_hyper *h)
{
    return FO_FIRST(h->momentum > 0 ? 3 : 2);
}

FO_REDUCE_THEN_UPDATE(lars)
#endif
