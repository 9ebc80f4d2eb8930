/* averaging.c — the update of fastopt.swa_utils.AveragedParameters (torch.optim.swa_utils.AveragedModel),
 * instantiated for float and double by fo_instantiate.h. One rule per call (h->mode), in torch's operations:
 *
 *   FO_AVG_SWA   a = a + (p - a) / d           d = n_averaged + 1   (torch's get_swa_avg_fn, the CPU default)
 *   FO_AVG_LERP  a = lerp(a, p, w)             w = 1 - decay (get_ema_multi_avg_fn) or 1 / (n + 1) in float32
 *                                              (get_swa_multi_avg_fn); FMA as torch's vectorised lerp
 *   FO_AVG_EMA   a = decay * a + (1 - decay) * p                    (torch's get_ema_avg_fn)
 *
 *   bufs: 0 averaged a  INOUT,  1 current parameter p  IN.  Scalars in the element type, as torch casts them. */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Parameter averaging (SWA / EMA): 0 averaged (INOUT), 1 current parameter (IN). mode FO_AVG_SWA:
 * a += (p - a) / weight (weight = n_averaged + 1); FO_AVG_LERP: a = lerp(a, p, weight);
 * FO_AVG_EMA: a = weight * a + (1 - weight) * p (weight = decay) */
FO_KERNEL(average, 2, 0, I(mode) D(weight))
#define FO_IMPL "averaging.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_RANGE(average)
{
    FO_T *FO_RESTRICT a = bufs[0];
    const FO_T *FO_RESTRICT p = bufs[1];
    if (h->mode == FO_AVG_SWA) {
        const FO_T d = (FO_T)h->weight;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            a[i] = a[i] + (p[i] - a[i]) / d;
    } else if (h->mode == FO_AVG_LERP) {
        const FO_T wt = (FO_T)h->weight;
        const int small = fo_small_weight(wt);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            a[i] = FO_LERP(a[i], p[i], wt, small);
    } else {
        const FO_T dc = (FO_T)h->weight, one_minus = (FO_T)(1.0 - h->weight);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            a[i] = dc * a[i] + one_minus * p[i];
    }
}

static inline int64_t FO_FN(average_needs)(const fo_average_hyper *h)
{
    if ((h->mode != FO_AVG_SWA && h->mode != FO_AVG_LERP && h->mode != FO_AVG_EMA) || h->weight != h->weight)
        return -1;
    return FO_FIRST(2);
}

FO_ELEMENTWISE(average)
#endif
