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
 * Nearest-code rounding is defined by an exact 8-step branchless binary search over the thresholds between
 * neighbouring codes (fo_q8_nearest), never a scan of the 256 codes. On AVX-512 with VBMI (fo_q8_map) the codes
 * are instead computed arithmetically from the value (class from the exponent, then a linear grid; lanes near a
 * boundary re-done by the search: the same codes, checked exhaustively) and decoded by byte-table permutes; on
 * plain AVX-512 the search and the decoding read their tables from registers. On AVX-512 the bf16 kernel is one
 * fused 16-lane loop (fo_adam_bf16_avx512); elsewhere three loops per tile.
 *
 * Work items start at multiples of FO_CHUNK, a multiple of FO_QBLOCK, so a block never spans two items and the
 * result does not depend on the thread count. */
#include <math.h>
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
/* ---- The arithmetic quantizer and the byte-plane decoder (AVX-512 with BW, DQ and VBMI: Ice Lake, Zen 4 and later).
 *
 * Encode. bitsandbytes' dynamic map is, on each side of 0, a run of classes — the zero code, decades 0..6 whose codes
 * are evenly spaced (1, 2, ..., 64 codes signed; 2, ..., 128 unsigned) and the code 1.0 — so the nearest code of a
 * normalised value y is: its class (the number of class boundaries |y| reaches; a boundary is the rounding threshold
 * between a class's last code and the next one's first), then base + trunc(|y| s - o) clamped to the class's last
 * code, s and o the class's linear grid (the thresholds inside a class sit at t = base + 1, base + 2, ...; checked to
 * 1/4 of FO_Q8_M when the tables are built). The class comes from |y|'s binary exponent (a 32-entry table: an octave
 * holds at most one boundary, checked) and one comparison with that octave's boundary. Negative values of the
 * signed map mirror the positive ones (code 254 - c, checked); the unsigned map gives them code 0.
 * y is x times 1/scale, which is within 3 units in the last place of x / scale (what the search rounds): so a lane
 * whose |y| lies within FO_Q8_EPS (relative) of its octave's boundary, or whose t lies within FO_Q8_M of an integer,
 * is re-done exactly (x / scale, then the search) — about 2 lanes in 1000 — and every other lane's code is the
 * search's. No division, no gather, no dependent chain of table lookups: ~25 vector operations per 16 lanes.
 * Blocks whose absmax is not 0 or a normal float within [2^-125, 2^125] (NaN, Inf, subnormal) take the search.
 *
 * Decode. The 256 codes' float32 bits as four byte planes of 256 bytes (16 registers); 64 codes at a time: each plane
 * is two vpermi2b lookups and a blend on the code's top bit; unpacking the four byte vectors gives the floats, in
 * order because the codes are permuted first (one vpermb). ~8 operations per 16 lanes instead of 21. */
#define FO_TARGET_Q8X __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vbmi,avx2,fma")))
#define FO_Q8_M 0x1p-13 /* a lane whose t is this near an integer is re-done exactly */
#define FO_Q8_EPS 0x1p-20 /* relative half-width of the band re-done around each class boundary */
typedef struct {
    int32_t cg[32];         /* the class of an octave's lowest value, by biased exponent mod 32 (octaves 2^-31..1) */
    float tlo[32], thi[32]; /* the class boundary inside the octave, minus and plus FO_Q8_EPS (both +Inf: none) */
    float s[16], o[16];     /* per class: t = |y| s - o */
    int32_t hi[16];         /* per class: its last code */
    int sgn;                /* 1: the signed map (negative values mirror), 0: unsigned (negative values: code 0) */
    uint8_t plane[4][256];  /* byte k of code c's float32 bits at plane[k][c] */
} fo_q8_map;
#define FO_HAVE_Q8_MAP 1

static int fo_q8_vbmi(void)
{
    static int ok = -1;
    if (ok < 0)
        ok = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
             && __builtin_cpu_supports("avx512vbmi");
    return ok;
}

/* Build mp's encoder tables from a map's level-order thresholds `lev` (all the encoder needs), and its decode planes
 * from the sorted map `code` unless that is NULL; 0 when the thresholds do not have the shape the encoder relies on
 * (then the search is used). Everything the encoder assumes is checked here. */
static int fo_q8_map_build(const float *FO_RESTRICT lev, const float *FO_RESTRICT code, fo_q8_map *FO_RESTRICT mp)
{
    float thr[255];
    for (int k = 0; k < 8; ++k)
        for (int i = 0; i < (1 << k); ++i)
            thr[(i << (8 - k)) + (128 >> k) - 1] = lev[(1 << k) - 1 + i];
    for (int c = 0; c < 254; ++c)
        if (!(thr[c] < thr[c + 1])) /* also rejects NaN */
            return 0;
    memset(mp, 0, sizeof(*mp));
    const int sgn = thr[0] < 0.0f, start = sgn ? 127 : 0; /* the zero code */
    if (sgn ? !(thr[126] < 0.0f && thr[127] > 0.0f) : !(thr[0] > 0.0f))
        return 0;
    int base[9], cnt[9];
    base[0] = start;
    cnt[0] = 1;
    for (int d = 0; d < 7; ++d)
        cnt[d + 1] = sgn ? 1 << d : 2 << d;
    cnt[8] = 1;
    for (int k = 1; k < 9; ++k)
        base[k] = base[k - 1] + cnt[k - 1];
    if (base[8] != 255)
        return 0;
    double bound[9] = {0}; /* bound[k]: the threshold below class k's first code (k >= 1) */
    for (int k = 1; k < 9; ++k) {
        bound[k] = thr[base[k] - 1];
        if (!(bound[k] > bound[k - 1]))
            return 0;
    }
    if (!(bound[1] > 0x1p-30))
        return 0;
    for (int k = 0; k < 9; ++k) {
        const int b = base[k], n = cnt[k];
        double s = 0.0, o = -(b + 0.5); /* one code: t = b + 0.5 */
        if (n == 2) { /* one inner threshold, at t = b + 1; the class's lowest value at t = b + 0.5 */
            s = 0.5 / (thr[b] - bound[k]);
            o = thr[b] * s - (b + 1);
        } else if (n > 2) { /* the inner thresholds at t = b + 1 .. b + n - 1 */
            s = (n - 2) / ((double)thr[b + n - 2] - thr[b]);
            o = thr[b] * s - (b + 1);
        }
        mp->s[k] = (float)s;
        mp->o[k] = (float)o;
        mp->hi[k] = b + n - 1;
        const double fs = mp->s[k], fo = mp->o[k];
        for (int j = 1; j < n; ++j) { /* every inner threshold within FO_Q8_M / 4 of its integer */
            const double t = thr[b + j - 1] * fs - fo;
            if (!(t > b + j - FO_Q8_M / 4 && t < b + j + FO_Q8_M / 4))
                return 0;
        }
        if (k >= 1 && !(bound[k] * (1 - 2 * FO_Q8_EPS) * fs - fo > b + FO_Q8_M)) /* lowest values truncate to b */
            return 0;
    }
    for (int e = 96; e < 128; ++e) {
        const double lo = ldexp(1.0, e - 127), hi = 2 * lo;
        int cls = 0, inside = 0;
        double b_in = 0;
        for (int k = 1; k < 9; ++k) {
            if (bound[k] <= lo)
                ++cls;
            else if (bound[k] < hi) {
                ++inside;
                b_in = bound[k];
            }
            /* no boundary near an octave's edge: y and x / scale then always share the octave's class */
            if (fabs(bound[k] / lo - 1) < 4 * FO_Q8_EPS || fabs(bound[k] / hi - 1) < 4 * FO_Q8_EPS)
                return 0;
        }
        if (inside > 1)
            return 0;
        mp->cg[e & 31] = cls;
        mp->tlo[e & 31] = inside ? (float)(b_in * (1 - FO_Q8_EPS)) : INFINITY;
        mp->thi[e & 31] = inside ? (float)(b_in * (1 + FO_Q8_EPS)) : INFINITY;
    }
    if (sgn) /* the negative side mirrors the positive one (up to the tie rule, inside the re-done bands) */
        for (int c = 127; c < 254; ++c)
            if (fabs((double)thr[253 - c] + thr[c]) > 1e-6 * thr[c])
                return 0;
    mp->sgn = sgn;
    if (code != NULL)
        for (int c = 0; c < 256; ++c) {
            fo_bits32 u;
            u.f = code[c];
            for (int k = 0; k < 4; ++k)
                mp->plane[k][c] = (uint8_t)(u.u >> (8 * k));
        }
    return 1;
}

/* The built tables of the last maps this thread used (a kernel call compares 2 KB per map instead of rebuilding). */
typedef struct {
    float lev[256], code[256];
    int used, has_code, ok;
    fo_q8_map m;
} fo_q8_cached;

/* mp for (lev, code) — code may be NULL: the encoder alone — or NULL when this CPU or these maps cannot use it. */
static const fo_q8_map *fo_q8_map_get(const float *lev, const float *code)
{
    static __thread fo_q8_cached cache[3];
    static __thread int next;
    if (fo_isa() != 2 || !fo_q8_vbmi())
        return NULL;
    for (int i = 0; i < 3; ++i) {
        fo_q8_cached *c = &cache[i];
        if (c->used && c->has_code == (code != NULL) && memcmp(c->lev, lev, sizeof(c->lev)) == 0
            && (code == NULL || memcmp(c->code, code, sizeof(c->code)) == 0))
            return c->ok ? &c->m : NULL;
    }
    fo_q8_cached *c = &cache[next];
    next = (next + 1) % 3;
    memcpy(c->lev, lev, sizeof(c->lev));
    if (code != NULL)
        memcpy(c->code, code, sizeof(c->code));
    c->has_code = code != NULL;
    c->ok = fo_q8_map_build(lev, code, &c->m);
    c->used = 1;
    return c->ok ? &c->m : NULL;
}

/* 16 lanes of the arithmetic quantizer: q[0..15] = nearest(code, x[0..15] / scale), r = 1 / scale in every lane. */
FO_TARGET_Q8X static inline __attribute__((always_inline)) void
fo_q8_enc16(const float *FO_RESTRICT x, const __m512 r, const float scale, const fo_q8_map *FO_RESTRICT mp,
            const float *FO_RESTRICT lev, uint8_t *FO_RESTRICT q)
{
    const __m512i mag = _mm512_set1_epi32(0x7FFFFFFF), floor31 = _mm512_set1_epi32(0x30000000); /* 2^-31 */
    const __m512i yb = _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(x), r));
    const __m512i ab = _mm512_and_si512(yb, mag);
    const __m512 a = _mm512_castsi512_ps(ab);
    const __m512i e = _mm512_srli_epi32(_mm512_max_epu32(ab, floor31), 23); /* vpermi2 reads e mod 32 */
    const __mmask16 ge = _mm512_cmp_ps_mask(
        a, _mm512_permutex2var_ps(_mm512_loadu_ps(mp->tlo), e, _mm512_loadu_ps(mp->tlo + 16)), _CMP_GE_OQ);
    const __mmask16 lt = _mm512_cmp_ps_mask(
        a, _mm512_permutex2var_ps(_mm512_loadu_ps(mp->thi), e, _mm512_loadu_ps(mp->thi + 16)), _CMP_LT_OQ);
    __m512i cls = _mm512_permutex2var_epi32(_mm512_loadu_si512(mp->cg), e, _mm512_loadu_si512(mp->cg + 16));
    cls = _mm512_mask_add_epi32(cls, ge, cls, _mm512_set1_epi32(1));
    const __m512 t = _mm512_fmsub_ps(a, _mm512_permutexvar_ps(cls, _mm512_loadu_ps(mp->s)),
                                     _mm512_permutexvar_ps(cls, _mm512_loadu_ps(mp->o)));
    const __m512 fr = _mm512_reduce_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); /* t - round(t) */
    const __mmask16 near = _mm512_cmp_ps_mask(_mm512_abs_ps(fr), _mm512_set1_ps((float)FO_Q8_M), _CMP_LT_OQ);
    __m512i c = _mm512_min_epi32(_mm512_cvttps_epi32(t), _mm512_permutexvar_epi32(cls, _mm512_loadu_si512(mp->hi)));
    const __mmask16 neg = _mm512_movepi32_mask(yb);
    if (mp->sgn)
        c = _mm512_max_epi32(_mm512_mask_sub_epi32(c, neg, _mm512_set1_epi32(254), c), _mm512_setzero_si512());
    else
        c = _mm512_maskz_mov_epi32((__mmask16)~neg, c);
    _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(c));
    unsigned redo = (unsigned)((ge & lt) | near);
    while (redo) {
        const int b = __builtin_ctz(redo);
        redo &= redo - 1;
        q[b] = fo_q8_nearest(x[b] / scale, lev);
    }
}

/* q = nearest(code, x / scale) for the n values of tile x (see above); absmax 0 or normal within [2^-125, 2^125]. */
static FO_TARGET_Q8X void fo_q8_encode_x(const fo_tile *FO_RESTRICT x, int64_t n, float scale,
                                         const fo_q8_map *FO_RESTRICT mp, const float *FO_RESTRICT lev,
                                         uint8_t *FO_RESTRICT q)
{
    const __m512 r = _mm512_set1_ps(1.0f / scale);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        fo_q8_enc16(x->f + i, r, scale, mp, lev, q + i);
    for (; i < n; ++i)
        q[i] = fo_q8_nearest(x->f[i] / scale, lev);
}

#if defined(__clang__)
#define FO_NOCLONE __attribute__((noinline))
#else
#define FO_NOCLONE __attribute__((noinline, noclone)) /* no constant-n clone: its dead tail loop would warn */
#endif
static FO_TARGET_Q8X FO_NOCLONE void
fo_q8_decode_x(const uint8_t *FO_RESTRICT q, int64_t n, const fo_q8_map *FO_RESTRICT mp,
               const float *FO_RESTRICT code, float s, float *FO_RESTRICT out)
{
    __m512i P[4][4];
    for (int k = 0; k < 4; ++k)
        for (int j = 0; j < 4; ++j)
            P[k][j] = _mm512_loadu_si512(mp->plane[k] + 64 * j);
    /* byte p = 16 L + 4 r + j of the permuted codes is code 16 r + 4 L + j: after the two unpack stages register r
     * holds codes 16 r .. 16 r + 15 in order */
    uint8_t perm_b[64];
    for (int p = 0; p < 64; ++p)
        perm_b[p] = (uint8_t)(16 * ((p & 15) >> 2) + 4 * (p >> 4) + (p & 3));
    const __m512i perm = _mm512_loadu_si512(perm_b);
    const __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512i idx = _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(q + i));
        const __mmask64 top = _mm512_movepi8_mask(idx);
        __m512i b[4];
        for (int k = 0; k < 4; ++k)
            b[k] = _mm512_mask_blend_epi8(top, _mm512_permutex2var_epi8(P[k][0], idx, P[k][1]),
                                          _mm512_permutex2var_epi8(P[k][2], idx, P[k][3]));
        const __m512i lo01 = _mm512_unpacklo_epi8(b[0], b[1]), hi01 = _mm512_unpackhi_epi8(b[0], b[1]);
        const __m512i lo23 = _mm512_unpacklo_epi8(b[2], b[3]), hi23 = _mm512_unpackhi_epi8(b[2], b[3]);
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(lo01, lo23)), vs));
        _mm512_storeu_ps(out + i + 16, _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(lo01, lo23)), vs));
        _mm512_storeu_ps(out + i + 32, _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(hi01, hi23)), vs));
        _mm512_storeu_ps(out + i + 48, _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(hi01, hi23)), vs));
    }
    for (; i < n; ++i)
        out[i] = code[q[i]] * s;
}

#define FO_Q8_NEAREST(isa, x, n, lev, q) \
    ((isa) == 2 ? fo_q8_nearest_avx512(x, n, lev, q) : fo_q8_nearest_scalar(x, n, lev, q))
#define FO_Q8_DECODE(isa, mp, q, n, code, s, out)                                                          \
    ((mp) != NULL ? fo_q8_decode_x(q, n, mp, code, s, out)                                                 \
                  : (isa) == 2 ? fo_q8_decode_avx512(q, n, code, s, out) : fo_q8_decode_scalar(q, n, code, s, out))
#else
typedef struct { int unused; } fo_q8_map; /* the arithmetic quantizer needs AVX-512 */
#define FO_Q8_NEAREST(isa, x, n, lev, q) fo_q8_nearest_scalar(x, n, lev, q)
#define FO_Q8_DECODE(isa, mp, q, n, code, s, out) fo_q8_decode_scalar(q, n, code, s, out)
#endif

/* Encode tile x (n elements) in place of q and *absmax: absmax = max |x| with NaN propagating (np.max) — on the
 * magnitudes' bit patterns, whose unsigned order is the float order for non-negative floats with every NaN above
 * +Inf, so an integer max (which vectorises) gives a NaN if there is one — then q = nearest(code, x / scale): with
 * the arithmetic quantizer when mp is given (x is then left as it is), else by dividing x in place and searching. */
FO_INLINE void fo_q8_store(fo_tile *FO_RESTRICT x, int64_t n, const float *FO_RESTRICT lev,
                           const fo_q8_map *mp, uint8_t *FO_RESTRICT q, float *absmax, const int isa)
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
#ifdef FO_HAVE_Q8_MAP
    if (mp != NULL && (a == 0.0f || (a >= 0x1p-125f && a <= 0x1p125f))) {
        fo_q8_encode_x(x, n, scale, mp, lev, q);
        return;
    }
#else
    (void)mp;
#endif
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
        x->f[i] = x->f[i] / scale;
    FO_Q8_NEAREST(isa, x, n, lev, q);
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

#ifdef FO_HAVE_Q8_MAP
FO_INLINE int fo_q8_fast_ok(float a) { return a == 0.0f || (a >= 0x1p-125f && a <= 0x1p125f); }

/* The search path for one tile (absmax NaN, Inf or subnormal): x / scale in place, then the register search. */
static FO_TARGET_AVX512 void fo_q8_exact_tile(fo_tile *FO_RESTRICT x, int64_t n, float scale,
                                              const float *FO_RESTRICT lev, uint8_t *FO_RESTRICT q)
{
    for (int64_t i = 0; i < n; ++i)
        x->f[i] = x->f[i] / scale;
    fo_q8_nearest_avx512(x, n, lev, q);
}

/* nb full blocks on AVX-512 with VBMI, software-pipelined: one 16-lane loop runs Adam on block b (decoded moments
 * in, new moments to a tile, their absmax accumulated) and encodes block b - 1's tile, so the divider-bound Adam
 * lanes and the permute-bound encoder lanes overlap. Each lane's arithmetic is FO_ADAM_ELEMENT's, operation for
 * operation (IEEE, so bit for bit); each block's codes and absmax are fo_q8_store's. */
FO_TARGET_Q8X static inline __attribute__((always_inline)) void
fo_adam_q8_pipe(const fo_adam_f32c c, float *FO_RESTRICT p, const float *FO_RESTRICT g, uint8_t *FO_RESTRICT q1,
                uint8_t *FO_RESTRICT q2, float *FO_RESTRICT a1, float *FO_RESTRICT a2, const float *FO_RESTRICT code1,
                const float *FO_RESTRICT code2, const float *FO_RESTRICT lev1, const float *FO_RESTRICT lev2,
                const fo_q8_map *FO_RESTRICT mp1, const fo_q8_map *FO_RESTRICT mp2, const int64_t nb,
                const int maximize, const int l2, const int small_w)
{
    fo_tile M[2], V[2];
    const __m512 wd = _mm512_set1_ps(c.wd), decay = _mm512_set1_ps(c.decay), w1 = _mm512_set1_ps(c.w1);
    const __m512 w1m = _mm512_set1_ps(c.w1 - 1), b2 = _mm512_set1_ps(c.b2), w2 = _mm512_set1_ps(c.w2);
    const __m512 bc2s = _mm512_set1_ps(c.bc2s), eps = _mm512_set1_ps(c.eps), ns = _mm512_set1_ps(c.neg_step);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u), mag = _mm512_set1_epi32(0x7FFFFFFF);
    float sc1 = 1.0f, sc2 = 1.0f;
    int ok1 = 0, ok2 = 0;
    for (int64_t blk = 0; blk <= nb; ++blk) {
        const int cur = (int)(blk & 1), prv = cur ^ 1;
        const int64_t k = blk * FO_QBLOCK;
        uint8_t *pq1 = q1 + k - FO_QBLOCK, *pq2 = q2 + k - FO_QBLOCK;
        if (blk == nb) { /* the last block's codes */
            if (ok1)
                fo_q8_encode_x(&M[prv], FO_QBLOCK, sc1, mp1, lev1, pq1);
            else
                fo_q8_exact_tile(&M[prv], FO_QBLOCK, sc1, lev1, pq1);
            if (ok2)
                fo_q8_encode_x(&V[prv], FO_QBLOCK, sc2, mp2, lev2, pq2);
            else
                fo_q8_exact_tile(&V[prv], FO_QBLOCK, sc2, lev2, pq2);
            break;
        }
        fo_q8_decode_x(q1 + k, FO_QBLOCK, mp1, code1, a1[blk], M[cur].f);
        fo_q8_decode_x(q2 + k, FO_QBLOCK, mp2, code2, a2[blk], V[cur].f);
        const int enc1 = blk > 0 && ok1, enc2 = blk > 0 && ok2;
        const __m512 r1 = _mm512_set1_ps(1.0f / sc1), r2 = _mm512_set1_ps(1.0f / sc2);
        __m512i top1 = _mm512_setzero_si512(), top2 = _mm512_setzero_si512();
        float *FO_RESTRICT pk = p + k;
        const float *FO_RESTRICT gk = g + k;
        for (int j = 0; j < FO_QBLOCK; j += 16) {
            __m512 pi = _mm512_loadu_ps(pk + j), gi = _mm512_loadu_ps(gk + j);
            if (maximize)
                gi = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(gi), sign));
            if (l2)
                gi = _mm512_fmadd_ps(wd, pi, gi);
            pi = _mm512_mul_ps(pi, decay);
            const __m512 mo = _mm512_load_ps(M[cur].f + j), vo = _mm512_load_ps(V[cur].f + j);
            const __m512 d = _mm512_sub_ps(gi, mo);
            const __m512 mi = small_w ? _mm512_fmadd_ps(w1, d, mo) : _mm512_fmadd_ps(w1m, d, gi);
            const __m512 vi = _mm512_fmadd_ps(_mm512_mul_ps(w2, gi), gi, _mm512_mul_ps(vo, b2));
            const __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2s), eps);
            _mm512_storeu_ps(pk + j, _mm512_add_ps(pi, _mm512_div_ps(_mm512_mul_ps(ns, mi), den)));
            _mm512_store_ps(M[cur].f + j, mi);
            _mm512_store_ps(V[cur].f + j, vi);
            top1 = _mm512_max_epu32(top1, _mm512_and_si512(_mm512_castps_si512(mi), mag));
            top2 = _mm512_max_epu32(top2, _mm512_and_si512(_mm512_castps_si512(vi), mag));
            if (enc1)
                fo_q8_enc16(M[prv].f + j, r1, sc1, mp1, lev1, pq1 + j);
            if (enc2)
                fo_q8_enc16(V[prv].f + j, r2, sc2, mp2, lev2, pq2 + j);
        }
        if (blk > 0 && !ok1)
            fo_q8_exact_tile(&M[prv], FO_QBLOCK, sc1, lev1, pq1);
        if (blk > 0 && !ok2)
            fo_q8_exact_tile(&V[prv], FO_QBLOCK, sc2, lev2, pq2);
        fo_bits32 u1, u2;
        u1.u = (uint32_t)_mm512_reduce_max_epu32(top1);
        u2.u = (uint32_t)_mm512_reduce_max_epu32(top2);
        a1[blk] = u1.f;
        a2[blk] = u2.f;
        sc1 = u1.f > 0.0f ? u1.f : 1.0f;
        sc2 = u2.f > 0.0f ? u2.f : 1.0f;
        ok1 = fo_q8_fast_ok(u1.f);
        ok2 = fo_q8_fast_ok(u2.f);
    }
}

static FO_TARGET_Q8X __attribute__((noinline)) void
fo_adam_q8_x(const fo_adam_f32c c, float *p, const float *g, uint8_t *q1, uint8_t *q2, float *a1, float *a2,
             const float *code1, const float *code2, const float *lev1, const float *lev2, const fo_q8_map *mp1,
             const fo_q8_map *mp2, const int64_t nb, const int maximize_, const int l2_, const int small_w_)
{
#define FO_CALL_(x, y, z) fo_adam_q8_pipe(c, p, g, q1, q2, a1, a2, code1, code2, lev1, lev2, mp1, mp2, nb, x, y, z)
    if (maximize_) {
        if (l2_) { if (small_w_) FO_CALL_(1, 1, 1); else FO_CALL_(1, 1, 0); }
        else     { if (small_w_) FO_CALL_(1, 0, 1); else FO_CALL_(1, 0, 0); }
    } else {
        if (l2_) { if (small_w_) FO_CALL_(0, 1, 1); else FO_CALL_(0, 1, 0); }
        else     { if (small_w_) FO_CALL_(0, 0, 1); else FO_CALL_(0, 0, 0); }
    }
#undef FO_CALL_
}
#endif

FO_INLINE void fo_adam_q8_range(const fo_adam_f32c c, float *FO_RESTRICT p, const float *FO_RESTRICT g,
                                uint8_t *FO_RESTRICT q1, uint8_t *FO_RESTRICT q2, float *FO_RESTRICT a1,
                                float *FO_RESTRICT a2, const float *FO_RESTRICT code1,
                                const float *FO_RESTRICT code2, const float *FO_RESTRICT lev1,
                                const float *FO_RESTRICT lev2, const fo_q8_map *mp1,
                                const fo_q8_map *mp2, const int64_t n,
                                const int maximize, const int l2, const int small_w, const int isa)
{
    fo_tile mb, vb;
    int64_t k = 0, blk = 0;
#ifdef FO_HAVE_Q8_MAP
    if (mp1 != NULL && mp2 != NULL && n >= FO_QBLOCK) { /* the full blocks pipelined, a partial last one below */
        blk = n / FO_QBLOCK;
        k = blk * FO_QBLOCK;
        fo_adam_q8_x(c, p, g, q1, q2, a1, a2, code1, code2, lev1, lev2, mp1, mp2, blk, maximize, l2, small_w);
    }
#endif
    for (; k < n; k += FO_QBLOCK, ++blk) {
        const int64_t len = n - k < FO_QBLOCK ? n - k : FO_QBLOCK;
        const float s1 = a1[blk], s2 = a2[blk];
        const uint8_t *FO_RESTRICT c1 = q1 + k, *FO_RESTRICT c2 = q2 + k;
        FO_Q8_DECODE(isa, mp1, c1, len, code1, s1, mb.f);
        FO_Q8_DECODE(isa, mp2, c2, len, code2, s2, vb.f);
        fo_adam_tile(c, p + k, g + k, mb.f, vb.f, len, maximize, l2, small_w);
        fo_q8_store(&mb, len, lev1, mp1, q1 + k, a1 + blk, isa);
        fo_q8_store(&vb, len, lev2, mp2, q2 + k, a2 + blk, isa);
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

/* What the work items read: the hyper-parameters and, on AVX-512 with VBMI, the arithmetic quantizer's tables of the
 * two maps (NULL: the search and the register-table decoder). */
typedef struct {
    const fo_adam_lowp_hyper *h;
    const fo_q8_map *mp1, *mp2;
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
#define FO_CALL_(x, y, z) \
    fo_adam_q8_range(c, p, g, q1, q2, a1, a2, code1, code2, lev1, lev2, x_->mp1, x_->mp2, n, x, y, z, isa)
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
#ifdef FO_HAVE_Q8_MAP
    /* Every tensor must use the same maps for the shared tables (fastopt's always do); otherwise the search. */
    if (h->state_kind == FO_LOWP_Q8 && isa == 2) {
        void *const *b0 = NULL;
        int same = 1;
        for (int64_t i = 0; i < t->n_tensors && same; ++i) {
            if (t->sizes[i] == 0) /* an empty tensor's buffers may be NULL */
                continue;
            void *const *bi = t->bufs + i * t->n_bufs;
            if (b0 == NULL)
                b0 = bi;
            for (int j = 6; j < 10 && same; ++j)
                same = bi[j] == b0[j] || memcmp(bi[j], b0[j], 256 * sizeof(float)) == 0;
        }
        if (same && b0 != NULL) {
            x.mp1 = fo_q8_map_get((const float *)b0[8], (const float *)b0[6]);
            x.mp2 = fo_q8_map_get((const float *)b0[9], (const float *)b0[7]);
        }
    }
#endif
    FO_RUN_ITEMS(t, isa == 2 ? fo_adam_lowp_avx512 : isa == 1 ? fo_adam_lowp_avx2 : fo_adam_lowp_base, &x);
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
    const fo_q8_map *mp = NULL;
#ifdef FO_HAVE_Q8_MAP
    if (n > 0)
        mp = fo_q8_map_get(levels, NULL);
#endif
    for (int64_t k = 0, blk = 0; k < n; k += FO_QBLOCK, ++blk) {
        const int64_t len = n - k < FO_QBLOCK ? n - k : FO_QBLOCK;
        memcpy(t.f, x + k, (size_t)len * sizeof(float));
        fo_q8_store(&t, len, levels, mp, q + k, absmax + blk, isa);
    }
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
