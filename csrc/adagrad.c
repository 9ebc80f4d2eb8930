/* adagrad.c — Adagrad (Duchi, Hazan & Singer, 2011), in torch's single-tensor order
 * (torch/optim/adagrad.py, _single_tensor_adagrad, dense gradients), instantiated by fo_instantiate.h.
 *
 *   g   = -grad if maximize else grad                     grad   IN
 *   g   = g + wd * p               (weight_decay != 0)    param  INOUT
 *   sum = sum + g * g              (addcmul, value 1)     sum    INOUT
 *   p   = p + (-clr * g) / (sqrt(sum) + eps)              clr = lr / (1 + (t - 1) * lr_decay): per tensor
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Adagrad: 2 sum; scalars 0 clr = lr / (1 + (t - 1) * lr_decay) */
FO_KERNEL(adagrad, 3, 1, D(eps) D(weight_decay) I(maximize))
#define FO_IMPL "adagrad.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(adagrad_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT sum,
                                   const int64_t n, const FO_T wd, const FO_T eps, const FO_T neg_clr,
                                   const int maximize, const int l2)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_PARAM_GRAD(i); /* -grad if maximize; + wd * p for L2 weight decay */
        const FO_T si = FO_FMA(gi, gi, sum[i]);      /* sum.addcmul_(g, g, value=1) */
        sum[i] = si;
        p[i] = pi + (neg_clr * gi) / (FO_SQRT(si) + eps);  /* param.addcdiv_(g, std, value=-clr) */
    }
}

FO_RANGE(adagrad)
{
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *sum = bufs[2];
    const FO_T wd = (FO_T)h->weight_decay, eps = (FO_T)h->eps, neg_clr = (FO_T)(-s[0]);
    if (h->weight_decay != 0)
        FO_FN(adagrad_loop)(p, g, sum, n, wd, eps, neg_clr, h->maximize, 1);
    else
        FO_FN(adagrad_loop)(p, g, sum, n, wd, eps, neg_clr, h->maximize, 0);
}

FO_NEEDS_FIRST(adagrad, 3)

FO_ELEMENTWISE(adagrad)
#endif
