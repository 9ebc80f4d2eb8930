/* adadelta_impl.h — Adadelta (Zeiler, 2012), in torch's single-tensor order (torch/optim/adadelta.py,
 * _single_tensor_adadelta), instantiated by fo_instantiate.h.
 *
 *   g     = -grad if maximize else grad                      grad        IN
 *   g     = g + wd * p              (weight_decay != 0)      param       INOUT
 *   sq    = sq * rho + ((1 - rho) * g) * g                   square_avg  INOUT
 *   delta = (sqrt(acc + eps) / sqrt(sq + eps)) * g           acc_delta   INOUT (read before its update)
 *   acc   = acc * rho + ((1 - rho) * delta) * delta
 *   p     = p + (-lr) * delta
 */
FO_INLINE void FO_FN(adadelta_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT sq,
                                    FO_T *FO_RESTRICT acc, const int64_t n, const FO_T wd, const FO_T rho,
                                    const FO_T w, const FO_T eps, const FO_T neg_lr, const int maximize,
                                    const int l2)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_T gi = maximize ? -g[i] : g[i];
        const FO_T pi = p[i];
        if (l2)
            gi = FO_FMA(wd, pi, gi);
        const FO_T si = FO_FMA(w * gi, gi, sq[i] * rho);      /* square_avg.mul_(rho).addcmul_(g, g, 1-rho) */
        const FO_T std = FO_SQRT(si + eps);
        const FO_T ai = acc[i];
        const FO_T delta = (FO_SQRT(ai + eps) / std) * gi;     /* acc_delta.add(eps).sqrt_().div_(std).mul_(g) */
        sq[i] = si;
        acc[i] = FO_FMA(w * delta, delta, ai * rho);
        p[i] = FO_FMA(neg_lr, delta, pi);                      /* param.add_(delta, alpha=-lr) */
    }
}

FO_INLINE void FO_FN(adadelta_range)(const fo_tensor_list *t, const fo_adadelta_hyper *h, const fo_work *it,
                                     const int64_t lo, const int64_t hi)
{
    const int64_t n = hi - lo;
    FO_T *p = FO_BUF(t, it, 0, FO_T) + lo;
    const FO_T *g = FO_BUF(t, it, 1, const FO_T) + lo;
    FO_T *sq = FO_BUF(t, it, 2, FO_T) + lo;
    FO_T *acc = FO_BUF(t, it, 3, FO_T) + lo;
    const FO_T wd = (FO_T)h->weight_decay, rho = (FO_T)h->rho, wr = (FO_T)(1 - h->rho);
    const FO_T eps = (FO_T)h->eps, neg_lr = (FO_T)(-h->lr);
    if (h->weight_decay != 0)
        FO_FN(adadelta_loop)(p, g, sq, acc, n, wd, rho, wr, eps, neg_lr, h->maximize, 1);
    else
        FO_FN(adadelta_loop)(p, g, sq, acc, n, wd, rho, wr, eps, neg_lr, h->maximize, 0);
}

static inline int64_t FO_FN(adadelta_needs)(const fo_adadelta_hyper *h)
{
    (void)h;
    return FO_FIRST(4);
}

FO_ELEMENTWISE(adadelta)
