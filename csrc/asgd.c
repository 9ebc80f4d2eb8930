/* asgd.c — ASGD (Polyak & Juditsky, 1992; torch's variant), in torch's single-tensor order
 * (torch/optim/asgd.py, _single_tensor_asgd). eta and mu are per-parameter scalars kept by Python (as torch
 * keeps them, in its scalar dtype), passed per tensor.
 *
 *   g  = -grad if maximize else grad                       grad   IN
 *   g  = g + wd * p                  (weight_decay != 0)   param  INOUT
 *   p  = p * (1 - lambd * eta)       (scalar 0, always)    ax     INOUT
 *   p  = p + (-eta) * g              (scalar 1)
 *   ax = p                           if mu == 1  (scalar 3 set)
 *   ax = ax + (p - ax) * mu          otherwise   (scalar 2)
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* ASGD: 2 ax; scalars 0 decay = 1 - lambd * eta, 1 -eta, 2 mu, 3 1.0 if mu == 1 (ax = p) else 0.0 */
FO_KERNEL(asgd, 3, 4, D(weight_decay) I(maximize))
#define FO_IMPL "asgd.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(asgd_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT ax, const int64_t n,
                                const FO_T wd, const FO_T decay, const FO_T neg_eta, const FO_T mu,
                                const int maximize, const int l2, const int copy_ax)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_PARAM_GRAD(i); /* -grad if maximize; + wd * p for L2 weight decay */
        pi = pi * decay;
        pi = FO_FMA(neg_eta, gi, pi);
        p[i] = pi;
        ax[i] = copy_ax ? pi : ax[i] + (pi - ax[i]) * mu;
    }
}

FO_RANGE(asgd)
{
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *ax = bufs[2];
    const FO_T wd = (FO_T)h->weight_decay, decay = (FO_T)s[0], neg_eta = (FO_T)s[1], mu = (FO_T)s[2];
    const int l2 = h->weight_decay != 0, copy_ax = s[3] != 0;
    if (l2) {
        if (copy_ax) FO_FN(asgd_loop)(p, g, ax, n, wd, decay, neg_eta, mu, h->maximize, 1, 1);
        else         FO_FN(asgd_loop)(p, g, ax, n, wd, decay, neg_eta, mu, h->maximize, 1, 0);
    } else {
        if (copy_ax) FO_FN(asgd_loop)(p, g, ax, n, wd, decay, neg_eta, mu, h->maximize, 0, 1);
        else         FO_FN(asgd_loop)(p, g, ax, n, wd, decay, neg_eta, mu, h->maximize, 0, 0);
    }
}

FO_NEEDS_FIRST(asgd, 3)

FO_ELEMENTWISE(asgd)
#endif
