/* clip_impl.h — per-item kernels of gradient clipping, compiled for float and double and once per instruction set
 * (fo_variants.h; clip.c holds the dtype-independent driver). Every norm is fastopt's one reduction (fo_sum.h):
 * element i of the item into lane i % FO_SUM_LANES, in double, the lanes folded by the fixed tree, so an item's
 * partial is the same bits whatever the ISA or thread count.
 *
 *   kind L2    partial = sum x^2          kind LINF   partial = max |x|  (NaN if any x is NaN)
 *   kind L1    partial = sum |x|          kind LNINF  partial = min |x|  (NaN if any x is NaN)
 *   kind L0    partial = #{x != 0}        kind LP     partial = sum |x|^p   (pow in double)
 *                                                                          x: grad item  IN
 */
#include "fo_sum.h"

static double FO_FN(clip_partial)(const void *xv, const int64_t n, const int kind, const double p)
{
    const FO_T *FO_RESTRICT x = (const FO_T *)xv;
    double acc[FO_SUM_LANES];
    fo_lanes_fill(acc, kind == FO_NORM_LNINF ? INFINITY : 0.0);
    switch (kind) {
    case FO_NORM_L2:
        return FO_FN(fo_sum_item)(x, n, 1);
    case FO_NORM_L1:
        FO_SUM_LOOP(n, i, k, { acc[k] += fabs((double)x[i]); });
        return fo_sum_fold(acc);
    case FO_NORM_L0:
        FO_SUM_LOOP(n, i, k, { acc[k] += (x[i] != 0) ? 1.0 : 0.0; }); /* NaN != 0: counted, as torch */
        return fo_sum_fold(acc);
    case FO_NORM_LINF: /* NaN-sticky: once a lane holds NaN, no compare replaces it */
        FO_SUM_LOOP(n, i, k, {
            const double a = fabs((double)x[i]);
            acc[k] = (a > acc[k] || a != a) ? a : acc[k];
        });
        return fo_extreme_fold(acc, 1);
    case FO_NORM_LNINF:
        FO_SUM_LOOP(n, i, k, {
            const double a = fabs((double)x[i]);
            acc[k] = (a < acc[k] || a != a) ? a : acc[k];
        });
        return fo_extreme_fold(acc, 0);
    default: /* FO_NORM_LP */
        FO_SUM_LOOP(n, i, k, { acc[k] += pow(fabs((double)x[i]), p); });
        return fo_sum_fold(acc);
    }
}

/* clamp == 0: grad *= coef, in the grad's dtype (torch multiplies by the clip coefficient in the gradient's dtype);
 * clamp != 0: grad = clamp_max(clamp_min(grad, lo), hi), NaN kept (torch's clamp_min_ then clamp_max_).
 * x: grad item  INOUT */
static void FO_FN(clip_write)(void *xv, const int64_t n, const int clamp, const double coef, const double lo,
                              const double hi)
{
    FO_T *FO_RESTRICT x = (FO_T *)xv;
    if (!clamp) {
        const FO_T c = (FO_T)coef;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            x[i] = x[i] * c;
        return;
    }
    const FO_T l = (FO_T)lo, h = (FO_T)hi;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_T v = x[i];
        v = v < l ? l : v;
        x[i] = v > h ? h : v;
    }
}
