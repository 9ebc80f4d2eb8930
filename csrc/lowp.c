/* lowp.c — Adam / AdamW on float32 parameters with compressed state (issue 14): moments stored as bfloat16
 * (state_kind FO_LOWP_BF16) or blockwise 8-bit (state_kind FO_LOWP_Q8, bitsandbytes' scheme).
 *
 * The arithmetic is adam.c's, element for element, in float32 and torch's order; only the loads and stores of
 * the moments differ:
 *   bf16:  m = bf16 -> f32 (exact), ... , store m rounded to nearest-even (NaN stays a quiet NaN).
 *   8-bit: per block of FO_QBLOCK elements: m = code1[q1] * absmax1[block] (dequantize), update in registers
 *          into a stack buffer, absmax1 = max |m_new| over the block (NaN propagates), then each element takes
 *          the nearest code of m_new / absmax (absmax 0 or NaN divides by 1): q1 = nearest(code1, m / absmax).
 *          The same for v with code2. The parameter update uses the unquantized new moments.
 * Nearest-code rounding is an exact 8-step branchless binary search over the thresholds between neighbouring codes
 * (fo_q8_nearest), never a scan of the 256 codes; on AVX-512 the search and the decoding read their tables from
 * registers (permutes), not memory, and calls of FO_Q8_TABLE_MIN elements or more replace the search by a bucket
 * table built from it (fo_q8_table_build: one gather and one comparison per element, the same codes).
 * On AVX-512 the bf16 kernel is one fused 16-lane loop (fo_adam_bf16_avx512); elsewhere three loops per tile.
 *
 * Work items start at multiples of FO_CHUNK, a multiple of FO_QBLOCK, so a block never spans two items and the
 * result does not depend on the thread count. */
#include <stdlib.h>
#include <string.h>

#include "fastopt.h"
/* Adam / AdamW on float32 params with compressed moments: state_kind FO_LOWP_BF16: 2 exp_avg, 3 exp_avg_sq
 * (uint16 bfloat16 bits); FO_LOWP_Q8: 2 state1, 3 state2 (uint8 codes), 4 absmax1, 5 absmax2 (float32, one per
 * FO_QBLOCK block), 6 qmap1, 7 qmap2 (float32[256] IN), 8 qlev1, 9 qlev2 (float32[256]: the maps' rounding thresholds, level by level, IN);
 * scalars as Adam's */
FO_KERNEL(adam_lowp, 10, 2, D(lr) D(beta1) D(beta2) D(eps) D(weight_decay) I(maximize) I(decoupled_weight_decay)
    I(state_kind))
#include "fo_adam_f32.h"

typedef union { float f; uint32_t u; } fo_bits32;
/* A tile of decoded moments, read as floats by the update and as bits by the encoders (union type punning, so the
 * loops stay plain vector loads instead of per-element moves through general registers). */
typedef union { float f[FO_QBLOCK]; uint32_t u[FO_QBLOCK]; } __attribute__((aligned(64))) fo_tile;

/* float32 bits -> bfloat16 bits, nearest-even; a NaN stays a quiet NaN with its sign and top payload bits. */
FO_INLINE uint16_t fo_bits_to_bf16(uint32_t u)
{
    const uint32_t nearest = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet = (u >> 16) | 0x0040u;
    return (uint16_t)(((u & 0x7FFFFFFFu) > 0x7F800000u) ? quiet : nearest);
}

/* Nearest-code rounding is a search over the 255 thresholds between neighbouring codes: threshold c is the
 * smallest float32 nearer to code c + 1 than to code c (ties to the lower; precomputed from the map, exact), and the
 * rule is monotone, so the nearest code of x is the number of thresholds x reaches. Eight branchless halving steps
 * find it; step k (k = 0..7) compares x with one of 2^k thresholds, chosen by the k bits found so far, so the
 * thresholds are stored level by level: `lev` holds level k's 2^k values at offset 2^k - 1 (256 floats in all,
 * the last one padding). NaN reaches no threshold: code 0. */
FO_INLINE uint8_t fo_q8_nearest(float x, const float *FO_RESTRICT lev)
{
    uint32_t q = 0;
    for (int k = 0; k < 8; ++k) {
        const uint32_t bit = 128u >> k;
        q += (x >= lev[(1u << k) - 1u + (q >> (8 - k))]) ? bit : 0u;
    }
    return (uint8_t)q;
}

FO_INLINE void fo_q8_nearest_scalar(const fo_tile *FO_RESTRICT x, int64_t n, const float *FO_RESTRICT lev,
                                    uint8_t *FO_RESTRICT q)
{
    for (int64_t i = 0; i < n; ++i)
        q[i] = fo_q8_nearest(x->f[i], lev);
}

FO_INLINE void fo_q8_decode_scalar(const uint8_t *FO_RESTRICT q, int64_t n, const float *FO_RESTRICT code, float s,
                                   float *FO_RESTRICT out)
{
    for (int64_t i = 0; i < n; ++i)
        out[i] = code[q[i]] * s;
}

/* ---- AVX-512: both table lookups from registers (vpermi2ps over 32 entries, blends on the higher index bits),
 * no gathers (a gather costs ~1 ns per lane on the machines measured). Each lane computes exactly what the scalar
 * functions compute. The AVX2 and baseline variants use the scalar loops. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(FO_NO_DISPATCH)
#include <immintrin.h>
#define FO_HAVE_Q8_AVX512 1

/* table[idx] for idx in [0, 32 << levels) from 2 << levels registers r (32 entries per pair). */
#define FO_LOOKUP32(r, idx) _mm512_permutex2var_ps((r)[0], (idx), (r)[1])
FO_TARGET_AVX512 static inline __m512 fo_lookup64(const __m512 *r, __m512i idx)
{
    const __mmask16 b5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
    return _mm512_mask_blend_ps(b5, FO_LOOKUP32(r, idx), FO_LOOKUP32(r + 2, idx));
}
FO_TARGET_AVX512 static inline __m512 fo_lookup128(const __m512 *r, __m512i idx)
{
    const __mmask16 b6 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(64));
    return _mm512_mask_blend_ps(b6, fo_lookup64(r, idx), fo_lookup64(r + 4, idx));
}
FO_TARGET_AVX512 static inline __m512 fo_lookup256(const __m512 *r, __m512i idx)
{
    const __mmask16 b7 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(128));
    return _mm512_mask_blend_ps(b7, fo_lookup128(r, idx), fo_lookup128(r + 8, idx));
}

static FO_TARGET_AVX512 void fo_q8_nearest_avx512(const fo_tile *FO_RESTRICT x, int64_t n,
                                                  const float *FO_RESTRICT lev, uint8_t *FO_RESTRICT q)
{
    __m512 l7[8], l6[4], l5[2];
    for (int j = 0; j < 8; ++j)
        l7[j] = _mm512_loadu_ps(lev + 127 + 16 * j);
    for (int j = 0; j < 4; ++j)
        l6[j] = _mm512_loadu_ps(lev + 63 + 16 * j);
    l5[0] = _mm512_loadu_ps(lev + 31);
    l5[1] = _mm512_loadu_ps(lev + 47);
    const __m512 l4 = _mm512_loadu_ps(lev + 15), l3 = _mm512_loadu_ps(lev + 7), l2 = _mm512_loadu_ps(lev + 3);
    const __m512 l1 = _mm512_loadu_ps(lev + 1), l0 = _mm512_set1_ps(lev[0]);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x->f + i);
        __m512i c = _mm512_setzero_si512();
#define FO_STEP_(k, t)                                                                                   \
        c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(v, (t), _CMP_GE_OQ), c, _mm512_set1_epi32(128 >> (k)));
        FO_STEP_(0, l0)
        FO_STEP_(1, _mm512_permutexvar_ps(_mm512_srli_epi32(c, 7), l1))
        FO_STEP_(2, _mm512_permutexvar_ps(_mm512_srli_epi32(c, 6), l2))
        FO_STEP_(3, _mm512_permutexvar_ps(_mm512_srli_epi32(c, 5), l3))
        FO_STEP_(4, _mm512_permutexvar_ps(_mm512_srli_epi32(c, 4), l4))
        FO_STEP_(5, FO_LOOKUP32(l5, _mm512_srli_epi32(c, 3)))
        FO_STEP_(6, fo_lookup64(l6, _mm512_srli_epi32(c, 2)))
        FO_STEP_(7, fo_lookup128(l7, _mm512_srli_epi32(c, 1)))
#undef FO_STEP_
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(c));
    }
    for (; i < n; ++i)
        q[i] = fo_q8_nearest(x->f[i], lev);
}

static FO_TARGET_AVX512 void fo_q8_decode_avx512(const uint8_t *FO_RESTRICT q, int64_t n,
                                                 const float *FO_RESTRICT code, float s, float *FO_RESTRICT out)
{
    __m512 r[16];
    for (int j = 0; j < 16; ++j)
        r[j] = _mm512_loadu_ps(code + 16 * j);
    const __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + i)));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(fo_lookup256(r, idx), vs));
    }
    for (; i < n; ++i)
        out[i] = code[q[i]] * s;
}
/* ---- Nearest code by bucket (large calls on AVX-512): the float32 magnitude, clamped to [2^-23, 1], picks a bucket
 * by its exponent and top 7 mantissa bits; each bucket of the map holds at most one threshold (checked when the table
 * is built), so the code is the bucket's lowest code plus one comparison of the low 16 bits with that threshold's.
 * Clamping keeps the code: no threshold has magnitude <= 2^-23 or >= 1 (checked too). One gather per 16 lanes instead
 * of eight dependent search steps; the codes are the search's, bit for bit (the table is built with it).
 * Entry: bits 0-7 the lowest code, bit 8 "has a threshold", bits 16-31 the threshold's low 16 bits. */
#define FO_Q8_TABLE_MIN (1 << 20) /* elements per call from which the tables pay */
#define FO_QB_LO 0x34000000u /* 2^-23 */
#define FO_QB_HI 0x3F800000u /* 1.0 */
#define FO_QB_N ((int)((FO_QB_HI - FO_QB_LO) >> 16) + 1) /* buckets per sign */
typedef struct { uint32_t e[2 * FO_QB_N]; } fo_q8_table;

/* Build t from the level-order thresholds lev; 0 when the map does not fit the scheme (then the search is used). */
static int fo_q8_table_build(const float *FO_RESTRICT lev, fo_q8_table *FO_RESTRICT t)
{
    for (int s = 0; s < 2; ++s)
        for (int b = 0; b < FO_QB_N; ++b) {
            fo_bits32 lo, hi;
            lo.u = (FO_QB_LO + ((uint32_t)b << 16)) | ((uint32_t)s << 31);
            hi.u = (b == FO_QB_N - 1 ? FO_QB_HI : lo.u + 0xFFFFu) | ((uint32_t)s << 31);
            const float vmin = s ? hi.f : lo.f, vmax = s ? lo.f : hi.f; /* the bucket's value range */
            const uint32_t c_lo = fo_q8_nearest(vmin, lev), c_hi = fo_q8_nearest(vmax, lev);
            uint32_t e = c_lo;
            if (c_hi == c_lo + 1) {
                /* the threshold: the smallest value of the bucket with code c_hi, found by bisection on the bits */
                uint32_t a = s ? hi.u : lo.u, z = s ? lo.u : hi.u; /* value order: a < z; code(a) = c_lo */
                for (;;) {
                    const uint32_t mid = s ? a - (a - z) / 2 : a + (z - a) / 2; /* negative: larger bits, smaller value */
                    if (mid == a)
                        break;
                    fo_bits32 m;
                    m.u = mid;
                    if (fo_q8_nearest(m.f, lev) == c_hi)
                        z = mid;
                    else
                        a = mid;
                }
                e |= 0x100u | ((z & 0xFFFFu) << 16);
            } else if (c_hi != c_lo) {
                return 0;
            }
            t->e[s * FO_QB_N + b] = e;
        }
    fo_bits32 x;
    x.f = 0.0f;
    const uint32_t zero = fo_q8_nearest(x.f, lev);
    x.u = FO_QB_LO;
    if (fo_q8_nearest(x.f, lev) != zero || fo_q8_nearest(-x.f, lev) != zero)
        return 0;
    x.f = 1.0f;
    if (fo_q8_nearest(x.f, lev) != fo_q8_nearest(3.0e38f, lev) || fo_q8_nearest(-x.f, lev) != fo_q8_nearest(-3.0e38f, lev))
        return 0;
    return 1;
}

static FO_TARGET_AVX512 void fo_q8_bucket_avx512(const fo_tile *FO_RESTRICT x, int64_t n,
                                                 const float *FO_RESTRICT lev, const fo_q8_table *FO_RESTRICT tab,
                                                 uint8_t *FO_RESTRICT q)
{
    const __m512i mag = _mm512_set1_epi32(0x7FFFFFFF), lo = _mm512_set1_epi32((int)FO_QB_LO);
    const __m512i hi = _mm512_set1_epi32((int)FO_QB_HI), nb = _mm512_set1_epi32(FO_QB_N);
    const __m512i low16 = _mm512_set1_epi32(0xFFFF), byte = _mm512_set1_epi32(0xFF), one = _mm512_set1_epi32(1);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x->f + i);
        const __m512i u = _mm512_castps_si512(v);
        const __mmask16 neg = _mm512_cmplt_epi32_mask(u, _mm512_setzero_si512());
        const __mmask16 num = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
        const __m512i uc = _mm512_min_epu32(_mm512_max_epu32(_mm512_and_si512(u, mag), lo), hi);
        __m512i idx = _mm512_srli_epi32(_mm512_sub_epi32(uc, lo), 16);
        idx = _mm512_mask_add_epi32(idx, neg, idx, nb);
        const __m512i e = _mm512_i32gather_epi32(idx, (const void *)tab->e, 4);
        const __m512i t = _mm512_srli_epi32(e, 16), l = _mm512_and_si512(uc, low16);
        const __mmask16 has = _mm512_test_epi32_mask(e, _mm512_set1_epi32(0x100));
        const __mmask16 ge = _mm512_cmpge_epu32_mask(l, t), le = _mm512_cmple_epu32_mask(l, t);
        const __mmask16 up = has & ((ge & (__mmask16)~neg) | (le & neg));
        __m512i c = _mm512_and_si512(e, byte);
        c = _mm512_mask_add_epi32(c, up, c, one);
        c = _mm512_maskz_mov_epi32(num, c);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(c));
    }
    for (; i < n; ++i)
        q[i] = fo_q8_nearest(x->f[i], lev);
}

#define FO_Q8_NEAREST(isa, x, n, lev, tab, q)                                                        \
    ((isa) == 2 ? ((tab) != NULL ? fo_q8_bucket_avx512(x, n, lev, tab, q) : fo_q8_nearest_avx512(x, n, lev, q)) \
                : fo_q8_nearest_scalar(x, n, lev, q))
#define FO_Q8_DECODE(isa, q, n, code, s, out) \
    ((isa) == 2 ? fo_q8_decode_avx512(q, n, code, s, out) : fo_q8_decode_scalar(q, n, code, s, out))
#else
typedef struct { uint32_t e[1]; } fo_q8_table; /* no bucket tables without AVX-512 */
#define FO_Q8_NEAREST(isa, x, n, lev, tab, q) fo_q8_nearest_scalar(x, n, lev, q)
#define FO_Q8_DECODE(isa, q, n, code, s, out) fo_q8_decode_scalar(q, n, code, s, out)
#endif

/* Encode tile x (n elements) in place of q and *absmax: absmax = max |x| with NaN propagating (np.max) — on the
 * magnitudes' bit patterns, whose unsigned order is the float order for non-negative floats with every NaN above
 * +Inf, so an integer max (which vectorises) gives a NaN if there is one — then q = nearest(code, x / scale). */
FO_INLINE void fo_q8_store(fo_tile *FO_RESTRICT x, int64_t n, const float *FO_RESTRICT lev,
                           const fo_q8_table *tab, uint8_t *FO_RESTRICT q, float *absmax, const int isa)
{
    uint32_t top = 0;
#pragma omp simd reduction(max : top)
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t u = x->u[i] & 0x7FFFFFFFu;
        top = u > top ? u : top;
    }
    fo_bits32 r;
    r.u = top;
    const float a = r.f;
    const float scale = a > 0.0f ? a : 1.0f;
    *absmax = a;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
        x->f[i] = x->f[i] / scale;
    FO_Q8_NEAREST(isa, x, n, lev, tab, q);
}

FO_INLINE fo_adam_f32c fo_adam_consts(const fo_adam_lowp_hyper *h, const double *s)
{
    fo_adam_f32c c;
    FO_ADAM_F32_CONSTS(c, h, s);
    return c;
}

/* One element of Adam (adam.c's adam_loop): p, g in; m, v old moments in; new moments out; new p out. The flags
 * maximize, l2 and small_w are compile-time constants at every use (the callers are unswitched). */
#define FO_ADAM_ELEMENT(c, p_in, g_in, m_old, v_old, m_out, v_out, p_out)                 \
    do {                                                                                  \
        float pi_ = (p_in);                                                               \
        const float gi_ = FO_GRAD((g_in), pi_, (c).wd, maximize, l2);                     \
        pi_ = pi_ * (c).decay;                                                            \
        const float mi_ = FO_LERP((m_old), gi_, (c).w1, small_w);                         \
        const float vi_ = FO_FMA((c).w2 * gi_, gi_, (v_old) * (c).b2);                    \
        const float denom_ = FO_SQRT(vi_) / (c).bc2s + (c).eps;                           \
        (m_out) = mi_;                                                                    \
        (v_out) = vi_;                                                                    \
        (p_out) = pi_ + ((c).neg_step * mi_) / denom_;                                    \
    } while (0)

/* Adam over one tile of n <= FO_QBLOCK elements whose moments have been decoded into m, v (updated in place). */
FO_INLINE void fo_adam_run(const fo_adam_f32c c, float *FO_RESTRICT p, const float *FO_RESTRICT g,
                           float *FO_RESTRICT m, float *FO_RESTRICT v, const int64_t n,
                           const int maximize, const int l2, const int small_w)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        float pi;
        FO_ADAM_ELEMENT(c, p[i], g[i], m[i], v[i], m[i], v[i], pi);
        p[i] = pi;
    }
}

/* The elements before p's first 64-byte boundary first (fo_align_head), so the vector stores to p never split a
 * cache line; each element is computed the same way on either side. */
FO_INLINE void fo_adam_tile(const fo_adam_f32c c, float *FO_RESTRICT p, const float *FO_RESTRICT g,
                            float *FO_RESTRICT m, float *FO_RESTRICT v, const int64_t n,
                            const int maximize, const int l2, const int small_w)
{
    const int64_t head = fo_align_head(p, n, (int64_t)sizeof(float));
    if (head > 0)
        fo_adam_run(c, p, g, m, v, head, maximize, l2, small_w);
    fo_adam_run(c, p + head, g + head, m + head, v + head, n - head, maximize, l2, small_w);
}

/* One element with bf16 moments, in and out (the scalar head and tail of the AVX-512 loop below). */
FO_INLINE void fo_adam_bf16_one(const fo_adam_f32c c, float *FO_RESTRICT p, const float *FO_RESTRICT g,
                                uint16_t *FO_RESTRICT m, uint16_t *FO_RESTRICT v, const int64_t n,
                                const int maximize, const int l2, const int small_w)
{
    for (int64_t i = 0; i < n; ++i) {
        fo_bits32 mo, vo, mn, vn;
        mo.u = (uint32_t)m[i] << 16;
        vo.u = (uint32_t)v[i] << 16;
        FO_ADAM_ELEMENT(c, p[i], g[i], mo.f, vo.f, mn.f, vn.f, p[i]);
        m[i] = fo_bits_to_bf16(mn.u);
        v[i] = fo_bits_to_bf16(vn.u);
    }
}

#ifdef FO_HAVE_Q8_AVX512
/* float32 lanes -> bf16 lanes, nearest-even, NaN quiet (fo_bits_to_bf16 lane by lane). */
FO_TARGET_AVX512 static inline __m256i fo_bf16_pack16(__m512 x)
{
    const __m512i u = _mm512_castps_si512(x);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i nearest = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd),
                                              16);
    const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x0040));
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, nearest, quiet));
}

FO_TARGET_AVX512 static inline __m512 fo_bf16_unpack16(const uint16_t *src)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)src)), 16));
}

/* The bf16 range in one pass of 16 lanes: decode, FO_ADAM_ELEMENT's operations in its order (each an IEEE
 * operation, so every lane equals the scalar element), encode; the elements before p's first 64-byte boundary
 * and the last n % 16 go through the scalar element. */
static FO_TARGET_AVX512 void fo_adam_bf16_avx512(const fo_adam_f32c c, float *FO_RESTRICT p,
                                                 const float *FO_RESTRICT g, uint16_t *FO_RESTRICT m,
                                                 uint16_t *FO_RESTRICT v, const int64_t n,
                                                 const int maximize, const int l2, const int small_w)
{
    const int64_t head = fo_align_head(p, n, (int64_t)sizeof(float));
    fo_adam_bf16_one(c, p, g, m, v, head, maximize, l2, small_w);
    const __m512 wd = _mm512_set1_ps(c.wd), decay = _mm512_set1_ps(c.decay), w1 = _mm512_set1_ps(c.w1);
    const __m512 w1m = _mm512_set1_ps(c.w1 - 1), b2 = _mm512_set1_ps(c.b2), w2 = _mm512_set1_ps(c.w2);
    const __m512 bc2s = _mm512_set1_ps(c.bc2s), eps = _mm512_set1_ps(c.eps), ns = _mm512_set1_ps(c.neg_step);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    int64_t i = head;
    for (; i + 16 <= n; i += 16) {
        __m512 pi = _mm512_loadu_ps(p + i), gi = _mm512_loadu_ps(g + i);
        if (maximize)
            gi = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(gi), sign));
        if (l2)
            gi = _mm512_fmadd_ps(wd, pi, gi);
        pi = _mm512_mul_ps(pi, decay);
        const __m512 mo = fo_bf16_unpack16(m + i), vo = fo_bf16_unpack16(v + i);
        const __m512 d = _mm512_sub_ps(gi, mo);
        const __m512 mi = small_w ? _mm512_fmadd_ps(w1, d, mo) : _mm512_fmadd_ps(w1m, d, gi);
        const __m512 vi = _mm512_fmadd_ps(_mm512_mul_ps(w2, gi), gi, _mm512_mul_ps(vo, b2));
        const __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2s), eps);
        _mm512_storeu_ps(p + i, _mm512_add_ps(pi, _mm512_div_ps(_mm512_mul_ps(ns, mi), den)));
        _mm256_storeu_si256((__m256i *)(m + i), fo_bf16_pack16(mi));
        _mm256_storeu_si256((__m256i *)(v + i), fo_bf16_pack16(vi));
    }
    fo_adam_bf16_one(c, p + i, g + i, m + i, v + i, n - i, maximize, l2, small_w);
}
#endif

/* Each tile: decode, update, encode — three simple loops over a tile in L1, each vectorised on its own (a single
 * loop mixing uint16 and float vectors vectorises poorly). The AVX2 and baseline variants. */
FO_INLINE void fo_adam_bf16_range(const fo_adam_f32c c, float *FO_RESTRICT p, const float *FO_RESTRICT g,
                                  uint16_t *FO_RESTRICT m, uint16_t *FO_RESTRICT v, const int64_t n,
                                  const int maximize, const int l2, const int small_w)
{
    fo_tile mb, vb;
    for (int64_t k = 0; k < n; k += FO_QBLOCK) {
        const int64_t len = n - k < FO_QBLOCK ? n - k : FO_QBLOCK;
        uint16_t *FO_RESTRICT mk = m + k, *FO_RESTRICT vk = v + k;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) {
            mb.u[i] = (uint32_t)mk[i] << 16;
            vb.u[i] = (uint32_t)vk[i] << 16;
        }
        fo_adam_tile(c, p + k, g + k, mb.f, vb.f, len, maximize, l2, small_w);
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) {
            mk[i] = fo_bits_to_bf16(mb.u[i]);
            vk[i] = fo_bits_to_bf16(vb.u[i]);
        }
    }
}

FO_INLINE void fo_adam_q8_range(const fo_adam_f32c c, float *FO_RESTRICT p, const float *FO_RESTRICT g,
                                uint8_t *FO_RESTRICT q1, uint8_t *FO_RESTRICT q2, float *FO_RESTRICT a1,
                                float *FO_RESTRICT a2, const float *FO_RESTRICT code1,
                                const float *FO_RESTRICT code2, const float *FO_RESTRICT lev1,
                                const float *FO_RESTRICT lev2, const fo_q8_table *tab1,
                                const fo_q8_table *tab2, const int64_t n,
                                const int maximize, const int l2, const int small_w, const int isa)
{
    fo_tile mb, vb;
    for (int64_t k = 0, blk = 0; k < n; k += FO_QBLOCK, ++blk) {
        const int64_t len = n - k < FO_QBLOCK ? n - k : FO_QBLOCK;
        const float s1 = a1[blk], s2 = a2[blk];
        const uint8_t *FO_RESTRICT c1 = q1 + k, *FO_RESTRICT c2 = q2 + k;
        FO_Q8_DECODE(isa, c1, len, code1, s1, mb.f);
        FO_Q8_DECODE(isa, c2, len, code2, s2, vb.f);
        fo_adam_tile(c, p + k, g + k, mb.f, vb.f, len, maximize, l2, small_w);
        fo_q8_store(&mb, len, lev1, tab1, q1 + k, a1 + blk, isa);
        fo_q8_store(&vb, len, lev2, tab2, q2 + k, a2 + blk, isa);
    }
}

/* The flag combinations, each its own vectorised loop. */
#define FO_UNSWITCH(call_)                                                       \
    do {                                                                         \
        if (maximize_) {                                                         \
            if (l2_) { if (small_w_) call_(1, 1, 1); else call_(1, 1, 0); }      \
            else     { if (small_w_) call_(1, 0, 1); else call_(1, 0, 0); }      \
        } else {                                                                 \
            if (l2_) { if (small_w_) call_(0, 1, 1); else call_(0, 1, 0); }      \
            else     { if (small_w_) call_(0, 0, 1); else call_(0, 0, 0); }      \
        }                                                                        \
    } while (0)

/* What the work items read: the hyper-parameters and, for large 8-bit calls on AVX-512, the bucket tables of the two
 * maps (NULL: the search). */
typedef struct {
    const fo_adam_lowp_hyper *h;
    const fo_q8_table *tab1, *tab2;
} fo_lowp_ctx;

FO_INLINE void fo_adam_lowp_item(const fo_tensor_list *t, const fo_lowp_ctx *x_, int64_t w, const int isa)
{
    const fo_adam_lowp_hyper *h = x_->h;
    const fo_work *it = &t->work[w];
    void *const *b = t->bufs + it->tensor * t->n_bufs;
    const double *s = t->scalars + it->tensor * t->n_scalars;
    const fo_adam_f32c c = fo_adam_consts(h, s);
    const int maximize_ = h->maximize != 0, l2_ = h->weight_decay != 0 && !h->decoupled_weight_decay;
    const int small_w_ = fo_small_weight(c.w1);
    const int64_t begin = it->begin, n = it->end - it->begin;
    float *p = (float *)b[0] + begin;
    const float *g = (const float *)b[1] + begin;
    if (h->state_kind == FO_LOWP_BF16) {
        uint16_t *m = (uint16_t *)b[2] + begin, *v = (uint16_t *)b[3] + begin;
#ifdef FO_HAVE_Q8_AVX512
        if (isa == 2) {
            fo_adam_bf16_avx512(c, p, g, m, v, n, maximize_, l2_, small_w_);
            return;
        }
#endif
#define FO_CALL_(x, y, z) fo_adam_bf16_range(c, p, g, m, v, n, x, y, z)
        FO_UNSWITCH(FO_CALL_);
#undef FO_CALL_
        return;
    }
    uint8_t *q1 = (uint8_t *)b[2] + begin, *q2 = (uint8_t *)b[3] + begin;
    float *a1 = (float *)b[4] + begin / FO_QBLOCK, *a2 = (float *)b[5] + begin / FO_QBLOCK;
    const float *code1 = (const float *)b[6], *code2 = (const float *)b[7];
    const float *lev1 = (const float *)b[8], *lev2 = (const float *)b[9];
#define FO_CALL_(x, y, z) fo_adam_q8_range(c, p, g, q1, q2, a1, a2, code1, code2, lev1, lev2, x_->tab1, x_->tab2, n, x, y, z, isa)
    FO_UNSWITCH(FO_CALL_);
#undef FO_CALL_
}

static FO_TARGET_AVX512 void fo_adam_lowp_avx512(const fo_tensor_list *t, const fo_lowp_ctx *x, int64_t w)
{ fo_adam_lowp_item(t, x, w, 2); }
static FO_TARGET_AVX2 void fo_adam_lowp_avx2(const fo_tensor_list *t, const fo_lowp_ctx *x, int64_t w)
{ fo_adam_lowp_item(t, x, w, 1); }
static void fo_adam_lowp_base(const fo_tensor_list *t, const fo_lowp_ctx *x, int64_t w)
{ fo_adam_lowp_item(t, x, w, 0); }

int fo_adam_lowp_f32(const fo_tensor_list *t, const fo_adam_lowp_hyper *h)
{
    if (t == NULL || h == NULL)
        return FO_ERR_ARG;
    int64_t needs;
    if (h->state_kind == FO_LOWP_BF16)
        needs = FO_FIRST(4);
    else if (h->state_kind == FO_LOWP_Q8)
        needs = FO_FIRST(10);
    else
        return FO_ERR_ARG;
    const int rc = fo_kernel_check(t, (uint32_t)needs, fo_adam_lowp_n_scalars);
    if (rc != FO_OK)
        return rc;
    for (int64_t w = 0; w < t->n_work; ++w) /* blocks must not straddle work items */
        if (t->work[w].begin % FO_QBLOCK != 0)
            return FO_ERR_LAYOUT;
    const int isa = fo_isa();
    fo_lowp_ctx x = {h, NULL, NULL};
#ifdef FO_HAVE_Q8_AVX512
    /* The bucket tables cost ~0.1 ms to build: only for large calls, and only when every tensor uses the same maps. */
    fo_q8_table *tabs = NULL;
    if (h->state_kind == FO_LOWP_Q8 && isa == 2 && t->total >= FO_Q8_TABLE_MIN) {
        const float *l1 = NULL, *l2 = NULL;
        int same = 1;
        for (int64_t i = 0; i < t->n_tensors && same; ++i) {
            if (t->sizes[i] == 0) /* an empty tensor's buffers may be NULL */
                continue;
            void *const *bi = t->bufs + i * t->n_bufs;
            if (l1 == NULL) {
                l1 = (const float *)bi[8];
                l2 = (const float *)bi[9];
            }
            same = memcmp(l1, bi[8], 256 * sizeof(float)) == 0 && memcmp(l2, bi[9], 256 * sizeof(float)) == 0;
        }
        same = same && l1 != NULL;
        tabs = same ? (fo_q8_table *)malloc(2 * sizeof(fo_q8_table)) : NULL;
        if (tabs != NULL && fo_q8_table_build(l1, &tabs[0]) && fo_q8_table_build(l2, &tabs[1])) {
            x.tab1 = &tabs[0];
            x.tab2 = &tabs[1];
        }
    }
#endif
    FO_RUN_ITEMS(t, isa == 2 ? fo_adam_lowp_avx512 : isa == 1 ? fo_adam_lowp_avx2 : fo_adam_lowp_base, &x);
#ifdef FO_HAVE_Q8_AVX512
    free(tabs);
#endif
    return FO_OK;
}

int fo_adam_lowp_f64(const fo_tensor_list *t, const fo_adam_lowp_hyper *h)
{
    (void)t;
    (void)h;
    return FO_ERR_ARG; /* compressed state is for float32 parameters */
}

/* The quantizer alone (tests, checkpoint conversion): blockwise over n floats. */
int fo_q8_quantize(const float *x, int64_t n, const float *levels, uint8_t *q, float *absmax)
{
    if (n < 0 || (n > 0 && (x == NULL || levels == NULL || q == NULL || absmax == NULL)))
        return FO_ERR_NULL;
    fo_tile t;
    const int isa = fo_isa();
    fo_q8_table *tab = NULL;
#ifdef FO_HAVE_Q8_AVX512
    if (isa == 2 && n >= FO_Q8_TABLE_MIN) {
        tab = (fo_q8_table *)malloc(sizeof(fo_q8_table));
        if (tab != NULL && !fo_q8_table_build(levels, tab)) {
            free(tab);
            tab = NULL;
        }
    }
#endif
    for (int64_t k = 0, blk = 0; k < n; k += FO_QBLOCK, ++blk) {
        const int64_t len = n - k < FO_QBLOCK ? n - k : FO_QBLOCK;
        memcpy(t.f, x + k, (size_t)len * sizeof(float));
        fo_q8_store(&t, len, levels, tab, q + k, absmax + blk, isa);
    }
    free(tab);
    return FO_OK;
}

int fo_q8_dequantize(const uint8_t *q, int64_t n, const float *code, const float *absmax, float *x)
{
    if (n < 0 || (n > 0 && (x == NULL || code == NULL || q == NULL || absmax == NULL)))
        return FO_ERR_NULL;
    for (int64_t i = 0; i < n; ++i)
        x[i] = code[q[i]] * absmax[i / FO_QBLOCK];
    return FO_OK;
}
