/* prodigy.c — Prodigy (Mishchenko & Defazio, ICML 2024), in the order of torch operations of prodigyopt 1.1.x
 * (Prodigy.step); instantiated for float and double by fo_instantiate.h. The NumPy reference:
 * tests/reference_beyond.py (ref_prodigy_step).
 *
 * A step is two passes over every group, because the distance estimate d of the update needs sums over all
 * parameters. Python (fastopt/optim/prodigy.py) computes the scalars in double between them. The moments use the
 * old d, so they are updated in pass 2 (the same operations on the same values as upstream's order, so the same
 * bits): pass 1 then moves only what the sums need, 12 values per element over both passes instead of 13.
 *
 *   pass 1, prodigy_reduce (a reduction, fo_group_reduce.h):       param p IN, grad g IN, s INOUT, p0 IN
 *     g' = g + wd * p              (L2 decay: not decouple)
 *     sum 0 += g' (p0 - p)         (in double; p0 - p rounded first, as torch.dot(g', p0 - p))
 *     s = s * beta3 + w_s * g'     (w_s = (d/d0) dlr, or (d/d0) d with safeguard_warmup)
 *     sum 1 += |s|
 *   pass 2, prodigy (elementwise), with the new d:     param p INOUT, grad g IN, exp_avg m INOUT (beta1 > 0),
 *     g' as in pass 1                                  exp_avg_sq v INOUT
 *     m = m * beta1 + (d (1 - beta1)) * g'                   (mul_, then add_ with alpha: one fma; old d)
 *     v = v * beta2 + ((d^2 (1 - beta2)) * g') * g'           (mul_, then addcmul_: one fma; old d)
 *     p = p + (-wd dlr) * p        (decoupled decay; one fma)
 *     p = p + (c * m) / (sqrt(v) + d eps)    c = -dlr      (addcdiv_)
 *       or p + (c * g') / (sqrt(v) + d eps)  c = -dlr d    (beta1 == 0)
 *   Scalar 3 (beta3 in pass 1) is pass 2's mode, written by Python between the passes: 0 the moments and the
 *   update; 1 the moments only (every gradient zero, sum 1 == 0: upstream stops after the moments); 2 the update
 *   only (a group with lr 0: upstream updates no moment there, but its parameters take the decay and step).
 */
#ifndef FO_T /* compiled as a file: instantiate the bodies below for float and double */
#include "fastopt.h"
/* Prodigy's update, the second of its two passes (the first is the reduction prodigy_reduce, next line):
 * 2 exp_avg (NULL when beta1 == 0), 3 exp_avg_sq, 4 s, 5 p0 (the update reads 0-3); scalars, pass 1: 2 the weight
 * of g in s, 3 beta3; pass 2: 0 d (1 - beta1), 1 d^2 (1 - beta2) (the moments), 3 the mode (0 moments and update,
 * 1 moments only, 2 update only), 4 the step coefficient (-dlr, or -dlr d when beta1 == 0), 5 d eps, 6 the
 * decoupled decay coefficient -wd dlr */
FO_KERNEL(prodigy, 6, 7, D(beta1) D(beta2) D(weight_decay) I(decouple))
/* Prodigy's first pass: out 0 the sum of g (p0 - p), 1 the sum of |s| after its update */
FO_REDUCER(prodigy_reduce, prodigy, 2)
#define FO_IMPL "prodigy.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the bodies */
#include "fo_group_reduce.h"

#define FO_PRODIGY_L2(h) ((h)->weight_decay != 0 && !(h)->decouple)
#define FO_PRODIGY_ABS(x) _Generic((x), float: fabsf, double: fabs)(x)

FO_INLINE void FO_FN(prodigy_update_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m,
                                          FO_T *FO_RESTRICT v, const int64_t n, const int has_m, const FO_T wd,
                                          const int l2, const FO_T b1, const FO_T w1, const FO_T b2, const FO_T w2,
                                          const FO_T ndec, const int decoupled, const FO_T coef, const FO_T deps,
                                          const int mode)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T pi = p[i];
        const FO_T gi = l2 ? FO_FMA(wd, pi, g[i]) : g[i];
        FO_T vi = v[i], ui = has_m ? m[i] : gi; /* exp_avg, or when beta1 == 0 the (L2-decayed) gradient */
        if (mode != 2) {
            vi = FO_FMA(w2 * gi, gi, vi * b2);
            v[i] = vi;
            if (has_m) {
                ui = FO_FMA(w1, gi, ui * b1);
                m[i] = ui;
            }
        }
        if (mode != 1) {
            const FO_T pd = decoupled ? FO_FMA(ndec, pi, pi) : pi;
            p[i] = pd + (coef * ui) / (FO_SQRT(vi) + deps);
        }
    }
}

FO_RANGE(prodigy)
{
    const int decoupled = h->weight_decay != 0 && h->decouple, l2 = FO_PRODIGY_L2(h);
    const FO_T wd = (FO_T)h->weight_decay, b1 = (FO_T)h->beta1, b2 = (FO_T)h->beta2;
    const FO_T w1 = (FO_T)s[0], w2 = (FO_T)s[1], ndec = (FO_T)s[6], coef = (FO_T)s[4], deps = (FO_T)s[5];
    const int mode = s[3] == 1 ? 1 : s[3] == 2 ? 2 : 0;
    FO_T *p = bufs[0], *m = bufs[2], *v = bufs[3];
    const FO_T *g = bufs[1];
    /* unswitched: each (exp_avg, decay, mode) combination is its own vectorised loop */
#define FO_PRODIGY_UPDATE(has_m_, l2_, dec_, mode_) \
    FO_FN(prodigy_update_loop)(p, g, (has_m_) ? m : NULL, v, n, has_m_, wd, l2_, b1, w1, b2, w2, ndec, dec_, coef, \
                               deps, mode_)
#define FO_PRODIGY_MODES(has_m_, l2_, dec_)                                                             \
    do {                                                                                                \
        if (mode == 0)      FO_PRODIGY_UPDATE(has_m_, l2_, dec_, 0);                                    \
        else if (mode == 1) FO_PRODIGY_UPDATE(has_m_, l2_, dec_, 1);                                    \
        else                FO_PRODIGY_UPDATE(has_m_, l2_, dec_, 2);                                    \
    } while (0)
    if (h->beta1 > 0) {
        if (l2)             FO_PRODIGY_MODES(1, 1, 0);
        else if (decoupled) FO_PRODIGY_MODES(1, 0, 1);
        else                FO_PRODIGY_MODES(1, 0, 0);
    } else {
        if (l2)             FO_PRODIGY_MODES(0, 1, 0);
        else if (decoupled) FO_PRODIGY_MODES(0, 0, 1);
        else                FO_PRODIGY_MODES(0, 0, 0);
    }
#undef FO_PRODIGY_MODES
#undef FO_PRODIGY_UPDATE
}

static inline int64_t FO_FN(prodigy_needs)(const fo_prodigy_hyper *h)
{
    return h->beta1 > 0 ? FO_FIRST(4) : (FO_FIRST(2) | (1 << 3));
}

FO_ELEMENTWISE(prodigy)

/* acc + a b in double, as upstream's dot product (with the sums taken in double). For float the product of two
 * floats is exact in double (24 + 24 significant bits), so one fma rounds once, as the multiply and add do: the
 * same bits, and on x86 the sum moves from the add pipes (which the float -> double widenings also need) to the fma
 * pipes. For double the product rounds, so it is the multiply and the add. */
FO_INLINE double FO_FN(prodigy_dot_add)(const double acc, const FO_T a, const FO_T b)
{
    return sizeof(FO_T) == sizeof(float) ? fma((double)a, (double)b, acc) : acc + (double)a * (double)b;
}

/* Pass 1 over one work item, in one loop: s, then from the same registers the two sums, fastopt's one reduction
 * (fo_sum.h): element i of the item into lane i % FO_SUM_LANES, the lanes folded by fo_sum_fold. One loop reads
 * each input once per element (no second read of a block from L1) and keeps the 2 x 2 lane accumulators (16
 * doubles per sum: two AVX-512 registers, independent chains) in registers. */
FO_INLINE void FO_FN(prodigy_pass1)(const FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT sb,
                                    const FO_T *FO_RESTRICT p0, const int64_t n, double *part, const FO_T wd,
                                    const int l2, const FO_T b3, const FO_T ws)
{
    double dot[FO_SUM_LANES] = {0}, l1[FO_SUM_LANES] = {0};
    FO_SUM_LOOP(n, i, k, {
        const FO_T pi = p[i];
        const FO_T gi = l2 ? FO_FMA(wd, pi, g[i]) : g[i];
        const FO_T si = FO_FMA(ws, gi, sb[i] * b3);
        sb[i] = si;
        dot[k] = FO_FN(prodigy_dot_add)(dot[k], gi, p0[i] - pi);
        l1[k] += (double)FO_PRODIGY_ABS(si);
    });
    part[0] = fo_sum_fold(dot);
    part[1] = fo_sum_fold(l1);
}

FO_REDUCE_RANGE(prodigy_reduce, prodigy)
{
    const int l2 = FO_PRODIGY_L2(h);
    const FO_T wd = (FO_T)h->weight_decay, ws = (FO_T)s[2], b3 = (FO_T)s[3];
    /* unswitched: with and without L2 decay, each its own loop */
    if (l2) FO_FN(prodigy_pass1)(bufs[0], bufs[1], bufs[4], bufs[5], n, part, wd, 1, b3, ws);
    else    FO_FN(prodigy_pass1)(bufs[0], bufs[1], bufs[4], bufs[5], n, part, wd, 0, b3, ws);
}

static inline int64_t FO_FN(prodigy_reduce_needs)(const fo_prodigy_hyper *h)
{
    (void)h;
    return FO_FIRST(2) | (int64_t)0x30; /* 0 p, 1 g, 4 s, 5 p0 */
}

FO_REDUCTION(prodigy_reduce, prodigy, 2)
#undef FO_PRODIGY_L2
#undef FO_PRODIGY_ABS
#endif
