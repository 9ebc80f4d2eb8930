/* lowp_params.c — Adam / AdamW, SGD, RMSprop and Lion on float16 or bfloat16 parameters with float32 state
 * (issue 14, item 1).
 *
 * Layouts (fastopt.h): adam_lp: 0 exp_avg, 1 exp_avg_sq (float32), 2 the parameter's 16-bit pattern (uint16: float16
 * when param_kind is FO_LP_F16, bfloat16 when FO_LP_BF16), 3 the gradient (float32 when grad_f32, else the
 * parameter's 16-bit format), 4 master (float32, NULL unless master weights are kept); scalars 0 step_size, 1
 * sqrt(1 - beta2^t), 2 the step count t, 3 the tensor's index in the optimizer. sgd_lp, rmsprop_lp, lion_lp: 0 the
 * parameter's bits, 1 the gradient, then the float32 kernel's state buffers in that kernel's positions, then master;
 * scalars: the float32 kernel's, then t and the tensor index.
 *
 * The arithmetic is the float32 kernel's own: this file includes adam.c, sgd.c, rmsprop.c and lion.c for float and
 * calls their range functions (the loops fo_adam_f32 etc. run) on staged blocks of FO_LP_STAGE elements: the block's
 * parameter widened to float32 (exact) in a local buffer (or the master copy itself), the gradient widened likewise
 * (or read in place when it is float32), the state in place. So an element's float32 result is bit for bit the
 * float32 kernel's on the widened values (SGD and Lion on bfloat16 with round to nearest: one fused loop of the same
 * operations instead, csrc/fo_bf16.h; Adam on bfloat16: fo_adam_bf16_item below). Then the parameter = the result
 * rounded to nearest-even (float16 as IEEE's
 * conversion, NaN becoming 0x7E00 with its sign; bfloat16 NaN stays a quiet NaN with its top payload) or, with
 * stochastic rounding (bfloat16 only), (bits(p_new) + r) >> 16 for finite p_new, where r, for element e, is bits
 * [16 (e % 4), 16 (e % 4) + 16) of splitmix64(base + (e / 4 + 1) * golden) (one hash for four elements), base = splitmix64(splitmix64(seed + t * golden) ^ tensor index): a
 * counter-based hash of (seed, step, tensor, element), so the result does not depend on which thread handles which
 * chunk. The conversions run as vector loops: float16 through F16C (vcvtph2ps / vcvtps2ph with round-to-nearest-even,
 * their only differences from the bit-exact scalar code, a signalling NaN's quiet bit and a NaN's payload, patched
 * back) on AVX2 / AVX-512 machines, bfloat16 and the hash as integer loops the compiler vectorises. */
#include <string.h>

#include "fastopt.h"
/* Adam / AdamW on float16 / bfloat16 params with float32 state: 0 exp_avg, 1 exp_avg_sq (float32),
 * 2 param (uint16 bits of param_kind FO_LP_F16 / FO_LP_BF16), 3 grad (float32 if grad_f32, else param's format),
 * 4 master (float32, NULL unless master weights); scalars 0, 1 as Adam's, 2 step count, 3 tensor index
 * (stochastic rounding's hash with seed) */
FO_KERNEL(adam_lp, 5, 4, D(lr) D(beta1) D(beta2) D(eps) D(weight_decay) I(maximize) I(decoupled_weight_decay)
    I(param_kind) I(grad_f32) I(stochastic) I(seed))
/* SGD, RMSprop and Lion on float16 / bfloat16 params with float32 state: 0 param (uint16 bits of param_kind),
 * 1 grad (float32 if grad_f32, else the param's format), then the float32 kernel's state buffers in its positions
 * (float32), then master (float32, NULL unless master weights); the hyper-parameters are the float32 kernel's
 * (sgd.c, rmsprop.c, lion.c: the same fields in the same order, so the prefix of the struct is theirs), then
 * param_kind, grad_f32, stochastic, seed; scalars: the float32 kernel's, then the step count and the tensor index. */
FO_KERNEL(sgd_lp, 4, 3, D(lr) D(momentum) D(dampening) D(weight_decay) I(nesterov) I(maximize)
    I(param_kind) I(grad_f32) I(stochastic) I(seed))
FO_KERNEL(rmsprop_lp, 6, 2, D(lr) D(alpha) D(eps) D(weight_decay) D(momentum) I(centered) I(maximize)
    I(param_kind) I(grad_f32) I(stochastic) I(seed))
FO_KERNEL(lion_lp, 4, 2, D(lr) D(beta1) D(beta2) D(weight_decay) I(maximize)
    I(param_kind) I(grad_f32) I(stochastic) I(seed))
#include "fo_adam_f32.h"
#include "fo_bf16.h"

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

FO_INLINE uint16_t fo_lp_round(float v, const int f16, const int stochastic, const uint32_t r16)
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
        const uint32_t up = (u + r16) >> 16; /* finite: u + r16 < 2^32 (|u| <= 0x7F7FFFFF, sign bit 2^31) */
        out = (u & 0x7F800000u) != 0x7F800000u ? up : nearest;
    }
    return (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : out);
}


/* The float32 kernels' range functions (adam_range_f32, sgd_range_f32, ...): the arithmetic of every 16-bit
 * kernel below. */
#include "fo_f32_bodies.h"

enum { FO_LP_STAGE = 256 }; /* elements per staged block: 2 x 4 KiB of float32 scratch on the stack, in L1 */

/* Stochastic rounding's random bits for elements [first, first + n) of a tensor (n <= FO_LP_STAGE): element e takes
 * the 16 bits at position 16 * (e % 4) of h(e / 4) = splitmix64(base + (e / 4 + 1) * golden), so one 64-bit hash
 * serves four elements. */
FO_INLINE void fo_lp_random16(uint16_t *FO_RESTRICT r16, const uint64_t base, const int64_t first, const int64_t n)
{
    uint64_t h[FO_LP_STAGE / 4 + 2];
    const int64_t q0 = first >> 2, nq = ((first + n + 3) >> 2) - q0, shift = first & 3;
#pragma omp simd
    for (int64_t q = 0; q < nq; ++q)
        h[q] = fo_mix64(base + (uint64_t)(q0 + q + 1) * FO_GOLDEN);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(r16, (const unsigned char *)h + 2 * shift, (size_t)(2 * n)); /* bits 16 j of h[q]: the j-th uint16 */
#else
    for (int64_t i = 0; i < n; ++i) {
        const int64_t e = shift + i;
        r16[i] = (uint16_t)(h[e >> 2] >> (16 * (e & 3)));
    }
#endif
}

/* ---- Vector conversions -------------------------------------------------------------------------------------- */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(FO_NO_DISPATCH)
#include <immintrin.h>
#define FO_LP_DISPATCH 1
#define FO_LP_TARGET_F16C __attribute__((target("avx2,fma,f16c")))
#define FO_LP_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,f16c")))

/* float16 bits -> float32 with vcvtph2ps, 8 at a time; the same bits as fo_f16_to_f32 (which keeps a signalling
 * NaN signalling: the hardware sets its quiet bit, cleared again here). */
static FO_LP_TARGET_F16C void fo_lp_f16_widen_f16c(const uint16_t *FO_RESTRICT in, float *FO_RESTRICT out, int64_t n)
{
    const __m256i em = _mm256_set1_epi32(0x7E00), inf = _mm256_set1_epi32(0x7C00), low = _mm256_set1_epi32(0x01FF);
    const __m256i qbit = _mm256_set1_epi32(0x00400000), zero = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(in + i));
        const __m256i h32 = _mm256_cvtepu16_epi32(h);
        const __m256i snan = _mm256_andnot_si256(_mm256_cmpeq_epi32(_mm256_and_si256(h32, low), zero),
                                                 _mm256_cmpeq_epi32(_mm256_and_si256(h32, em), inf));
        const __m256i f = _mm256_castps_si256(_mm256_cvtph_ps(h));
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_and_si256(snan, qbit), f)));
    }
    for (; i < n; ++i)
        out[i] = fo_f16_to_f32(in[i]);
}

/* float32 -> float16 bits with vcvtps2ph, round to nearest-even, 8 at a time; the same bits as fo_f32_to_f16
 * (whose NaN is 0x7E00 with the sign: the hardware keeps the top payload bits, replaced here). */
static FO_LP_TARGET_F16C void fo_lp_f16_narrow_f16c(const float *FO_RESTRICT in, uint16_t *FO_RESTRICT out, int64_t n)
{
    const __m128i mag = _mm_set1_epi16(0x7FFF), inf = _mm_set1_epi16(0x7C00);
    const __m128i sign = _mm_set1_epi16((short)0x8000), canon = _mm_set1_epi16(0x7E00);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m128i nan = _mm_cmpgt_epi16(_mm_and_si128(h, mag), inf);
        h = _mm_blendv_epi8(h, _mm_or_si128(_mm_and_si128(h, sign), canon), nan);
        _mm_storeu_si128((__m128i *)(out + i), h);
    }
    for (; i < n; ++i)
        out[i] = fo_f32_to_f16(in[i]);
}
/* The same two conversions 16 at a time with AVX-512 (vcvtph2ps / vcvtps2ph on zmm, the patches as masks). */
static FO_LP_TARGET_AVX512 void fo_lp_f16_widen_avx512(const uint16_t *FO_RESTRICT in, float *FO_RESTRICT out,
                                                       int64_t n)
{
    const __m512i em = _mm512_set1_epi32(0x7E00), inf = _mm512_set1_epi32(0x7C00), low = _mm512_set1_epi32(0x01FF);
    const __m512i keep = _mm512_set1_epi32(~0x00400000);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)(in + i));
        const __m512i h32 = _mm512_cvtepu16_epi32(h);
        const __mmask16 snan = _mm512_cmpeq_epi32_mask(_mm512_and_si512(h32, em), inf) & _mm512_test_epi32_mask(h32, low);
        const __m512i f = _mm512_castps_si512(_mm512_cvtph_ps(h));
        _mm512_storeu_si512((void *)(out + i), _mm512_mask_and_epi32(f, snan, f, keep));
    }
    fo_lp_f16_widen_f16c(in + i, out + i, n - i);
}

static FO_LP_TARGET_AVX512 void fo_lp_f16_narrow_avx512(const float *FO_RESTRICT in, uint16_t *FO_RESTRICT out,
                                                        int64_t n)
{
    const __m256i sign = _mm256_set1_epi16((short)0x8000), canon = _mm256_set1_epi16(0x7E00);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(in + i);
        const __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        _mm256_storeu_si256((__m256i *)(out + i),
                            _mm256_mask_blend_epi16(nan, h, _mm256_or_si256(_mm256_and_si256(h, sign), canon)));
    }
    fo_lp_f16_narrow_f16c(in + i, out + i, n - i);
}
#endif

/* n 16-bit values -> float32 (exact); f16c: the F16C path may be used (the caller's ISA has it) */
FO_INLINE void fo_lp_widen_n(const uint16_t *FO_RESTRICT in, float *FO_RESTRICT out, const int64_t n, const int f16,
                             const int f16c)
{
#ifdef FO_LP_DISPATCH
    if (f16 && f16c) { /* 1: F16C on ymm, 2: AVX-512 */
        if (f16c == 2)
            fo_lp_f16_widen_avx512(in, out, n);
        else
            fo_lp_f16_widen_f16c(in, out, n);
        return;
    }
#else
    (void)f16c;
#endif
    if (f16) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            out[i] = fo_f16_to_f32(in[i]);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            out[i] = fo_lp_widen(in[i], 0);
    }
}

/* n float32 -> 16-bit values of the parameter; `first`: the tensor index of in[0] (stochastic rounding's counter) */
FO_INLINE void fo_lp_narrow_n(const float *FO_RESTRICT in, uint16_t *FO_RESTRICT out, const int64_t n, const int f16,
                              const int stochastic, const uint64_t base, const int64_t first, const int f16c)
{
    if (f16) {
#ifdef FO_LP_DISPATCH
        if (f16c) {
            if (f16c == 2)
                fo_lp_f16_narrow_avx512(in, out, n);
            else
                fo_lp_f16_narrow_f16c(in, out, n);
            return;
        }
#else
        (void)f16c;
#endif
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            out[i] = fo_f32_to_f16(in[i]);
    } else if (stochastic) {
        uint16_t r16[FO_LP_STAGE];
        fo_lp_random16(r16, base, first, n);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            out[i] = fo_lp_round(in[i], 0, 1, r16[i]);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
            out[i] = fo_lp_round(in[i], 0, 0, 0);
    }
}

/* ---- The staged driver ---------------------------------------------------------------------------------------- */
enum { FO_LPA_ADAM = 0, FO_LPA_SGD = 1, FO_LPA_RMSPROP = 2, FO_LPA_LION = 3 };

#define FO_LP_COPY_(S, x) (S).x = h->x;

/* One work item of algorithm `algo` (a constant at every call, so the switches fold): hyper `hv`. */
FO_INLINE void fo_adam_bf16_item(const fo_tensor_list *t, const fo_adam_lp_hyper *h, int64_t w, int f16c);

FO_INLINE void fo_lp_item(const int algo, const fo_tensor_list *t, const void *hv, const int64_t w, const int f16c)
{
    if (algo == FO_LPA_ADAM && ((const fo_adam_lp_hyper *)hv)->param_kind == FO_LP_BF16) {
        fo_adam_bf16_item(t, (const fo_adam_lp_hyper *)hv, w, f16c);
        return;
    }
    const fo_work *it = &t->work[w];
    void *const *b = t->bufs + it->tensor * t->n_bufs;
    const double *s = t->scalars + it->tensor * t->n_scalars;
    const int64_t begin = it->begin, n = it->end - it->begin;
    fo_adam_hyper ah;
    fo_sgd_hyper sh;
    fo_rmsprop_hyper rh;
    fo_lion_hyper lh;
    int kind = 0, gf32 = 0, stochastic = 0, seed = 0;
    int64_t ip = 0, ig = 1, im = 0, is = 0; /* positions of param, grad, master; first of step and tensor index */
    if (algo == FO_LPA_ADAM) {
        const fo_adam_lp_hyper *h = (const fo_adam_lp_hyper *)hv;
        ah.lr = h->lr, ah.beta1 = h->beta1, ah.beta2 = h->beta2, ah.eps = h->eps, ah.weight_decay = h->weight_decay;
        ah.amsgrad = 0, ah.maximize = h->maximize, ah.decoupled_weight_decay = h->decoupled_weight_decay;
        kind = h->param_kind, gf32 = h->grad_f32, stochastic = h->stochastic, seed = h->seed;
        ip = 2, ig = 3, im = 4, is = 2;
    } else if (algo == FO_LPA_SGD) {
        const fo_sgd_lp_hyper *h = (const fo_sgd_lp_hyper *)hv;
        FO_SGD_FIELDS(FO_LP_COPY_, FO_LP_COPY_, sh)
        kind = h->param_kind, gf32 = h->grad_f32, stochastic = h->stochastic, seed = h->seed;
        im = 3, is = 1;
    } else if (algo == FO_LPA_RMSPROP) {
        const fo_rmsprop_lp_hyper *h = (const fo_rmsprop_lp_hyper *)hv;
        FO_RMSPROP_FIELDS(FO_LP_COPY_, FO_LP_COPY_, rh)
        kind = h->param_kind, gf32 = h->grad_f32, stochastic = h->stochastic, seed = h->seed;
        im = 5, is = 0;
    } else {
        const fo_lion_lp_hyper *h = (const fo_lion_lp_hyper *)hv;
        FO_LION_FIELDS(FO_LP_COPY_, FO_LP_COPY_, lh)
        kind = h->param_kind, gf32 = h->grad_f32, stochastic = h->stochastic, seed = h->seed;
        im = 3, is = 0;
    }
    const int f16 = kind == FO_LP_F16;
    uint16_t *p = (uint16_t *)b[ip] + begin;
    const float *gf = gf32 ? (const float *)b[ig] + begin : NULL;
    const uint16_t *gh = gf32 ? NULL : (const uint16_t *)b[ig] + begin;
    float *mw = b[im] != NULL ? (float *)b[im] + begin : NULL;
    if (!f16 && !stochastic && (algo == FO_LPA_SGD || algo == FO_LPA_LION)) { /* bfloat16: one fused loop */
        const fo_bf16_bufs fb = {p, NULL, gf, gh, NULL, b[2] != NULL ? (float *)b[2] + begin : NULL, mw};
#define FO_SL_(gf_, ms_)                                      \
        do {                                                  \
            if (algo == FO_LPA_SGD)                           \
                fo_sgd16_range(&sh, s, fb, n, 1, 0, gf_, ms_); \
            else                                              \
                fo_lion16_range(&lh, fb, n, 1, 0, gf_, ms_);  \
        } while (0)
        if (gf32) { if (mw != NULL) FO_SL_(1, 1); else FO_SL_(1, 0); }
        else      { if (mw != NULL) FO_SL_(0, 1); else FO_SL_(0, 0); }
#undef FO_SL_
        return;
    }
    const uint64_t base =
        fo_mix64(fo_mix64((uint64_t)(uint32_t)seed + (uint64_t)s[is] * FO_GOLDEN) ^ (uint64_t)s[is + 1]);
    float pbuf[FO_LP_STAGE] __attribute__((aligned(64)));
    float gbuf[FO_LP_STAGE] __attribute__((aligned(64)));
    for (int64_t off = 0; off < n; off += FO_LP_STAGE) {
        const int64_t nb = n - off < FO_LP_STAGE ? n - off : FO_LP_STAGE;
        float *pp = pbuf;
        const float *gg = gbuf;
        if (mw != NULL)
            pp = mw + off;
        else
            fo_lp_widen_n(p + off, pbuf, nb, f16, f16c);
        if (gf32)
            gg = gf + off;
        else
            fo_lp_widen_n(gh + off, gbuf, nb, f16, f16c);
#define FO_LP_STATE_(k) (b[k] != NULL ? (float *)b[k] + begin + off : (float *)NULL)
        if (algo == FO_LPA_ADAM) {
            float *const bufs[5] = {pp, (float *)gg, FO_LP_STATE_(0), FO_LP_STATE_(1), NULL};
            adam_range_f32(&ah, bufs, s, nb);
        } else if (algo == FO_LPA_SGD) {
            float *const bufs[3] = {pp, (float *)gg, FO_LP_STATE_(2)};
            sgd_range_f32(&sh, bufs, s, nb);
        } else if (algo == FO_LPA_RMSPROP) {
            float *const bufs[5] = {pp, (float *)gg, FO_LP_STATE_(2), FO_LP_STATE_(3), FO_LP_STATE_(4)};
            rmsprop_range_f32(&rh, bufs, s, nb);
        } else {
            float *const bufs[3] = {pp, (float *)gg, FO_LP_STATE_(2)};
            lion_range_f32(&lh, bufs, s, nb);
        }
#undef FO_LP_STATE_
        fo_lp_narrow_n(pp, p + off, nb, f16, stochastic, base, begin + off, f16c);
    }
}

/* ---- Adam on bfloat16 parameters: one fused loop ----------------------------------------------------------------
 * Adam's two divisions and square root per element keep the divider busy; in one loop the bfloat16 widening and
 * rounding run beside them, where the staged driver below would run them apart (measured: in cache, 1.25x faster
 * than staged). The arithmetic is adam.c's loop (adam_loop_f32) written out for these storage types, with the
 * same operations in the same order: test_lowp_params.py checks it bit for bit against fastopt's float32 Adam.
 * On AVX-512, round to nearest runs as an explicit 16-lane loop instead (fo_adam_bf16p_avx512: the widening and
 * rounding of csrc/fo_bf16.h, ~10 % faster in L2 than the compiler's vectorisation of this loop, measured). */
FO_INLINE void fo_adam_bf16_loop(const fo_adam_f32c c, float *FO_RESTRICT m, float *FO_RESTRICT v,
                                 uint16_t *FO_RESTRICT p, const void *gp, float *FO_RESTRICT mw, const int64_t n,
                                 const int maximize, const int l2, const int small_w, const int gf32,
                                 const int master, const int stochastic, const uint16_t *FO_RESTRICT r16)
{
    const float *FO_RESTRICT gf = (const float *)gp;
    const uint16_t *FO_RESTRICT gh = (const uint16_t *)gp;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        float pi = master ? mw[i] : fo_lp_widen(p[i], 0);
        const float g = gf32 ? gf[i] : fo_lp_widen(gh[i], 0);
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
        const uint32_t r = stochastic ? r16[i] : 0;
        p[i] = fo_lp_round(pi, 0, stochastic, r);
    }
}

#ifdef FO_HAVE_BF16_AVX512
/* 16 elements at i on AVX-512: the parameter from the master copy or widened, the gradient float32 or widened, the
 * element of fo_bf16.h (each lane equals fo_adam_bf16_loop's element), the parameter rounded to nearest-even. */
FO_LP_TARGET_AVX512 FO_BF16_INLINE void fo_adam_bf16p_v16(const fo_adam_v16c *k, float *FO_RESTRICT m,
                                                          float *FO_RESTRICT v, uint16_t *FO_RESTRICT p,
                                                          const void *gp, float *FO_RESTRICT mw, const int64_t i,
                                                          const int maximize, const int l2, const int small_w,
                                                          const int gf32, const int master)
{
    const __m512 pi = master ? _mm512_loadu_ps(mw + i) : fo_bf16_unpack16(p + i);
    const __m512 gi = gf32 ? _mm512_loadu_ps((const float *)gp + i) : fo_bf16_unpack16((const uint16_t *)gp + i);
    __m512 mi = _mm512_loadu_ps(m + i), vi = _mm512_loadu_ps(v + i);
    const __m512 pn = fo_adam_v16(k, pi, gi, &mi, &vi, maximize, l2, small_w);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    if (master)
        _mm512_storeu_ps(mw + i, pn);
    _mm256_storeu_si256((__m256i *)(p + i), fo_bf16_pack16(pn));
}

/* Round-to-nearest Adam on bfloat16 params, AVX-512, 16 elements per turn; the elements before exp_avg's first
 * 64-byte boundary and the last n % 16 through fo_adam_bf16_loop. */
FO_LP_TARGET_AVX512 FO_BF16_INLINE void fo_adam_bf16p_run(const fo_adam_f32c c, float *FO_RESTRICT m,
                                                          float *FO_RESTRICT v, uint16_t *FO_RESTRICT p,
                                                          const void *gp, float *FO_RESTRICT mw, const int64_t n,
                                                          const int maximize, const int l2, const int small_w,
                                                          const int gf32, const int master)
{
    const int64_t head = fo_align_head(m, n, (int64_t)sizeof(float));
    const int64_t gsz = gf32 ? (int64_t)sizeof(float) : (int64_t)sizeof(uint16_t);
    fo_adam_bf16_loop(c, m, v, p, gp, mw, head, maximize, l2, small_w, gf32, master, 0, NULL);
    const fo_adam_v16c k = fo_adam_v16_consts(c);
    int64_t i = head;
    for (; i + 16 <= n; i += 16)
        fo_adam_bf16p_v16(&k, m, v, p, gp, mw, i, maximize, l2, small_w, gf32, master);
    fo_adam_bf16_loop(c, m + i, v + i, p + i, (const char *)gp + i * gsz, master ? mw + i : NULL, n - i, maximize,
                      l2, small_w, gf32, master, 0, NULL);
}

/* The flags unswitched, each combination its own loop. */
static FO_LP_TARGET_AVX512 __attribute__((noinline)) void
fo_adam_bf16p_avx512(const fo_adam_f32c c, float *m, float *v, uint16_t *p, const void *gp, float *mw,
                     const int64_t n, const int maximize, const int l2, const int small_w, const int gf32)
{
#define FO_R3_(x, y, z) fo_adam_bf16p_run(c, m, v, p, gp, mw, n, x, y, z, gf, ms)
#define FO_R_ FO_UNSWITCH3(FO_R3_, maximize, l2, small_w)
    if (gf32) {
        const int gf = 1;
        if (mw != NULL) { const int ms = 1; FO_R_; } else { const int ms = 0; FO_R_; }
    } else {
        const int gf = 0;
        if (mw != NULL) { const int ms = 1; FO_R_; } else { const int ms = 0; FO_R_; }
    }
#undef FO_R_
#undef FO_R3_
}
#endif

FO_INLINE void fo_adam_bf16_item(const fo_tensor_list *t, const fo_adam_lp_hyper *h, int64_t w, const int f16c)
{
    const fo_work *it = &t->work[w];
    void *const *b = t->bufs + it->tensor * t->n_bufs;
    const double *s = t->scalars + it->tensor * t->n_scalars;
    fo_adam_f32c c;
    FO_ADAM_F32_CONSTS(c, h, s);
    const int maximize = h->maximize != 0, l2 = FO_L2(h), small_w = fo_small_weight(c.w1);
    const int64_t begin = it->begin, n = it->end - it->begin;
    float *m = (float *)b[0] + begin, *v = (float *)b[1] + begin;
    uint16_t *p = (uint16_t *)b[2] + begin;
    const int gf32 = h->grad_f32 != 0;
    const void *g = gf32 ? (const void *)((const float *)b[3] + begin) : (const void *)((const uint16_t *)b[3] + begin);
    float *mw = b[4] != NULL ? (float *)b[4] + begin : NULL;
#ifdef FO_HAVE_BF16_AVX512
    if (f16c == 2 && !h->stochastic) {
        fo_adam_bf16p_avx512(c, m, v, p, g, mw, n, maximize, l2, small_w, gf32);
        return;
    }
#else
    (void)f16c;
#endif
    const uint64_t base = fo_mix64(fo_mix64((uint64_t)(uint32_t)h->seed + (uint64_t)s[2] * FO_GOLDEN) ^ (uint64_t)s[3]);
    /* every flag a compile-time constant in its own loop (a runtime flag in the loop stops it vectorising) */
#define FO_B3_(x, y, z, gf, ms, st) fo_adam_bf16_loop(c, m, v, p, g, mw, n, x, y, z, gf, ms, st, NULL)
#define FO_BS3_(x, y, z, gf, ms, st)                                                                             \
    do {                                                                                                         \
    for (int64_t off = 0; off < n; off += FO_LP_STAGE) { /* stochastic: the block's random bits first */       \
        const int64_t nb = n - off < FO_LP_STAGE ? n - off : FO_LP_STAGE;                                        \
        uint16_t r16[FO_LP_STAGE];                                                                               \
        fo_lp_random16(r16, base, begin + off, nb);                                                              \
        fo_adam_bf16_loop(c, m + off, v + off, p + off, gf32 ? (const void *)((const float *)g + off)            \
                          : (const void *)((const uint16_t *)g + off), NULL, nb, x, y, z, gf, ms, st, r16);       \
    }                                                                                                            \
    } while (0)
#define FO_B_(gf, ms, st)                                                                                      \
    do {                                                                                                       \
        if (maximize) {                                                                                        \
            if (l2) { if (small_w) FO_B3_(1, 1, 1, gf, ms, st); else FO_B3_(1, 1, 0, gf, ms, st); }            \
            else    { if (small_w) FO_B3_(1, 0, 1, gf, ms, st); else FO_B3_(1, 0, 0, gf, ms, st); }            \
        } else {                                                                                               \
            if (l2) { if (small_w) FO_B3_(0, 1, 1, gf, ms, st); else FO_B3_(0, 1, 0, gf, ms, st); }            \
            else    { if (small_w) FO_B3_(0, 0, 1, gf, ms, st); else FO_B3_(0, 0, 0, gf, ms, st); }            \
        }                                                                                                      \
    } while (0)
    if (h->stochastic) {
#undef FO_B3_
#define FO_B3_ FO_BS3_
        if (gf32) FO_B_(1, 0, 1); else FO_B_(0, 0, 1);
#undef FO_B3_
#define FO_B3_(x, y, z, gf, ms, st) fo_adam_bf16_loop(c, m, v, p, g, mw, n, x, y, z, gf, ms, st, NULL)
    } else if (mw != NULL) {
        if (gf32) FO_B_(1, 1, 0); else FO_B_(0, 1, 0);
    } else {
        if (gf32) FO_B_(1, 0, 0); else FO_B_(0, 0, 0);
    }
#undef FO_B_
#undef FO_B3_
#undef FO_BS3_
}

/* Three ISA variants per algorithm: AVX-512 (F, VL, DQ, BW) with F16C, AVX2 with F16C, and the baseline. */
#ifdef FO_LP_DISPATCH
#define FO_LP_VARIANTS_(name, algo)                                                                             \
    static FO_LP_TARGET_AVX512 void fo_##name##_avx512(const fo_tensor_list *t, const void *h, int64_t w)       \
    { fo_lp_item(algo, t, h, w, 2); }                                                                           \
    static FO_LP_TARGET_F16C void fo_##name##_avx2(const fo_tensor_list *t, const void *h, int64_t w)           \
    { fo_lp_item(algo, t, h, w, 1); }                                                                           \
    static void fo_##name##_base(const fo_tensor_list *t, const void *h, int64_t w)                             \
    { fo_lp_item(algo, t, h, w, 0); }                                                                           \
    static fo_item_fn fo_##name##_pick(void)                                                                    \
    {                                                                                                           \
        const int isa = fo_isa();                                                                               \
        const int f16c = __builtin_cpu_supports("f16c");                                                        \
        if (isa == 2 && f16c && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))       \
            return (fo_item_fn)fo_##name##_avx512;                                                              \
        if (isa >= 1 && f16c)                                                                                   \
            return (fo_item_fn)fo_##name##_avx2;                                                                \
        return (fo_item_fn)fo_##name##_base;                                                                    \
    }
#else
#define FO_LP_VARIANTS_(name, algo)                                                                             \
    static void fo_##name##_base(const fo_tensor_list *t, const void *h, int64_t w)                             \
    { fo_lp_item(algo, t, h, w, 0); }                                                                           \
    static fo_item_fn fo_##name##_pick(void) { return (fo_item_fn)fo_##name##_base; }
#endif
FO_LP_VARIANTS_(adam_lp, FO_LPA_ADAM)
FO_LP_VARIANTS_(sgd_lp, FO_LPA_SGD)
FO_LP_VARIANTS_(rmsprop_lp, FO_LPA_RMSPROP)
FO_LP_VARIANTS_(lion_lp, FO_LPA_LION)

/* The options every 16-bit kernel checks: a known param_kind; stochastic rounding for bfloat16 only. */
#define FO_LP_BAD_(h) \
    (((h)->param_kind != FO_LP_F16 && (h)->param_kind != FO_LP_BF16) || ((h)->stochastic && (h)->param_kind != FO_LP_BF16))

#define FO_LP_ENTRY_(name, needs)                                                                                \
    int fo_##name##_f32(const fo_tensor_list *t, const fo_##name##_hyper *h)                                    \
    {                                                                                                            \
        if (t == NULL || h == NULL || FO_LP_BAD_(h))                                                             \
            return FO_ERR_ARG;                                                                                   \
        const int rc = fo_kernel_check(t, (uint32_t)(needs), fo_##name##_n_scalars);                             \
        if (rc != FO_OK)                                                                                         \
            return rc;                                                                                           \
        fo_run_items((const void *)t, t->n_work, (const void *)h, fo_##name##_pick(),                            \
                     fo_threads_for(t->total, t->n_threads));                                                    \
        return FO_OK;                                                                                            \
    }                                                                                                            \
    int fo_##name##_f64(const fo_tensor_list *t, const fo_##name##_hyper *h)                                    \
    {                                                                                                            \
        (void)t;                                                                                                 \
        (void)h;                                                                                                 \
        return FO_ERR_ARG; /* the state of 16-bit parameters is float32 */                                       \
    }

/* the buffers each reads: the float32 kernel's (its needs function on the same options), param and grad moved */
FO_INLINE int64_t fo_sgd_lp_needs(const fo_sgd_lp_hyper *h)
{
    fo_sgd_hyper sh;
    FO_SGD_FIELDS(FO_LP_COPY_, FO_LP_COPY_, sh)
    return sgd_needs_f32(&sh);
}
FO_INLINE int64_t fo_rmsprop_lp_needs(const fo_rmsprop_lp_hyper *h)
{
    fo_rmsprop_hyper rh;
    FO_RMSPROP_FIELDS(FO_LP_COPY_, FO_LP_COPY_, rh)
    return rmsprop_needs_f32(&rh);
}

FO_LP_ENTRY_(adam_lp, FO_FIRST(4))
FO_LP_ENTRY_(sgd_lp, fo_sgd_lp_needs(h))
FO_LP_ENTRY_(rmsprop_lp, fo_rmsprop_lp_needs(h))
FO_LP_ENTRY_(lion_lp, FO_FIRST(3))
