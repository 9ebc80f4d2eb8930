/* prodigy.c — Prodigy (Mishchenko & Defazio, ICML 2024), in the order of torch operations of prodigyopt 1.1.x
 * (Prodigy.step); instantiated for float and double by fo_instantiate.h. The NumPy reference:
 * tests/reference_beyond.py (ref_prodigy_step).
 *
 * A step is two passes over every group, because the distance estimate d of the update needs sums over all
 * parameters. Python (fastopt/optim/prodigy.py) computes the scalars in double between them.
 *
 *   pass 1, prodigy_reduce (a reduction, fo_group_reduce.h):       param p IN, grad g IN, exp_avg m INOUT (beta1 > 0),
 *     g' = g + wd * p              (L2 decay: not decouple)  exp_avg_sq v INOUT, s INOUT, p0 IN
 *     sum 0 += g' (p0 - p)         (in double; p0 - p rounded first, as torch.dot(g', p0 - p))
 *     m = m * beta1 + (d (1 - beta1)) * g'                   (mul_, then add_ with alpha: one fma)
 *     v = v * beta2 + ((d^2 (1 - beta2)) * g') * g'           (mul_, then addcmul_: one fma)
 *     s = s * beta3 + w_s * g'     (w_s = (d/d0) dlr, or (d/d0) d with safeguard_warmup)
 *     sum 1 += |s|
 *   pass 2, prodigy (elementwise), with the new d:
 *     p = p + (-wd dlr) * p        (decoupled decay; one fma)
 *     p = p + (c * m) / (sqrt(v) + d eps)    c = -dlr      (addcdiv_)
 *       or p + (c * g') / (sqrt(v) + d eps)  c = -dlr d    (beta1 == 0)
 */
#ifndef FO_T /* compiled as a file: instantiate the bodies below for float and double */
#include "fastopt.h"
/* Prodigy's update, the second of its two passes (the first is the reduction prodigy_reduce, next line):
 * 2 exp_avg (NULL when beta1 == 0), 3 exp_avg_sq, 4 s, 5 p0 (the update reads 0-3); scalars, pass 1: 0 d (1 - beta1),
 * 1 d^2 (1 - beta2), 2 the weight of g in s, 3 beta3; pass 2: 4 the step coefficient (-dlr, or -dlr d when
 * beta1 == 0), 5 d eps, 6 the decoupled decay coefficient -wd dlr */
FO_KERNEL(prodigy, 6, 7, D(beta1) D(beta2) D(weight_decay) I(decouple))
/* Prodigy's first pass: out 0 the sum of g (p0 - p), 1 the sum of |s| after its update */
FO_REDUCER(prodigy_reduce, prodigy, 2)
#define FO_IMPL "prodigy.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the bodies */
#include "fo_group_reduce.h"

#define FO_PRODIGY_L2(h) ((h)->weight_decay != 0 && !(h)->decouple)
#define FO_PRODIGY_ABS(x) _Generic((x), float: fabsf, double: fabs)(x)

FO_INLINE void FO_FN(prodigy_update_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g,
                                          const FO_T *FO_RESTRICT m, const FO_T *FO_RESTRICT v, const int64_t n,
                                          const int has_m, const FO_T wd, const int l2, const FO_T ndec,
                                          const int decoupled, const FO_T coef, const FO_T deps)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T pi = p[i];
        /* exp_avg, or when beta1 == 0 the (L2-decayed) gradient itself */
        const FO_T ui = has_m ? m[i] : (l2 ? FO_FMA(wd, pi, g[i]) : g[i]);
        const FO_T pd = decoupled ? FO_FMA(ndec, pi, pi) : pi;
        p[i] = pd + (coef * ui) / (FO_SQRT(v[i]) + deps);
    }
}

FO_RANGE(prodigy)
{
    const int decoupled = h->weight_decay != 0 && h->decouple, l2 = FO_PRODIGY_L2(h);
    const FO_T wd = (FO_T)h->weight_decay, ndec = (FO_T)s[6], coef = (FO_T)s[4], deps = (FO_T)s[5];
    FO_T *p = bufs[0];
    const FO_T *g = bufs[1], *m = bufs[2], *v = bufs[3];
    /* unswitched: each (exp_avg, decay) combination is its own vectorised loop */
    if (h->beta1 > 0) {
        if (decoupled) FO_FN(prodigy_update_loop)(p, g, m, v, n, 1, wd, 0, ndec, 1, coef, deps);
        else           FO_FN(prodigy_update_loop)(p, g, m, v, n, 1, wd, 0, ndec, 0, coef, deps);
    } else if (l2) {
        FO_FN(prodigy_update_loop)(p, g, NULL, v, n, 0, wd, 1, ndec, 0, coef, deps);
    } else {
        if (decoupled) FO_FN(prodigy_update_loop)(p, g, NULL, v, n, 0, wd, 0, ndec, 1, coef, deps);
        else           FO_FN(prodigy_update_loop)(p, g, NULL, v, n, 0, wd, 0, ndec, 0, coef, deps);
    }
}

static inline int64_t FO_FN(prodigy_needs)(const fo_prodigy_hyper *h)
{
    return h->beta1 > 0 ? FO_FIRST(4) : (FO_FIRST(2) | (1 << 3));
}

FO_ELEMENTWISE(prodigy)

/* Pass 1 over one run, in blocks of FO_PRODIGY_BLOCK elements: first the moments and s (a vectorised loop), then,
 * over the same block while it is in L1, the two sums, element i of the run adding to lane i % FO_REDUCE_LANES
 * (fixed lanes: the same order on every instruction set; a block is a multiple of the lane count). */
#define FO_PRODIGY_BLOCK 1024
FO_INLINE void FO_FN(prodigy_pass1)(const FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m,
                                    FO_T *FO_RESTRICT v, FO_T *FO_RESTRICT sb, const FO_T *FO_RESTRICT p0,
                                    const int64_t n, double *part, const FO_T wd, const int l2, const int has_m,
                                    const FO_T b1, const FO_T w1, const FO_T b2, const FO_T w2, const FO_T b3,
                                    const FO_T ws)
{
    double dot[FO_REDUCE_LANES] = {0}, l1[FO_REDUCE_LANES] = {0};
    for (int64_t b0 = 0; b0 < n; b0 += FO_PRODIGY_BLOCK) {
        const int64_t len = n - b0 < FO_PRODIGY_BLOCK ? n - b0 : FO_PRODIGY_BLOCK;
        const FO_T *pb = p + b0, *gb = g + b0, *p0b = p0 + b0;
        FO_T *vb = v + b0, *sbb = sb + b0, *mb = has_m ? m + b0 : NULL;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) {
            const FO_T gi = l2 ? FO_FMA(wd, pb[i], gb[i]) : gb[i];
            if (has_m)
                mb[i] = FO_FMA(w1, gi, mb[i] * b1);
            vb[i] = FO_FMA(w2 * gi, gi, vb[i] * b2);
            sbb[i] = FO_FMA(ws, gi, sbb[i] * b3);
        }
        const int64_t full = len - len % FO_REDUCE_LANES;
        for (int64_t i0 = 0; i0 < full; i0 += FO_REDUCE_LANES) {
#pragma omp simd
            for (int k = 0; k < FO_REDUCE_LANES; ++k) {
                const int64_t i = i0 + k;
                const FO_T gi = l2 ? FO_FMA(wd, pb[i], gb[i]) : gb[i];
                dot[k] += (double)gi * (double)(p0b[i] - pb[i]);
                l1[k] += (double)FO_PRODIGY_ABS(sbb[i]);
            }
        }
        for (int64_t i = full; i < len; ++i) { /* only in the run's last block */
            const FO_T gi = l2 ? FO_FMA(wd, pb[i], gb[i]) : gb[i];
            dot[i - full] += (double)gi * (double)(p0b[i] - pb[i]);
            l1[i - full] += (double)FO_PRODIGY_ABS(sbb[i]);
        }
    }
    double a = 0.0, b = 0.0;
    for (int k = 0; k < FO_REDUCE_LANES; ++k) {
        a += dot[k];
        b += l1[k];
    }
    part[0] = a;
    part[1] = b;
}

FO_REDUCE_RANGE(prodigy_reduce, prodigy)
{
    const int l2 = FO_PRODIGY_L2(h), has_m = h->beta1 > 0;
    const FO_T wd = (FO_T)h->weight_decay, b1 = (FO_T)h->beta1, b2 = (FO_T)h->beta2;
    const FO_T w1 = (FO_T)s[0], w2 = (FO_T)s[1], ws = (FO_T)s[2], b3 = (FO_T)s[3];
    /* unswitched: each (L2 decay, exp_avg) combination is its own loop */
    if (has_m) {
        if (l2) FO_FN(prodigy_pass1)(bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5], n, part, wd, 1, 1, b1, w1, b2, w2, b3, ws);
        else    FO_FN(prodigy_pass1)(bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5], n, part, wd, 0, 1, b1, w1, b2, w2, b3, ws);
    } else {
        if (l2) FO_FN(prodigy_pass1)(bufs[0], bufs[1], NULL, bufs[3], bufs[4], bufs[5], n, part, wd, 1, 0, b1, w1, b2, w2, b3, ws);
        else    FO_FN(prodigy_pass1)(bufs[0], bufs[1], NULL, bufs[3], bufs[4], bufs[5], n, part, wd, 0, 0, b1, w1, b2, w2, b3, ws);
    }
}

static inline int64_t FO_FN(prodigy_reduce_needs)(const fo_prodigy_hyper *h)
{
    return h->beta1 > 0 ? FO_FIRST(6) : (FO_FIRST(2) | (int64_t)0x38); /* 0, 1, 3, 4, 5 */
}

FO_REDUCTION(prodigy_reduce, prodigy, 2)
#undef FO_PRODIGY_L2
#undef FO_PRODIGY_ABS
#undef FO_PRODIGY_BLOCK
#endif
