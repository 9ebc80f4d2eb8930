/* sparse_adam.c — SparseAdam over the touched rows only, in torch's order
 * (torch/optim/_functional.py, sparse_adam). The caller gathers the rows a sparse gradient touches (indices
 * unique, duplicates already summed) into compact arrays, runs this kernel, and scatters them back.
 *
 *   g  = -values if maximize else values                  values      IN    (the gradient's rows)
 *   u1 = (g - m) * (1 - beta1);      m' = m + u1          param rows  INOUT
 *   u2 = (g * g - v) * (1 - beta2);  v' = v + u2          exp_avg     INOUT
 *   p  = p + (-step_size) * ((u1 + m) / (sqrt(u2 + v) + eps))         exp_avg_sq  INOUT
 *   step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t)    (scalar 0, per tensor)
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* SparseAdam over gathered rows: 0 param rows, 1 gradient rows, 2 exp_avg rows, 3 exp_avg_sq rows;
 * scalars 0 step_size */
FO_KERNEL(sparse_adam, 4, 1, D(beta1) D(beta2) D(eps) I(maximize))
#define FO_IMPL "sparse_adam.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(sparse_adam_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m,
                                       FO_T *FO_RESTRICT v, const int64_t n, const FO_T w1, const FO_T w2,
                                       const FO_T eps, const FO_T neg_step, const int maximize)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T gi = maximize ? -g[i] : g[i];
        const FO_T mo = m[i], vo = v[i];
        const FO_T u1 = (gi - mo) * w1;
        const FO_T u2 = (gi * gi - vo) * w2;
        m[i] = mo + u1;
        v[i] = vo + u2;
        const FO_T denom = FO_SQRT(u2 + vo) + eps;
        p[i] = p[i] + neg_step * ((u1 + mo) / denom);
    }
}

FO_RANGE(sparse_adam)
{
    FO_FN(sparse_adam_loop)(bufs[0], bufs[1], bufs[2],
                            bufs[3], n, (FO_T)(1 - h->beta1), (FO_T)(1 - h->beta2), (FO_T)h->eps,
                            (FO_T)(-s[0]), h->maximize);
}

FO_NEEDS_FIRST(sparse_adam, 4)

FO_ELEMENTWISE(sparse_adam)
#endif
