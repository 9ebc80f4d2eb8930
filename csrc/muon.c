/* muon.c — the elementwise parts of Muon (Jordan et al., 2024), in torch's single-tensor order
 * (torch/optim/_muon.py, _single_tensor_muon). The Newton–Schulz orthogonalisation between the two kernels
 * runs in Python on NumPy's matrix product.
 *
 * fo_muon_momentum                                        update (pos. 0)  OUT
 *   b = lerp(b, g, 1 - momentum)                          grad             IN
 *   u = lerp(g, b, momentum) if nesterov else b           momentum_buffer  INOUT
 * fo_muon_apply                                           update (pos. 1)  IN
 *   p = p * (1 - lr * wd)            (always, as torch)   param            INOUT
 *   p = p + (-adjusted_lr) * u       (scalar 0, per tensor: the adjustment depends on the shape)
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Muon's momentum: 0 update (OUT), 1 grad, 2 momentum_buffer */
FO_KERNEL(muon_momentum, 3, 0, D(momentum) I(nesterov))
/* Muon's update: 0 param, 1 update (IN, the orthogonalised update); scalars 0 adjusted_lr */
FO_KERNEL(muon_apply, 2, 1, D(lr) D(weight_decay))
#define FO_IMPL "muon.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(muon_momentum_loop)(const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT b, FO_T *FO_RESTRICT u,
                                         const int64_t n, const FO_T w1, const int small1, const FO_T mom,
                                         const int small_mom, const int nesterov)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T gi = g[i];
        const FO_T bi = FO_LERP(b[i], gi, w1, small1);
        b[i] = bi;
        u[i] = nesterov ? FO_LERP(gi, bi, mom, small_mom) : bi;
    }
}

FO_RANGE(muon_momentum)
{
    const FO_T w1 = (FO_T)(1 - h->momentum), mom = (FO_T)h->momentum;
    const int s1 = fo_small_weight(w1), sm = fo_small_weight(mom);
    FO_T *u = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *buf = bufs[2];
    if (h->nesterov)
        FO_FN(muon_momentum_loop)(g, buf, u, n, w1, s1, mom, sm, 1);
    else
        FO_FN(muon_momentum_loop)(g, buf, u, n, w1, s1, mom, sm, 0);
}

FO_RANGE(muon_apply)
{
    FO_T *p = bufs[0];
    const FO_T *u = bufs[1];
    const FO_T decay = (FO_T)(1 - h->lr * h->weight_decay), neg_lr = (FO_T)(-s[0]);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
        p[i] = FO_FMA(neg_lr, u[i], p[i] * decay);
}

FO_NEEDS_FIRST(muon_momentum, 3)

FO_NEEDS_FIRST(muon_apply, 2)

FO_ELEMENTWISE(muon_momentum)
FO_ELEMENTWISE(muon_apply)
#endif
