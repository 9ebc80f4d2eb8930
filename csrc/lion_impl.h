/* lion_impl.h — Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2), with
 * decoupled weight decay; instantiated by fo_instantiate.h. torch has no Lion: the order below is ours and the
 * NumPy reference (tests/reference.py, ref_lion) follows it operation for operation.
 *
 *   g = -grad if maximize else grad                          grad     IN
 *   p = p * (1 - lr * wd)          (weight_decay != 0)       param    INOUT
 *   c = m * beta1 + (1 - beta1) * g        (one fma)         exp_avg  INOUT
 *   p = p + (-lr) * sign(c)        (one fma; sign(0) = 0, sign(NaN) = NaN)
 *   m = m * beta2 + (1 - beta2) * g        (one fma)
 */
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

FO_INLINE void FO_FN(lion_range)(const fo_tensor_list *t, const fo_lion_hyper *h, const fo_work *it,
                                 const int64_t lo, const int64_t hi)
{
    const int64_t n = hi - lo;
    FO_T *p = FO_BUF(t, it, 0, FO_T) + lo;
    const FO_T *g = FO_BUF(t, it, 1, const FO_T) + lo;
    FO_T *m = FO_BUF(t, it, 2, FO_T) + lo;
    const FO_T decay = h->weight_decay != 0 ? (FO_T)(1 - h->lr * h->weight_decay) : (FO_T)1;
    FO_FN(lion_loop)(p, g, m, n, decay, (FO_T)h->beta1, (FO_T)(1 - h->beta1), (FO_T)h->beta2,
                     (FO_T)(1 - h->beta2), (FO_T)(-h->lr), h->maximize);
}

static inline int64_t FO_FN(lion_needs)(const fo_lion_hyper *h)
{
    (void)h;
    return FO_FIRST(3);
}

FO_ELEMENTWISE(lion)
