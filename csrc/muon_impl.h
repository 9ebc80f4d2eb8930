/* muon_impl.h — the elementwise parts of Muon (Jordan et al., 2024), in torch's single-tensor order
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
/* torch's lerp: start + w * (end - start) for |w| < 0.5, else end - (end - start) * (1 - w), both as one fma */
FO_INLINE FO_T FO_FN(muon_lerp)(const FO_T start, const FO_T end, const FO_T w, const int small_w)
{
    return small_w ? FO_FMA(w, end - start, start) : FO_FMA(w - (FO_T)1, end - start, end);
}

FO_INLINE void FO_FN(muon_momentum_loop)(const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT b, FO_T *FO_RESTRICT u,
                                         const int64_t n, const FO_T w1, const int small1, const FO_T mom,
                                         const int small_mom, const int nesterov)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T gi = g[i];
        const FO_T bi = FO_FN(muon_lerp)(b[i], gi, w1, small1);
        b[i] = bi;
        u[i] = nesterov ? FO_FN(muon_lerp)(gi, bi, mom, small_mom) : bi;
    }
}

static inline int FO_FN(muon_small)(const FO_T w)
{
    return (w < 0 ? -w : w) < (FO_T)0.5;
}

FO_INLINE void FO_FN(muon_momentum_item)(const fo_tensor_list *t, const fo_muon_hyper *h, int64_t w)
{
    const fo_work *it = &t->work[w];
    const int64_t n = it->end - it->begin;
    const FO_T w1 = (FO_T)(1 - h->momentum), mom = (FO_T)h->momentum;
    const int s1 = FO_FN(muon_small)(w1), sm = FO_FN(muon_small)(mom);
    FO_T *u = FO_BUF(t, it, 0, FO_T);
    const FO_T *g = FO_BUF(t, it, 1, const FO_T);
    FO_T *b = FO_BUF(t, it, 2, FO_T);
    if (h->nesterov)
        FO_FN(muon_momentum_loop)(g, b, u, n, w1, s1, mom, sm, 1);
    else
        FO_FN(muon_momentum_loop)(g, b, u, n, w1, s1, mom, sm, 0);
}

FO_INLINE void FO_FN(muon_apply_item)(const fo_tensor_list *t, const fo_muon_hyper *h, int64_t w)
{
    const fo_work *it = &t->work[w];
    const double *s = t->scalars + it->tensor * t->n_scalars;
    const int64_t n = it->end - it->begin;
    FO_T *p = FO_BUF(t, it, 0, FO_T);
    const FO_T *u = FO_BUF(t, it, 1, const FO_T);
    const FO_T decay = (FO_T)(1 - h->lr * h->weight_decay), neg_lr = (FO_T)(-s[0]);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
        p[i] = FO_FMA(neg_lr, u[i], p[i] * decay);
}

FO_DEFINE_VARIANTS(muon_momentum_item, fo_muon_hyper)
FO_DEFINE_VARIANTS(muon_apply_item, fo_muon_hyper)

int FO_FN(fo_muon_momentum)(const fo_tensor_list *t, const fo_muon_hyper *h)
{
    FO_KERNEL_BODY(t, h, muon_momentum_item, 3, 0);
}

int FO_FN(fo_muon_apply)(const fo_tensor_list *t, const fo_muon_hyper *h)
{
    FO_KERNEL_BODY(t, h, muon_apply_item, 2, 1);
}
