/* probe_two_pass.c — the same-traffic probe of LAMB (lamb.c): its minimum traffic, 10 values per element, in its
 * schedule (the reduce-then-update driver, fo_reduce.h: a small tensor's two passes back to back on one thread, a
 * large tensor's pass 1 over all its items before its pass 2), with one addition per value instead of its
 * arithmetic, so that fastopt's time over this probe's is what LAMB's arithmetic costs beyond the memory traffic.
 *
 *   pass 1, per element:  a = a + c * g,  b = b + c * p     reads p, g, a, b; writes a, b   (no sums)
 *   pass 2, per element:  p = p + c * a + c * b             reads p, a, b; writes p
 * Buffers: 0 param INOUT, 1 grad IN, 2 and 3 state INOUT (LAMB's exp_avg, exp_avg_sq). c = scale (0 in the
 * benchmark: every value stays as it is). */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* The same-traffic probe of a two-pass kernel (the benchmark's LAMB probe): pass 1 reads buffers 0-3 and writes 2, 3;
 * pass 2 reads 0, 2, 3 and writes 0, each value plus scale times another, in the reduce-then-update schedule */
FO_KERNEL(probe_two_pass, 4, 0, D(scale))
#define FO_IMPL "probe_two_pass.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
#include "fo_reduce.h"

FO_REDUCE_RANGE(probe_two_pass)
{
    (void)keep;
    (void)s;
    (void)acc;
    const FO_T c = (FO_T)h->scale;
    const FO_T *FO_RESTRICT p = bufs[0], *FO_RESTRICT g = bufs[1];
    FO_T *FO_RESTRICT a = bufs[2], *FO_RESTRICT b = bufs[3];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        a[i] = a[i] + c * g[i];
        b[i] = b[i] + c * p[i];
    }
}

static inline void FO_FN(probe_two_pass_combine)(const fo_probe_two_pass_hyper *h, const double *s,
                                                 const double *sums, double *out)
{
    (void)h;
    (void)s;
    (void)sums;
    out[0] = 0.0;
}

FO_APPLY_RANGE(probe_two_pass)
{
    (void)keep;
    (void)s;
    (void)r;
    const FO_T c = (FO_T)h->scale;
    FO_T *FO_RESTRICT p = bufs[0];
    const FO_T *FO_RESTRICT a = bufs[2], *FO_RESTRICT b = bufs[3];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
        p[i] = p[i] + c * a[i] + c * b[i];
}

FO_NEEDS_FIRST(probe_two_pass, 4)

FO_REDUCE_THEN_UPDATE(probe_two_pass)
#endif
