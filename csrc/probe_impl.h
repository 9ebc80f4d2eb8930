/* probe_impl.h — body of the same-traffic probe (fo_probe.h), instantiated for float and double.
 *
 *   for each written buffer b (param, then n_state state buffers):  b = b + c * g    grad IN, others INOUT
 *
 * One loop per state count, so that each element of every array is loaded and stored once per call, exactly
 * the traffic of the optimizer kernels (Adam: read p, g, m, v; write p, m, v). */
FO_INLINE void FO_FN(probe_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT a,
                                 FO_T *FO_RESTRICT b, FO_T *FO_RESTRICT c, const int64_t n, const int ns,
                                 const FO_T scale)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T gi = scale * g[i];
        p[i] = p[i] + gi;
        if (ns > 0)
            a[i] = a[i] + gi;
        if (ns > 1)
            b[i] = b[i] + gi;
        if (ns > 2)
            c[i] = c[i] + gi;
    }
}

FO_INLINE void FO_FN(probe_range)(const fo_tensor_list *t, const fo_probe_hyper *h, const fo_work *it,
                                  const int64_t lo, const int64_t hi)
{
    const int64_t n = hi - lo;
    const int ns = (int)h->n_state;
    const FO_T sc = (FO_T)h->scale;
    FO_T *p = FO_BUF(t, it, 0, FO_T) + lo;
    const FO_T *g = FO_BUF(t, it, 1, const FO_T) + lo;
    FO_T *a = ns > 0 ? FO_BUF(t, it, 2, FO_T) + lo : NULL;
    FO_T *b = ns > 1 ? FO_BUF(t, it, 3, FO_T) + lo : NULL;
    FO_T *c = ns > 2 ? FO_BUF(t, it, 4, FO_T) + lo : NULL;
    switch (ns) {
    case 0: FO_FN(probe_loop)(p, g, a, b, c, n, 0, sc); break;
    case 1: FO_FN(probe_loop)(p, g, a, b, c, n, 1, sc); break;
    case 2: FO_FN(probe_loop)(p, g, a, b, c, n, 2, sc); break;
    default: FO_FN(probe_loop)(p, g, a, b, c, n, 3, sc); break;
    }
}

static inline int64_t FO_FN(probe_needs)(const fo_probe_hyper *h)
{
    return (h->n_state < 0 || h->n_state > 3) ? -1 : FO_FIRST(2 + h->n_state);
}

FO_ELEMENTWISE(probe)
