/* lookahead.c — Lookahead's slow-weight update (Zhang, Lucas, Hinton & Ba, 2019, Algorithm 1, every k steps), in
 * pytorch-optimizer 4.1's operations (Lookahead.update: lerp the fast weights toward the slow ones, then copy
 * them into the slow weights), fused into one pass; instantiated by fo_instantiate.h.
 *
 *   p    = lerp(p, slow, 1 - alpha)      (torch's lerp)          param        INOUT
 *   slow = p                                                     slow_params  INOUT
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Lookahead's slow-weight update: 0 param (INOUT, the fast weights), 1 slow_params (INOUT):
 * p = lerp(p, slow, weight) with weight = 1 - alpha, then slow = p */
FO_KERNEL(lookahead, 2, 0, D(weight))
#define FO_IMPL "lookahead.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(lookahead_loop)(FO_T *FO_RESTRICT p, FO_T *FO_RESTRICT slow, const int64_t n, const FO_T w,
                                     const int small_w)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T x = FO_LERP(p[i], slow[i], w, small_w);
        p[i] = x;
        slow[i] = x;
    }
}

FO_RANGE(lookahead)
{
    (void)s;
    const FO_T w = (FO_T)h->weight;
    if (fo_small_weight(w))
        FO_FN(lookahead_loop)(bufs[0], bufs[1], n, w, 1);
    else
        FO_FN(lookahead_loop)(bufs[0], bufs[1], n, w, 0);
}

FO_NEEDS_FIRST(lookahead, 2)

FO_ELEMENTWISE(lookahead)
#endif
