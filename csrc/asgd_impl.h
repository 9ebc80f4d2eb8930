/* asgd_impl.h — ASGD (Polyak & Juditsky, 1992; torch's variant), in torch's single-tensor order
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
FO_INLINE void FO_FN(asgd_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT ax, const int64_t n,
                                const FO_T wd, const FO_T decay, const FO_T neg_eta, const FO_T mu,
                                const int maximize, const int l2, const int copy_ax)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_T gi = maximize ? -g[i] : g[i];
        FO_T pi = p[i];
        if (l2)
            gi = FO_FMA(wd, pi, gi);
        pi = pi * decay;
        pi = FO_FMA(neg_eta, gi, pi);
        p[i] = pi;
        ax[i] = copy_ax ? pi : ax[i] + (pi - ax[i]) * mu;
    }
}

FO_INLINE void FO_FN(asgd_range)(const fo_tensor_list *t, const fo_asgd_hyper *h, const fo_work *it,
                                 const int64_t lo, const int64_t hi)
{
    const double *s = t->scalars + it->tensor * t->n_scalars;
    const int64_t n = hi - lo;
    FO_T *p = FO_BUF(t, it, 0, FO_T) + lo;
    const FO_T *g = FO_BUF(t, it, 1, const FO_T) + lo;
    FO_T *ax = FO_BUF(t, it, 2, FO_T) + lo;
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

static inline int64_t FO_FN(asgd_needs)(const fo_asgd_hyper *h)
{
    (void)h;
    return FO_FIRST(3);
}

FO_ELEMENTWISE(asgd)
