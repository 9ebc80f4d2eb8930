/* clip_impl.h — per-chunk kernels of gradient clipping, instantiated for float and double by fo_instantiate.h
 * (clip.c holds the dtype-independent driver). Every reduction is accumulated in double in FO_CLIP_LANES
 * fixed lanes combined in a fixed order, so a chunk's partial is the same whatever the ISA or thread count:
 * the lane loop needs no reassociation, so the compiler vectorises it without changing a bit.
 *
 *   kind L2    partial = sum x^2          kind LINF   partial = max |x|  (NaN if any x is NaN)
 *   kind L1    partial = sum |x|          kind LNINF  partial = min |x|  (NaN if any x is NaN)
 *   kind L0    partial = #{x != 0}        kind LP     partial = sum |x|^p   (pow in double)
 *                                                                          x: grad chunk  IN
 */

FO_INLINE double FO_FN(clip_partial)(const FO_T *FO_RESTRICT x, const int64_t n, const int kind, const double p)
{
    double acc[FO_CLIP_LANES];
    int any_nan = 0;
    const double init = kind == FO_NORM_LNINF ? INFINITY : 0.0;
    for (int k = 0; k < FO_CLIP_LANES; ++k)
        acc[k] = init;
    const int64_t n_full = n - n % FO_CLIP_LANES;
    switch (kind) {
    case FO_NORM_L2:
        for (int64_t i = 0; i < n_full; i += FO_CLIP_LANES)
            for (int k = 0; k < FO_CLIP_LANES; ++k) {
                const double v = (double)x[i + k];
                acc[k] += v * v;
            }
        for (int64_t i = n_full; i < n; ++i) {
            const double v = (double)x[i];
            acc[i - n_full] += v * v;
        }
        break;
    case FO_NORM_L1:
        for (int64_t i = 0; i < n_full; i += FO_CLIP_LANES)
            for (int k = 0; k < FO_CLIP_LANES; ++k)
                acc[k] += fabs((double)x[i + k]);
        for (int64_t i = n_full; i < n; ++i)
            acc[i - n_full] += fabs((double)x[i]);
        break;
    case FO_NORM_L0:
        for (int64_t i = 0; i < n_full; i += FO_CLIP_LANES)
            for (int k = 0; k < FO_CLIP_LANES; ++k)
                acc[k] += (x[i + k] != 0) ? 1.0 : 0.0; /* NaN != 0: counted, as torch */
        for (int64_t i = n_full; i < n; ++i)
            acc[i - n_full] += (x[i] != 0) ? 1.0 : 0.0;
        break;
    case FO_NORM_LINF:
        for (int64_t i = 0; i < n; ++i) {
            const double a = fabs((double)x[i]);
            any_nan |= (a != a);
            acc[i % FO_CLIP_LANES] = a > acc[i % FO_CLIP_LANES] ? a : acc[i % FO_CLIP_LANES];
        }
        break;
    case FO_NORM_LNINF:
        for (int64_t i = 0; i < n; ++i) {
            const double a = fabs((double)x[i]);
            any_nan |= (a != a);
            acc[i % FO_CLIP_LANES] = a < acc[i % FO_CLIP_LANES] ? a : acc[i % FO_CLIP_LANES];
        }
        break;
    default: /* FO_NORM_LP */
        for (int64_t i = 0; i < n; ++i)
            acc[i % FO_CLIP_LANES] += pow(fabs((double)x[i]), p);
        break;
    }
    if (kind == FO_NORM_LINF || kind == FO_NORM_LNINF) {
        if (any_nan)
            return NAN;
        double m = acc[0];
        for (int k = 1; k < FO_CLIP_LANES; ++k)
            m = (kind == FO_NORM_LINF) ? (acc[k] > m ? acc[k] : m) : (acc[k] < m ? acc[k] : m);
        return m;
    }
    /* pairwise, fixed order: ((a0+a1)+(a2+a3)) + ((a4+a5)+(a6+a7)) */
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* grad *= coef, in the grad's dtype (torch multiplies by the clip coefficient in the gradient's dtype).
 * x: grad chunk  INOUT */
FO_INLINE void FO_FN(clip_scale)(FO_T *FO_RESTRICT x, const int64_t n, const FO_T c)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
        x[i] = x[i] * c;
}

/* grad = clamp_max(clamp_min(grad, lo), hi), NaN kept (torch's clamp_min_ then clamp_max_).
 * x: grad chunk  INOUT */
FO_INLINE void FO_FN(clip_clamp)(FO_T *FO_RESTRICT x, const int64_t n, const FO_T lo, const FO_T hi)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_T v = x[i];
        v = v < lo ? lo : v;
        x[i] = v > hi ? hi : v;
    }
}
