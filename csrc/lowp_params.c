/* lowp_params.c — Adam / AdamW on float16 or bfloat16 parameters with float32 state (issue 14, item 1).
 *
 * Buffers (fastopt.h, FO_ADAM_LP_FIELDS): 0 exp_avg, 1 exp_avg_sq (float32 INOUT; position 0 is a float32 array so
 * the table's dtype is float32), 2 the parameter's 16-bit pattern (uint16 INOUT: float16 when param_kind is
 * FO_LP_F16, bfloat16 when FO_LP_BF16), 3 the gradient (IN: float32 when grad_f32, else the parameter's 16-bit
 * format), 4 master (float32 INOUT, NULL unless master weights are kept).
 * Scalars: 0 step_size = lr / (1 - beta1^t), 1 sqrt(1 - beta2^t), 2 the step count t, 3 the tensor's index in the
 * optimizer (both whole numbers, for the stochastic-rounding hash).
 *
 * Each element: p = master if kept, else the parameter widened to float32 (exact); g widened the same way; then
 * exactly adam.c's float32 arithmetic in torch's order; master = p_new if kept; the parameter = p_new rounded to
 * nearest-even (on the bits, fo_f32_to_f16 / fo_lp_round: float16 as IEEE's conversion, NaN becoming 0x7E00 with
 * its sign; bfloat16 NaN stays a quiet NaN with its top payload) or, with stochastic rounding (bfloat16 only), (bits(p_new) + r) >> 16 for finite p_new, where
 * r is the top 16 bits of splitmix64(base + (element index + 1) * golden), base = splitmix64(splitmix64(seed +
 * t * golden) ^ tensor index): a counter-based hash of (seed, step, tensor, element), so the result does not depend
 * on which thread handles which chunk. */
#include <string.h>

#include "fastopt.h"
/* Adam / AdamW on float16 / bfloat16 params with float32 state: 0 exp_avg, 1 exp_avg_sq (float32),
 * 2 param (uint16 bits of param_kind FO_LP_F16 / FO_LP_BF16), 3 grad (float32 if grad_f32, else param's format),
 * 4 master (float32, NULL unless master weights); scalars 0, 1 as Adam's, 2 step count, 3 tensor index
 * (stochastic rounding's hash with seed) */
FO_KERNEL(adam_lp, 5, 4, D(lr) D(beta1) D(beta2) D(eps) D(weight_decay) I(maximize) I(decoupled_weight_decay)
    I(param_kind) I(grad_f32) I(stochastic) I(seed))
#include "fo_adam_f32.h"

#define FO_GOLDEN 0x9E3779B97F4A7C15ull

FO_INLINE uint64_t fo_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef union { float f; uint32_t u; } fo_lp_bits;

/* c ? a : b on bits, as masks (the vectoriser if-converts these; nested ternaries it leaves as branches) */
FO_INLINE uint32_t fo_lp_sel(int c, uint32_t a, uint32_t b)
{
    const uint32_t m = 0u - (uint32_t)(c != 0);
    return (a & m) | (b & ~m);
}

/* float16 bits -> float32, exact, in integer and exact float operations only (so the loops vectorise on any ISA
 * and no compiler half type is needed): normal and Inf/NaN by moving the exponent; zero and subnormal h as
 * mantissa * 2^-24 (exact: an integer below 2^10 times a power of two). */
FO_INLINE float fo_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7FFFu, e = em >> 10;
    fo_lp_bits x, sub;
    x.u = (em << 13) + fo_lp_sel(e == 31, (uint32_t)(255 - 31) << 23, (uint32_t)(127 - 15) << 23);
    sub.f = (float)(int32_t)em * 5.9604644775390625e-08f;
    x.u = fo_lp_sel(e == 0, sub.u, x.u) | sign;
    return x.f;
}

/* float32 -> float16 bits, nearest-even (IEEE conversion; overflow to Inf; NaN -> quiet NaN 0x7E00 with its sign).
 * Normal range: add half an ulp minus one plus the kept lsb, shift; subnormal range: one float addition of 0.5
 * (the float adder rounds to nearest-even at the subnormal spacing 2^-24), then subtract its bits. */
FO_INLINE uint16_t fo_f32_to_f16(float v)
{
    fo_lp_bits x, d;
    x.f = v;
    const uint32_t sign = x.u & 0x80000000u, u = x.u ^ sign;
    const uint32_t big = fo_lp_sel(u > 0x7F800000u, 0x7E00u, 0x7C00u);
    d.u = u;
    d.f = d.f + 0.5f;
    const uint32_t small = d.u - 0x3F000000u;
    const uint32_t normal = (u + ((uint32_t)(15 - 127) << 23) + 0xFFFu + ((u >> 13) & 1u)) >> 13;
    const uint32_t o = fo_lp_sel(u >= 0x47800000u, big, fo_lp_sel(u < 0x38800000u, small, normal));
    return (uint16_t)(o | (sign >> 16));
}

FO_INLINE float fo_lp_widen(uint16_t b, const int f16)
{
    if (f16)
        return fo_f16_to_f32(b);
    fo_lp_bits x;
    x.u = (uint32_t)b << 16;
    return x.f;
}

FO_INLINE uint16_t fo_lp_round(float v, const int f16, const int stochastic, uint64_t r)
{
    if (f16)
        return fo_f32_to_f16(v);
    fo_lp_bits x;
    x.f = v;
    const uint32_t u = x.u;
    const uint32_t nearest = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet = (u >> 16) | 0x0040u; /* NaN: quiet, sign and top payload kept */
    uint32_t out = nearest;
    if (stochastic) { /* finite values only: +-Inf stays Inf (nearest), NaN quiet */
        const uint32_t up = (uint32_t)(((uint64_t)u + (r >> 48)) >> 16);
        out = (u & 0x7F800000u) != 0x7F800000u ? up : nearest;
    }
    return (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : out);
}

typedef fo_adam_f32c fo_lp_consts;

/* The loop over elements [0, n) of one chunk starting at element `first` of its tensor; the flags f16, gf32,
 * master and stochastic are compile-time constants at each call (unswitched below). */
FO_INLINE void fo_adam_lp_loop(const fo_lp_consts c, float *FO_RESTRICT m, float *FO_RESTRICT v,
                               uint16_t *FO_RESTRICT p, const void *gp, float *FO_RESTRICT mw, const int64_t n,
                               const int maximize, const int l2, const int small_w, const int f16,
                               const int gf32, const int master, const int stochastic, const uint64_t base,
                               const int64_t first)
{
    const float *FO_RESTRICT gf = (const float *)gp;
    const uint16_t *FO_RESTRICT gh = (const uint16_t *)gp;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        float pi = master ? mw[i] : fo_lp_widen(p[i], f16);
        const float g = gf32 ? gf[i] : fo_lp_widen(gh[i], f16);
        const float gi = FO_GRAD(g, pi, c.wd, maximize, l2);
        pi = pi * c.decay;
        const float mi = FO_LERP(m[i], gi, c.w1, small_w);
        const float vi = FO_FMA(c.w2 * gi, gi, v[i] * c.b2);
        const float denom = FO_SQRT(vi) / c.bc2s + c.eps;
        m[i] = mi;
        v[i] = vi;
        pi = pi + (c.neg_step * mi) / denom;
        if (master)
            mw[i] = pi;
        const uint64_t r = stochastic ? fo_mix64(base + (uint64_t)(first + i + 1) * FO_GOLDEN) : 0;
        p[i] = fo_lp_round(pi, f16, stochastic, r);
    }
}

FO_INLINE void fo_adam_lp_item(const fo_tensor_list *t, const fo_adam_lp_hyper *h, int64_t w)
{
    const fo_work *it = &t->work[w];
    void *const *b = t->bufs + it->tensor * t->n_bufs;
    const double *s = t->scalars + it->tensor * t->n_scalars;
    fo_lp_consts c;
    FO_ADAM_F32_CONSTS(c, h, s);
    const int maximize = h->maximize != 0, l2 = FO_L2(h), small_w = fo_small_weight(c.w1);
    const int64_t begin = it->begin, n = it->end - it->begin;
    float *m = (float *)b[0] + begin, *v = (float *)b[1] + begin;
    uint16_t *p = (uint16_t *)b[2] + begin;
    const int gf32 = h->grad_f32 != 0;
    const void *g = gf32 ? (const void *)((const float *)b[3] + begin) : (const void *)((const uint16_t *)b[3] + begin);
    float *mw = b[4] != NULL ? (float *)b[4] + begin : NULL;
    const int stochastic = h->stochastic != 0;
    const uint64_t base = fo_mix64(fo_mix64((uint64_t)(uint32_t)h->seed + (uint64_t)s[2] * FO_GOLDEN) ^ (uint64_t)s[3]);
    /* every flag a compile-time constant in its own loop (a runtime flag in the loop stops it vectorising) */
#define FO_LP3_(x, y, z, f16, gf, ms, st) \
    fo_adam_lp_loop(c, m, v, p, g, mw, n, x, y, z, f16, gf, ms, st, base, begin)
#define FO_LP_(f16, gf, ms, st)                                                                  \
    do {                                                                                         \
        if (maximize) {                                                                          \
            if (l2) { if (small_w) FO_LP3_(1, 1, 1, f16, gf, ms, st); else FO_LP3_(1, 1, 0, f16, gf, ms, st); } \
            else    { if (small_w) FO_LP3_(1, 0, 1, f16, gf, ms, st); else FO_LP3_(1, 0, 0, f16, gf, ms, st); } \
        } else {                                                                                 \
            if (l2) { if (small_w) FO_LP3_(0, 1, 1, f16, gf, ms, st); else FO_LP3_(0, 1, 0, f16, gf, ms, st); } \
            else    { if (small_w) FO_LP3_(0, 0, 1, f16, gf, ms, st); else FO_LP3_(0, 0, 0, f16, gf, ms, st); } \
        }                                                                                        \
    } while (0)
    if (h->param_kind == FO_LP_F16) {
        if (mw != NULL) { if (gf32) FO_LP_(1, 1, 1, 0); else FO_LP_(1, 0, 1, 0); }
        else            { if (gf32) FO_LP_(1, 1, 0, 0); else FO_LP_(1, 0, 0, 0); }
    } else if (stochastic) {
        if (mw != NULL) { if (gf32) FO_LP_(0, 1, 1, 1); else FO_LP_(0, 0, 1, 1); }
        else            { if (gf32) FO_LP_(0, 1, 0, 1); else FO_LP_(0, 0, 0, 1); }
    } else {
        if (mw != NULL) { if (gf32) FO_LP_(0, 1, 1, 0); else FO_LP_(0, 0, 1, 0); }
        else            { if (gf32) FO_LP_(0, 1, 0, 0); else FO_LP_(0, 0, 0, 0); }
    }
#undef FO_LP_
#undef FO_LP3_
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(FO_NO_DISPATCH)
static FO_TARGET_AVX512 void
fo_adam_lp_avx512(const fo_tensor_list *t, const fo_adam_lp_hyper *h, int64_t w)
{ fo_adam_lp_item(t, h, w); }
static FO_TARGET_AVX2 void
fo_adam_lp_avx2(const fo_tensor_list *t, const fo_adam_lp_hyper *h, int64_t w)
{ fo_adam_lp_item(t, h, w); }
#define FO_LP_PICK(isa) ((isa) == 2 ? fo_adam_lp_avx512 : (isa) == 1 ? fo_adam_lp_avx2 : fo_adam_lp_base)
#else
#define FO_LP_PICK(isa) fo_adam_lp_base
#endif
static void fo_adam_lp_base(const fo_tensor_list *t, const fo_adam_lp_hyper *h, int64_t w)
{ fo_adam_lp_item(t, h, w); }

int fo_adam_lp_f32(const fo_tensor_list *t, const fo_adam_lp_hyper *h)
{
    if (t == NULL || h == NULL)
        return FO_ERR_ARG;
    if ((h->param_kind != FO_LP_F16 && h->param_kind != FO_LP_BF16) || (h->stochastic && h->param_kind != FO_LP_BF16))
        return FO_ERR_ARG;
    const int rc = fo_kernel_check(t, (uint32_t)FO_FIRST(4), fo_adam_lp_n_scalars);
    if (rc != FO_OK)
        return rc;
    const int isa = fo_isa();
    FO_RUN_ITEMS(t, FO_LP_PICK(isa), h);
    return FO_OK;
}

int fo_adam_lp_f64(const fo_tensor_list *t, const fo_adam_lp_hyper *h)
{
    (void)t;
    (void)h;
    return FO_ERR_ARG; /* the state of 16-bit parameters is float32 */
}
