/* lion.c — Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2), with
 * decoupled weight decay; instantiated by fo_instantiate.h. torch has no Lion: the order below is ours and the
 * NumPy reference (tests/reference.py, ref_lion) follows it operation for operation.
 *
 *   g = -grad if maximize else grad                          grad     IN
 *   p = p * (1 - lr * wd)          (weight_decay != 0)       param    INOUT
 *   c = m * beta1 + (1 - beta1) * g        (one fma)         exp_avg  INOUT
 *   p = p + (-lr) * sign(c)        (one fma; sign(0) = 0, sign(NaN) = NaN)
 *   m = m * beta2 + (1 - beta2) * g        (one fma)
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Lion: 2 exp_avg */
FO_KERNEL(lion, 3, 0, D(lr) D(beta1) D(beta2) D(weight_decay) I(maximize))
#define FO_IMPL "lion.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(lion_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m,
                                const int64_t n, const FO_T decay, const FO_T b1, const FO_T w1, const FO_T b2,
                                const FO_T w2, const FO_T neg_lr, const int maximize)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T gi = maximize ? -g[i] : g[i];
        const FO_T mi = m[i];
        const FO_T c = FO_FMA(w1, gi, mi * b1);
        const FO_T sg = c > 0 ? (FO_T)1 : (c < 0 ? (FO_T)-1 : c);  /* c itself for +-0 and NaN */
        p[i] = FO_FMA(neg_lr, sg, p[i] * decay);
        m[i] = FO_FMA(w2, gi, mi * b2);
    }
}

FO_RANGE(lion)
{
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *m = bufs[2];
    const FO_T decay = h->weight_decay != 0 ? (FO_T)(1 - h->lr * h->weight_decay) : (FO_T)1;
    FO_FN(lion_loop)(p, g, m, n, decay, (FO_T)h->beta1, (FO_T)(1 - h->beta1), (FO_T)h->beta2,
                     (FO_T)(1 - h->beta2), (FO_T)(-h->lr), h->maximize);
}

FO_NEEDS_FIRST(lion, 3)

FO_ELEMENTWISE(lion)
#endif
