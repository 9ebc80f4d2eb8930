/* adagrad_impl.h — Adagrad (Duchi, Hazan & Singer, 2011), in torch's single-tensor order
 * (torch/optim/adagrad.py, _single_tensor_adagrad, dense gradients), instantiated by fo_instantiate.h.
 *
 *   g   = -grad if maximize else grad                     grad   IN
 *   g   = g + wd * p               (weight_decay != 0)    param  INOUT
 *   sum = sum + g * g              (addcmul, value 1)     sum    INOUT
 *   p   = p + (-clr * g) / (sqrt(sum) + eps)              clr = lr / (1 + (t - 1) * lr_decay): per tensor
 */
FO_INLINE void FO_FN(adagrad_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT sum,
                                   const int64_t n, const FO_T wd, const FO_T eps, const FO_T neg_clr,
                                   const int maximize, const int l2)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_T gi = maximize ? -g[i] : g[i];
        const FO_T pi = p[i];
        if (l2)
            gi = FO_FMA(wd, pi, gi);                 /* grad.add(param, alpha=wd) */
        const FO_T si = FO_FMA(gi, gi, sum[i]);      /* sum.addcmul_(g, g, value=1) */
        sum[i] = si;
        p[i] = pi + (neg_clr * gi) / (FO_SQRT(si) + eps);  /* param.addcdiv_(g, std, value=-clr) */
    }
}

FO_INLINE void FO_FN(adagrad_range)(const fo_tensor_list *t, const fo_adagrad_hyper *h, const fo_work *it,
                                    const int64_t lo, const int64_t hi)
{
    const double *s = t->scalars + it->tensor * t->n_scalars;
    const int64_t n = hi - lo;
    FO_T *p = FO_BUF(t, it, 0, FO_T) + lo;
    const FO_T *g = FO_BUF(t, it, 1, const FO_T) + lo;
    FO_T *sum = FO_BUF(t, it, 2, FO_T) + lo;
    const FO_T wd = (FO_T)h->weight_decay, eps = (FO_T)h->eps, neg_clr = (FO_T)(-s[0]);
    if (h->weight_decay != 0)
        FO_FN(adagrad_loop)(p, g, sum, n, wd, eps, neg_clr, h->maximize, 1);
    else
        FO_FN(adagrad_loop)(p, g, sum, n, wd, eps, neg_clr, h->maximize, 0);
}

static inline int64_t FO_FN(adagrad_needs)(const fo_adagrad_hyper *h)
{
    (void)h;
    return FO_FIRST(3);
}

FO_ELEMENTWISE(adagrad)
