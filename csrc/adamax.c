/* adamax.c — Adamax (Kingma & Ba, 2015, section 7.1), in torch's single-tensor order
 * (torch/optim/adamax.py, _single_tensor_adamax), instantiated by fo_instantiate.h.
 *
 *   g = -grad if maximize else grad                          grad     IN
 *   g = g + wd * p                 (weight_decay != 0)       param    INOUT
 *   m = lerp(m, g, 1 - beta1)                                exp_avg  INOUT
 *   u = max(u * beta2, |g| + eps)  (NaN wins, as torch.maximum)   exp_inf  INOUT
 *   p = p + (-clr * m) / u                                   clr = lr / (1 - beta1^t): per tensor
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Adamax: 2 exp_avg, 3 exp_inf; scalars 0 clr = lr / (1 - beta1^t) */
FO_KERNEL(adamax, 4, 1, D(beta1) D(beta2) D(eps) D(weight_decay) I(maximize))
#define FO_IMPL "adamax.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(adamax_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m,
                                  FO_T *FO_RESTRICT u, const int64_t n, const FO_T wd, const FO_T w1,
                                  const FO_T b2, const FO_T eps, const FO_T neg_clr, const int maximize,
                                  const int l2, const int small_w)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_PARAM_GRAD(i); /* -grad if maximize; + wd * p for L2 weight decay */
        const FO_T mi = FO_LERP(m[i], gi, w1, small_w);
        const FO_T a = u[i] * b2;
        const FO_T b = _Generic((gi), float: fabsf, double: fabs)(gi) + eps;  /* grad.abs().add_(eps) */
        const FO_T ui = FO_MAX_NAN(a, b);
        m[i] = mi;
        u[i] = ui;
        p[i] = pi + (neg_clr * mi) / ui;
    }
}

FO_RANGE(adamax)
{
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *m = bufs[2];
    FO_T *u = bufs[3];
    const FO_T wd = (FO_T)h->weight_decay, w1 = (FO_T)(1 - h->beta1), b2 = (FO_T)h->beta2;
    const FO_T eps = (FO_T)h->eps, neg_clr = (FO_T)(-s[0]);
    const int small_w = fo_small_weight(w1);
    const int l2 = h->weight_decay != 0;
    if (small_w) {
        if (l2) FO_FN(adamax_loop)(p, g, m, u, n, wd, w1, b2, eps, neg_clr, h->maximize, 1, 1);
        else    FO_FN(adamax_loop)(p, g, m, u, n, wd, w1, b2, eps, neg_clr, h->maximize, 0, 1);
    } else {
        FO_FN(adamax_loop)(p, g, m, u, n, wd, w1, b2, eps, neg_clr, h->maximize, l2, 0);
    }
}

FO_NEEDS_FIRST(adamax, 4)

FO_ELEMENTWISE(adamax)
#endif
