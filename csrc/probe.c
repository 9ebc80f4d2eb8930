/* probe.c — body of the same-traffic probe (fo_probe.h), instantiated for float and double.
 *
 *   for each written buffer b (param, then n_state state buffers):  b = b + c * (g + e_1 + ... + e_n_in)
 *                                                    grad and the n_in extra inputs e_k IN, the others INOUT
 *
 * One loop per (state count, input count), so that each element of every array is loaded once per call and each
 * written one stored once, exactly the traffic of the optimizer kernels (Adam: read p, g, m, v; write p, m, v;
 * Prodigy's first pass: read s, g, p, p0; write s). */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* The same-traffic probe (the benchmark's memory ceiling): reads 1 (IN) and the n_in extra inputs after the states
 * (IN), and every written buffer b (0, then n_state of 2..4) becomes b + scale * (g + extras), exactly an
 * optimizer's traffic (fastopt.bench); n_state + n_in <= 3 */
FO_KERNEL(probe, 5, 0, I(n_state) I(n_in) D(scale))
#define FO_IMPL "probe.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(probe_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT a,
                                 FO_T *FO_RESTRICT b, FO_T *FO_RESTRICT c, const FO_T *FO_RESTRICT e,
                                 const FO_T *FO_RESTRICT f, const int64_t n, const int ns, const int ni,
                                 const FO_T scale)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_T gi = g[i];
        if (ni > 0)
            gi += e[i];
        if (ni > 1)
            gi += f[i];
        gi *= scale;
        p[i] = p[i] + gi;
        if (ns > 0)
            a[i] = a[i] + gi;
        if (ns > 1)
            b[i] = b[i] + gi;
        if (ns > 2)
            c[i] = c[i] + gi;
    }
}

/* One instantiation per (ns, ni): the conditions above are constants in each, so every loop has only its own
 * loads and stores. */
#define FO_PROBE_CASE(NS, NI) \
    case 3 * (NS) + (NI): FO_FN(probe_loop)(p, g, w[0], w[1], w[2], e[0], e[1], n, NS, NI, sc); break;

FO_RANGE(probe)
{
    const int ns = (int)h->n_state, ni = (int)h->n_in;
    const FO_T sc = (FO_T)h->scale;
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1];
    FO_T *w[3] = {NULL, NULL, NULL};
    const FO_T *e[2] = {NULL, NULL};
    for (int k = 0; k < ns; ++k)
        w[k] = bufs[2 + k];
    for (int k = 0; k < ni; ++k)
        e[k] = bufs[2 + ns + k];
    (void)s;
    switch (3 * ns + ni) {
    FO_PROBE_CASE(0, 0) FO_PROBE_CASE(0, 1) FO_PROBE_CASE(0, 2)
    FO_PROBE_CASE(1, 0) FO_PROBE_CASE(1, 1) FO_PROBE_CASE(1, 2)
    FO_PROBE_CASE(2, 0) FO_PROBE_CASE(2, 1)
    default: FO_FN(probe_loop)(p, g, w[0], w[1], w[2], e[0], e[1], n, 3, 0, sc); break;
    }
}

static inline int64_t FO_FN(probe_needs)(const fo_probe_hyper *h)
{
    const int64_t ns = h->n_state, ni = h->n_in;
    return (ns < 0 || ni < 0 || ni > 2 || ns + ni > 3) ? -1 : FO_FIRST(2 + ns + ni);
}

FO_ELEMENTWISE(probe)
#endif
