/* rprop.c — Rprop (Riedmiller & Braun, 1993), in torch's single-tensor order
 * (torch/optim/rprop.py, _single_tensor_rprop).
 *
 *   g  = -grad if maximize else grad                      grad       IN
 *   s  = sign(g * prev)        (sign(NaN) = 0, as torch)  param      INOUT
 *   f  = etaplus if s > 0, etaminus if s < 0, else 1      prev       INOUT
 *   step_size = clamp(step_size * f, step_size_min, step_size_max)   step_size  INOUT
 *   g  = 0 where f == etaminus
 *   p  = p + (-sign(g)) * step_size
 *   prev = g
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Rprop: 2 prev, 3 step_size */
FO_KERNEL(rprop, 4, 0, D(etaminus) D(etaplus) D(step_size_min) D(step_size_max) I(maximize))
#define FO_IMPL "rprop.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE FO_T FO_FN(rprop_sign)(const FO_T x)
{
    return (FO_T)((x > 0) - (x < 0));
}

FO_INLINE void FO_FN(rprop_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT prev,
                                 FO_T *FO_RESTRICT ss, const int64_t n, const FO_T etaminus, const FO_T etaplus,
                                 const FO_T lo, const FO_T hi, const int maximize)
{
const FO_T gsign = maximize ? (FO_T)-1 : (FO_T)1; /* -g == (-1) * g exactly, NaN included */
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_T gi = gsign * g[i];
        const FO_T prod = gi * prev[i];
        /* torch: etaplus where sign > 0, etaminus where sign < 0, 1 where sign is 0 (sign(NaN) = 0); written
         * as a sum of exclusive terms so that the loop has no branches (each term is exactly 0 or the factor) */
        const FO_T up = (FO_T)(prod > 0), down = (FO_T)(prod < 0);
        const FO_T f = up * etaplus + down * etaminus + ((FO_T)1 - up - down);
        FO_T si = ss[i] * f;
        /* clamp_(min, max): max(x, lo) then min(., hi); NaN stays NaN */
        si = (si < lo) ? lo : si;
        si = (si > hi) ? hi : si;
        ss[i] = si;
        /* where the sign flipped the gradient is dropped (torch: grad[sign.eq(etaminus)] = 0) */
        gi = (down != 0) ? (FO_T)0 : gi;
        const FO_T sgn = (FO_T)(gi > 0) - (FO_T)(gi < 0);
        p[i] = FO_FMA(-sgn, si, p[i]);
        prev[i] = gi;
    }
}

FO_RANGE(rprop)
{
    FO_FN(rprop_loop)(bufs[0], bufs[1], bufs[2],
                      bufs[3], n, (FO_T)h->etaminus, (FO_T)h->etaplus, (FO_T)h->step_size_min,
                      (FO_T)h->step_size_max, h->maximize);
}

FO_NEEDS_FIRST(rprop, 4)

FO_ELEMENTWISE(rprop)
#endif
