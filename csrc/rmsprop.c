/* rmsprop.c — RMSprop (Hinton, lecture 6e; centered form of Graves, 2013), in torch's single-tensor order
 * (torch/optim/rmsprop.py, _single_tensor_rmsprop).
 *
 *   g   = -grad if maximize else grad                         grad             IN
 *   g   = g + wd * p                  (weight_decay != 0)     param            INOUT
 *   sq  = sq * alpha + ((1 - alpha) * g) * g                  square_avg       INOUT
 *   ga  = lerp(ga, g, 1 - alpha)      (centered)              grad_avg         INOUT (centered only)
 *   avg = sqrt(sq + (-ga) * ga) if centered else sqrt(sq);  avg = avg + eps
 *   b   = b * momentum + g / avg;  p = p + (-lr) * b          momentum_buffer  INOUT (momentum > 0 only)
 *   p   = p + (-lr * g) / avg         (momentum == 0)
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* RMSprop: 2 square_avg, 3 grad_avg (NULL unless centered), 4 momentum_buffer (NULL unless momentum > 0) */
FO_KERNEL(rmsprop, 5, 0, D(lr) D(alpha) D(eps) D(weight_decay) D(momentum) I(centered) I(maximize))
#define FO_IMPL "rmsprop.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(rmsprop_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT sq,
                                   FO_T *FO_RESTRICT ga, FO_T *FO_RESTRICT b, const int64_t n, const FO_T wd,
                                   const FO_T alpha, const FO_T w, const FO_T eps, const FO_T mom,
                                   const FO_T neg_lr, const int maximize, const int l2, const int centered,
                                   const int small_w, const int use_mom)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_PARAM_GRAD(i); /* -grad if maximize; + wd * p for L2 weight decay */
        const FO_T si = FO_FMA(w * gi, gi, sq[i] * alpha);
        sq[i] = si;
        FO_T avg;
        if (centered) {
            const FO_T gai = FO_LERP(ga[i], gi, w, small_w);
            ga[i] = gai;
            avg = FO_SQRT(FO_FMA(-gai, gai, si));
        } else {
            avg = FO_SQRT(si);
        }
        avg = avg + eps;
        if (use_mom) {
            const FO_T bi = b[i] * mom + gi / avg;
            b[i] = bi;
            p[i] = FO_FMA(neg_lr, bi, pi);
        } else {
            p[i] = pi + (neg_lr * gi) / avg;
        }
    }
}

FO_RANGE(rmsprop)
{
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *sq = bufs[2];
    FO_T *ga = h->centered ? bufs[3] : NULL;
    const int use_mom = h->momentum > 0;
    FO_T *b = use_mom ? bufs[4] : NULL;
    const int l2 = h->weight_decay != 0;
    const FO_T wd = (FO_T)h->weight_decay, alpha = (FO_T)h->alpha, wa = (FO_T)(1 - h->alpha);
    const int small_w = fo_small_weight(wa);
    const FO_T eps = (FO_T)h->eps, mom = (FO_T)h->momentum, neg_lr = (FO_T)(-h->lr);
    if (h->centered) {
        if (use_mom) FO_FN(rmsprop_loop)(p, g, sq, ga, b, n, wd, alpha, wa, eps, mom, neg_lr, h->maximize, l2, 1, small_w, 1);
        else         FO_FN(rmsprop_loop)(p, g, sq, ga, b, n, wd, alpha, wa, eps, mom, neg_lr, h->maximize, l2, 1, small_w, 0);
    } else if (use_mom) {
        FO_FN(rmsprop_loop)(p, g, sq, ga, b, n, wd, alpha, wa, eps, mom, neg_lr, h->maximize, l2, 0, 1, 1);
    } else {
        if (l2) FO_FN(rmsprop_loop)(p, g, sq, ga, b, n, wd, alpha, wa, eps, mom, neg_lr, h->maximize, 1, 0, 1, 0);
        else    FO_FN(rmsprop_loop)(p, g, sq, ga, b, n, wd, alpha, wa, eps, mom, neg_lr, h->maximize, 0, 0, 1, 0);
    }
}

/* square_avg always; grad_avg if centered; momentum_buffer if momentum > 0. */
static inline int64_t FO_FN(rmsprop_needs)(const fo_rmsprop_hyper *h)
{
    return FO_FIRST(3) | (h->centered ? 1 << 3 : 0) | (h->momentum > 0 ? 1 << 4 : 0);
}

FO_ELEMENTWISE(rmsprop)
#endif
