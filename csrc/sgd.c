/* sgd.c — SGD with momentum, dampening, Nesterov and weight decay, in torch's single-tensor order
 * (torch/optim/sgd.py, _single_tensor_sgd).
 *
 *   g = -grad if maximize else grad                                  grad             IN
 *   g = g + wd * p                        (weight_decay != 0)        param            INOUT
 *   b = g                                 (first step of a buffer)   momentum_buffer  INOUT (momentum != 0)
 *   b = b * momentum + (1 - dampening) * g                (later steps)
 *   g = g + momentum * b if nesterov else b               (momentum != 0)
 *   p = p + (-lr) * g
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* SGD: 2 momentum_buffer (NULL iff momentum == 0); scalars 0 first (1.0 when the buffer is new: set to g) */
FO_KERNEL(sgd, 3, 1, D(lr) D(momentum) D(dampening) D(weight_decay) I(nesterov) I(maximize))
#define FO_IMPL "sgd.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(sgd_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT b, const int64_t n,
                               const FO_T wd, const FO_T mom, const FO_T damp1, const FO_T neg_lr,
                               const int maximize, const int l2, const int use_mom, const int first,
                               const int nesterov)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_PARAM_GRAD(i); /* -grad if maximize; + wd * p for L2 weight decay */
        if (use_mom) {
            const FO_T bi = first ? gi : FO_FMA(damp1, gi, b[i] * mom);
            b[i] = bi;
            gi = nesterov ? FO_FMA(mom, bi, gi) : bi;
        }
        p[i] = FO_FMA(neg_lr, gi, pi);
    }
}

FO_RANGE(sgd)
{
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    const int use_mom = h->momentum != 0;
    FO_T *b = use_mom ? bufs[2] : NULL;
    const int l2 = h->weight_decay != 0, first = use_mom && s[0] != 0;
    const FO_T wd = (FO_T)h->weight_decay, mom = (FO_T)h->momentum, damp1 = (FO_T)(1 - h->dampening);
    const FO_T neg_lr = (FO_T)(-h->lr);
    if (!use_mom) {
        if (l2) FO_FN(sgd_loop)(p, g, b, n, wd, mom, damp1, neg_lr, h->maximize, 1, 0, 0, 0);
        else    FO_FN(sgd_loop)(p, g, b, n, wd, mom, damp1, neg_lr, h->maximize, 0, 0, 0, 0);
    } else if (first) {
        FO_FN(sgd_loop)(p, g, b, n, wd, mom, damp1, neg_lr, h->maximize, l2, 1, 1, h->nesterov);
    } else if (h->nesterov) {
        FO_FN(sgd_loop)(p, g, b, n, wd, mom, damp1, neg_lr, h->maximize, l2, 1, 0, 1);
    } else {
        if (l2) FO_FN(sgd_loop)(p, g, b, n, wd, mom, damp1, neg_lr, h->maximize, 1, 1, 0, 0);
        else    FO_FN(sgd_loop)(p, g, b, n, wd, mom, damp1, neg_lr, h->maximize, 0, 1, 0, 0);
    }
}

static inline int64_t FO_FN(sgd_needs)(const fo_sgd_hyper *h)
{
    return FO_FIRST(h->momentum != 0 ? 3 : 2);
}

FO_ELEMENTWISE(sgd)
#endif
