/* probe.c — body of the same-traffic probe (fo_probe.h), instantiated for float and double.
 *
 *   for each written buffer b (param, then n_state state buffers):  b = b + c * g    grad IN, others INOUT
 *
 * One loop per state count, so that each element of every array is loaded and stored once per call, exactly
 * the traffic of the optimizer kernels (Adam: read p, g, m, v; write p, m, v). */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* The same-traffic probe (the benchmark's memory ceiling): reads 1 (IN), and every written buffer b (0, then
 * n_state of 2..4) becomes b + scale * g, exactly an optimizer's traffic (fastopt.bench) */
FO_KERNEL(probe, 5, 0, I(n_state) D(scale))
#define FO_IMPL "probe.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
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

FO_RANGE(probe)
{
    const int ns = (int)h->n_state;
    const FO_T sc = (FO_T)h->scale;
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *s0 = ns > 0 ? bufs[2] : NULL;
    FO_T *s1 = ns > 1 ? bufs[3] : NULL;
    FO_T *s2 = ns > 2 ? bufs[4] : NULL;
    (void)s;
    switch (ns) {
    case 0: FO_FN(probe_loop)(p, g, s0, s1, s2, n, 0, sc); break;
    case 1: FO_FN(probe_loop)(p, g, s0, s1, s2, n, 1, sc); break;
    case 2: FO_FN(probe_loop)(p, g, s0, s1, s2, n, 2, sc); break;
    default: FO_FN(probe_loop)(p, g, s0, s1, s2, n, 3, sc); break;
    }
}

static inline int64_t FO_FN(probe_needs)(const fo_probe_hyper *h)
{
    return (h->n_state < 0 || h->n_state > 3) ? -1 : FO_FIRST(2 + h->n_state);
}

FO_ELEMENTWISE(probe)
#endif
