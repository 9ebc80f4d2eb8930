/* adadelta.c — Adadelta (Zeiler, 2012), in torch's single-tensor order (torch/optim/adadelta.py,
 * _single_tensor_adadelta), instantiated by fo_instantiate.h.
 *
 *   g     = -grad if maximize else grad                      grad        IN
 *   g     = g + wd * p              (weight_decay != 0)      param       INOUT
 *   sq    = sq * rho + ((1 - rho) * g) * g                   square_avg  INOUT
 *   delta = (sqrt(acc + eps) / sqrt(sq + eps)) * g           acc_delta   INOUT (read before its update)
 *   acc   = acc * rho + ((1 - rho) * delta) * delta
 *   p     = p + (-lr) * delta
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Adadelta: 2 square_avg, 3 acc_delta */
FO_KERNEL(adadelta, 4, 0, D(lr) D(rho) D(eps) D(weight_decay) I(maximize))
#define FO_IMPL "adadelta.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(adadelta_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT sq,
                                    FO_T *FO_RESTRICT acc, const int64_t n, const FO_T wd, const FO_T rho,
                                    const FO_T w, const FO_T eps, const FO_T neg_lr, const int maximize,
                                    const int l2)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_PARAM_GRAD(i); /* -grad if maximize; + wd * p for L2 weight decay */
        const FO_T si = FO_FMA(w * gi, gi, sq[i] * rho);      /* square_avg.mul_(rho).addcmul_(g, g, 1-rho) */
        const FO_T std = FO_SQRT(si + eps);
        const FO_T ai = acc[i];
        const FO_T delta = (FO_SQRT(ai + eps) / std) * gi;     /* acc_delta.add(eps).sqrt_().div_(std).mul_(g) */
        sq[i] = si;
        acc[i] = FO_FMA(w * delta, delta, ai * rho);
        p[i] = FO_FMA(neg_lr, delta, pi);                      /* param.add_(delta, alpha=-lr) */
    }
}

FO_RANGE(adadelta)
{
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *sq = bufs[2];
    FO_T *acc = bufs[3];
    const FO_T wd = (FO_T)h->weight_decay, rho = (FO_T)h->rho, wr = (FO_T)(1 - h->rho);
    const FO_T eps = (FO_T)h->eps, neg_lr = (FO_T)(-h->lr);
    if (h->weight_decay != 0)
        FO_FN(adadelta_loop)(p, g, sq, acc, n, wd, rho, wr, eps, neg_lr, h->maximize, 1);
    else
        FO_FN(adadelta_loop)(p, g, sq, acc, n, wd, rho, wr, eps, neg_lr, h->maximize, 0);
}

FO_NEEDS_FIRST(adadelta, 4)

FO_ELEMENTWISE(adadelta)
#endif
