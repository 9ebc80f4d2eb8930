/* averaging_impl.h — the update of fastopt.swa_utils.AveragedParameters (torch.optim.swa_utils.AveragedModel),
 * instantiated for float and double by fo_instantiate.h. One rule per call (h->mode), in torch's operations:
 *
 *   FO_AVG_SWA   a = a + (p - a) / d           d = n_averaged + 1   (torch's get_swa_avg_fn, the CPU default)
 *   FO_AVG_LERP  a = lerp(a, p, w)             w = 1 - decay (get_ema_multi_avg_fn) or 1 / (n + 1) in float32
 *                                              (get_swa_multi_avg_fn); FMA as torch's vectorised lerp
 *   FO_AVG_EMA   a = decay * a + (1 - decay) * p                    (torch's get_ema_avg_fn)
 *
 *   bufs: 0 averaged a  INOUT,  1 current parameter p  IN.  Scalars in the element type, as torch casts them. */

FO_INLINE void FO_FN(avg_item)(const fo_tensor_list *t, const fo_avg_hyper *h, int64_t w)
{
    const fo_work *it = &t->work[w];
    const int64_t n = it->end - it->begin;
    FO_T *FO_RESTRICT a = FO_BUF(t, it, 0, FO_T);
    const FO_T *FO_RESTRICT p = FO_BUF(t, it, 1, const FO_T);
    if (h->mode == FO_AVG_SWA) {
        const FO_T d = (FO_T)h->weight;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            a[i] = a[i] + (p[i] - a[i]) / d;
    } else if (h->mode == FO_AVG_LERP) {
        const FO_T wt = (FO_T)h->weight;
        const FO_T wt_minus_one = wt - (FO_T)1;
        if ((wt < 0 ? -wt : wt) < (FO_T)0.5) {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i)
                a[i] = FO_FMA(wt, p[i] - a[i], a[i]);
        } else {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i)
                a[i] = FO_FMA(wt_minus_one, p[i] - a[i], p[i]);
        }
    } else {
        const FO_T dc = (FO_T)h->weight, one_minus = (FO_T)(1.0 - h->weight);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            a[i] = dc * a[i] + one_minus * p[i];
    }
}

FO_DEFINE_VARIANTS(avg_item, fo_avg_hyper)

int FO_FN(fo_average)(const fo_tensor_list *t, const fo_avg_hyper *h)
{
    const int rc = fo_check_list(t, 2);
    if (rc != FO_OK)
        return rc;
    if (h == NULL || (h->mode != FO_AVG_SWA && h->mode != FO_AVG_LERP && h->mode != FO_AVG_EMA)
        || h->weight != h->weight)
        return FO_ERR_ARG;
    FO_RUN_ITEMS(t, FO_SELECT(avg_item), h);
    return FO_OK;
}
