/* fo_q8.h — the compressed-state encoders and decoders shared by csrc/lowp.c (Adam) and csrc/lowp_state.c (Lion,
 * SGD-momentum): bfloat16 nearest-even, and the blockwise 8-bit quantizer (nearest code of x / absmax by the exact
 * threshold search, or on AVX-512 with VBMI the arithmetic encoder and byte-plane decoder; see csrc/lowp.c's header
 * comment for the scheme). Moved out of lowp.c unchanged; every function is static, one copy per including file. */
#ifndef FO_Q8_H
#define FO_Q8_H
#include <math.h>
#include <string.h>

#include "fastopt.h"

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
 * functions compute. The baseline variant uses the scalar loops, and so does AVX2 without the arithmetic encoder's
 * tables (maps of another shape) and for decoding. */
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
 * search's. No division, no gather, no dependent chain of table lookups. The AVX-512 encoder (fo_q8_code16, round 7)
 * reads the octave's class and boundary from one packed record, tests the re-done bands on integer bits (the
 * boundary's by one subtraction, t's by the fraction bits of t + 512 + FO_Q8_M2) and narrows 64 codes at a time by
 * saturating packs: ~19 vector operations per 16 lanes instead of ~25 (17 for the Adam pipe's second moment, known
 * to be >= +0); its bands differ from the AVX2 encoder's, its codes do not (bench/q8_micro.sh check).
 * Blocks whose absmax is not 0 or a normal float within [2^-125, 2^125] (NaN, Inf, subnormal) take the search.
 *
 * Decode. The 256 codes' float32 bits as four byte planes of 256 bytes (16 registers); 64 codes at a time: each plane
 * is two vpermi2b lookups and a blend on the code's top bit; unpacking the four byte vectors gives the floats, in
 * order because the codes are permuted first (one vpermb). ~8 operations per 16 lanes instead of 21. */
#define FO_TARGET_Q8X __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vbmi,avx2,fma")))
#define FO_Q8_M 0x1p-13 /* a lane whose t is this near an integer is re-done exactly */
#define FO_Q8_EPS 0x1p-20 /* relative half-width of the band re-done around each class boundary */
#define FO_Q8_M2 0x1p-12 /* fo_q8_code16: a lane whose t is this near an integer is re-done exactly */
typedef struct {
    int32_t cg[32];         /* the class of an octave's lowest value, by biased exponent mod 32 (octaves 2^-31..1) */
    float tlo[32], thi[32]; /* the class boundary inside the octave, minus and plus FO_Q8_EPS (both +Inf: none) */
    float s[16], o[16];     /* per class: t = |y| s - o */
    int32_t hi[16];         /* per class: its last code */
    /* fo_q8_code16's tables: rec[e]: the boundary's bits less 16..31 ulps, rounded down to a multiple of 16, plus the
     * octave's class cg (0x7F000000 + cg: no boundary); per class o3 = o - FO_Q8_M2 - 512 (t2 = |y| s - o3 =
     * t + FO_Q8_M2 + 512) and hi3 = hi + 512 */
    int32_t rec[32];
    float o3[16];
    int32_t hi3[16];
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
        /* the same for t2 = |y| s - o3 = t + FO_Q8_M2 + 512 (fo_q8_code16): the inner thresholds within FO_Q8_M2 / 4
         * of an integer plus FO_Q8_M2 (o3 rounded as stored), the lowest values above 512 + b + FO_Q8_M2 */
        mp->o3[k] = (float)(o - FO_Q8_M2 - 512);
        mp->hi3[k] = b + n - 1 + 512;
        const double fo3 = mp->o3[k];
        for (int j = 1; j < n; ++j) {
            const double t = thr[b + j - 1] * fs - fo3 - FO_Q8_M2 - 512;
            if (!(t > b + j - FO_Q8_M2 / 4 && t < b + j + FO_Q8_M2 / 4))
                return 0;
        }
        if (k >= 1 && !(bound[k] * (1 - 2 * FO_Q8_EPS) * fs - fo3 > 512 + b + FO_Q8_M2))
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
        fo_bits32 bb;
        bb.f = (float)b_in; /* b_in is a float32 threshold */
        mp->rec[e & 31] = inside ? (int32_t)(((bb.u - 16u) & ~15u) | (uint32_t)cls) : 0x7F000000 | cls;
    }
    if (sgn) /* the negative side mirrors the positive one up to the tie rule: at most 2 ulps apart */
        for (int c = 127; c < 254; ++c) {
            fo_bits32 pos, neg;
            pos.f = thr[c];
            neg.f = -thr[253 - c];
            if (fabs((double)thr[253 - c] + thr[c]) > 1e-6 * thr[c]
                || (pos.u > neg.u ? pos.u - neg.u : neg.u - pos.u) > 2u)
                return 0;
        }
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

/* mp for (lev, code) — code may be NULL: the encoder alone — or NULL when this CPU or these maps cannot use it: the
 * arithmetic encoder runs on AVX-512 with VBMI (with the byte-plane decoder) and on AVX2 (fo_q8_encode_avx2). */
static const fo_q8_map *fo_q8_map_get(const float *lev, const float *code)
{
    static __thread fo_q8_cached cache[3];
    static __thread int next;
    const int isa = fo_isa();
    if (isa == 0 || (isa == 2 && !fo_q8_vbmi())) /* AVX-512 without VBMI: the register search */
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

/* 16 lanes of the arithmetic quantizer: the codes of x[0..15] / scale as int32 biased by 512 (a value below 512
 * meaning code 0: fo_q8_enc64 and fo_q8_enc16 clamp it), r = 1 / scale in every lane; *redo gets the lanes to re-do
 * exactly. 4 table permutes. The class and the boundary test come from one 32-entry permute of records rec[e] (the
 * boundary's bits B rounded to R = (B - 16..31) & ~15, plus the class cg in the 4 low bits, which are all vpermps
 * reads of the index): d = |y|'s bits - rec[e]; d < 0 is below B, d >= 48 above B (R + cg + 48 > B + 16), and
 * 0 <= d < 48 — 8 ulps or more each side of B, which y's 3 ulps of error and the mirror's 2 cannot cross — is re-done.
 * t2 = |y| s - o3 = t + FO_Q8_M2 + 512 lies in [512, 1024), where a float's fraction is its 14 low bits: t2 within
 * 2 FO_Q8_M2 above an integer (bits 3..13 zero: one vptestnmd) marks the lanes whose t is within FO_Q8_M2 of an
 * integer; elsewhere trunc(t2) = trunc(t) + 512 is the search's code + 512. The errors in t: the thresholds' placement
 * (within FO_Q8_M2 / 4, checked), y's 3 ulps (at most 142 x 3 x 2^-23), the mirror's 2 ulps, the rounding of t2
 * (2^-15): below 0.7 FO_Q8_M2. `nonneg`: every x is known to be +0 or more (no sign to clear or mirror). */
FO_TARGET_Q8X static inline __attribute__((always_inline)) __m512i
fo_q8_code16(const __m512 xv, const __m512 r, const fo_q8_map *FO_RESTRICT mp, __mmask16 *redo, const int nonneg)
{
    const __m512i floor31 = _mm512_set1_epi32(0x30000000); /* 2^-31 */
    const __m512i yb = _mm512_castps_si512(_mm512_mul_ps(xv, r));
    const __m512i ab = nonneg ? yb : _mm512_and_si512(yb, _mm512_set1_epi32(0x7FFFFFFF));
    const __m512i e = _mm512_srli_epi32(_mm512_max_epu32(ab, floor31), 23); /* vpermi2 reads e mod 32 */
    const __m512i rec = _mm512_permutex2var_epi32(_mm512_loadu_si512(mp->rec), e, _mm512_loadu_si512(mp->rec + 16));
    const __m512i d = _mm512_sub_epi32(ab, rec);
    const __mmask16 band = _mm512_cmplt_epu32_mask(d, _mm512_set1_epi32(48));
    const __m512i cls = _mm512_mask_add_epi32(rec, _mm512_cmpge_epi32_mask(d, _mm512_set1_epi32(24)), rec,
                                              _mm512_set1_epi32(1)); /* the class in bits 0..3 */
    const __m512 t = _mm512_fmsub_ps(_mm512_castsi512_ps(ab), _mm512_permutexvar_ps(cls, _mm512_loadu_ps(mp->s)),
                                     _mm512_permutexvar_ps(cls, _mm512_loadu_ps(mp->o3)));
    *redo = band | _mm512_testn_epi32_mask(_mm512_castps_si512(t), _mm512_set1_epi32(0x3FF8));
    const __m512i c = _mm512_min_epi32(_mm512_cvttps_epi32(t), _mm512_permutexvar_epi32(cls, _mm512_loadu_si512(mp->hi3)));
    if (nonneg)
        return c;
    if (mp->sgn) /* the mirror: 512 + 254 - (c - 512) (511 for the code 255 of -1.0's side: code 0) */
        return _mm512_mask_sub_epi32(c, _mm512_movepi32_mask(yb), _mm512_set1_epi32(1278), c);
    return _mm512_min_epi32(c, yb); /* negative y (int32 bits < 0): code 0; c <= yb for y >= 0 (c = 512 below 2^-30) */
}

/* Re-do the lanes of mask `redo` exactly: q[b] = the search's code of x[b] / scale. */
FO_INLINE void fo_q8_redo(uint64_t redo, const float *FO_RESTRICT x, const float scale, const float *FO_RESTRICT lev,
                          uint8_t *FO_RESTRICT q)
{
    while (redo) {
        const int b = __builtin_ctzll(redo);
        redo &= redo - 1;
        q[b] = fo_q8_nearest(x[b] / scale, lev);
    }
}

/* 16 lanes: q[0..15] = nearest(code, x[0..15] / scale). */
FO_TARGET_Q8X static inline __attribute__((always_inline)) void
fo_q8_enc16(const float *FO_RESTRICT x, const __m512 r, const float scale, const fo_q8_map *FO_RESTRICT mp,
            const float *FO_RESTRICT lev, uint8_t *FO_RESTRICT q)
{
    __mmask16 redo;
    const __m512i c = fo_q8_code16(_mm512_loadu_ps(x), r, mp, &redo, 0);
    const __m512i c0 = _mm512_max_epi32(_mm512_sub_epi32(c, _mm512_set1_epi32(512)), _mm512_setzero_si512());
    _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(c0));
    fo_q8_redo(redo, x, scale, lev, q);
}

/* 64 lanes: q[0..63] = nearest(code, x[0..63] / scale); `nonneg` as fo_q8_code16's. The four biased code vectors are
 * narrowed to words (they are in [0, 767]), unbiased there (32 lanes an operation), narrowed to bytes with unsigned
 * saturation (the values below 0 become code 0) and put back in order by one dword permute. */
FO_TARGET_Q8X static inline __attribute__((always_inline)) void
fo_q8_enc64(const float *FO_RESTRICT x, const __m512 r, const float scale, const fo_q8_map *FO_RESTRICT mp,
            const float *FO_RESTRICT lev, uint8_t *FO_RESTRICT q, const int nonneg)
{
    __mmask16 k0, k1, k2, k3;
    const __m512i c0 = fo_q8_code16(_mm512_loadu_ps(x), r, mp, &k0, nonneg);
    const __m512i c1 = fo_q8_code16(_mm512_loadu_ps(x + 16), r, mp, &k1, nonneg);
    const __m512i c2 = fo_q8_code16(_mm512_loadu_ps(x + 32), r, mp, &k2, nonneg);
    const __m512i c3 = fo_q8_code16(_mm512_loadu_ps(x + 48), r, mp, &k3, nonneg);
    const __m512i bias = _mm512_set1_epi16(512);
    const __m512i w01 = _mm512_sub_epi16(_mm512_packus_epi32(c0, c1), bias);
    const __m512i w23 = _mm512_sub_epi16(_mm512_packus_epi32(c2, c3), bias);
    /* per 128-bit lane L: dword 4 L + k of the packed bytes holds codes 16 k + 4 L .. + 3 */
    const __m512i b = _mm512_packus_epi16(w01, w23);
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_si512(q, _mm512_permutexvar_epi32(perm, b));
    fo_q8_redo((uint64_t)k0 | (uint64_t)k1 << 16 | (uint64_t)k2 << 32 | (uint64_t)k3 << 48, x, scale, lev, q);
}

/* q = nearest(code, x / scale) for the n values of tile x (see above); absmax 0 or normal within [2^-125, 2^125]. */
static FO_TARGET_Q8X void fo_q8_encode_x(const fo_tile *FO_RESTRICT x, int64_t n, float scale,
                                         const fo_q8_map *FO_RESTRICT mp, const float *FO_RESTRICT lev,
                                         uint8_t *FO_RESTRICT q)
{
    const __m512 r = _mm512_set1_ps(1.0f / scale);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        fo_q8_enc64(x->f + i, r, scale, mp, lev, q + i, 0);
    for (; i + 16 <= n; i += 16)
        fo_q8_enc16(x->f + i, r, scale, mp, lev, q + i);
    for (; i < n; ++i)
        q[i] = fo_q8_nearest(x->f[i] / scale, lev);
}

/* ---- The arithmetic quantizer on AVX2 + FMA: the round-6 AVX-512 encoder's operations lane for lane on 8 lanes
 * (tables tlo, thi, cg, s, o, hi; the same codes as fo_q8_code16's, other lanes re-done), its 32-entry tables read by
 * four vpermps and three blends on bits 3 and 4 of the index, the 16-entry ones by two vpermps and a blend; codes
 * narrowed 32 at a time by saturating packs. */
FO_TARGET_AVX2 static inline __attribute__((always_inline)) __m256
fo_lut32_avx2(const float *FO_RESTRICT t, const __m256i i, const __m256 b3, const __m256 b4)
{
    const __m256 lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(t), i),
                                       _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 8), i), b3);
    const __m256 hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 16), i),
                                       _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 24), i), b3);
    return _mm256_blendv_ps(lo, hi, b4);
}
FO_TARGET_AVX2 static inline __attribute__((always_inline)) __m256
fo_lut16_avx2(const float *FO_RESTRICT t, const __m256i i, const __m256 b3)
{
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(t), i),
                            _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 8), i), b3);
}

/* 8 lanes: the codes of x[0..7] / scale as int32 (the signed map's mirrored 255 as -1: the pack clamps it to 0), the
 * lanes to re-do exactly in *redo (a movemask). */
FO_TARGET_AVX2 static inline __attribute__((always_inline)) __m256i
fo_q8_code8_avx2(const float *FO_RESTRICT x, const __m256 r, const fo_q8_map *FO_RESTRICT mp, int *redo)
{
    const __m256i mag = _mm256_set1_epi32(0x7FFFFFFF), floor31 = _mm256_set1_epi32(0x30000000); /* 2^-31 */
    const __m256i yb = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(x), r));
    const __m256i ab = _mm256_and_si256(yb, mag);
    const __m256 a = _mm256_castsi256_ps(ab);
    const __m256i e = _mm256_srli_epi32(_mm256_max_epu32(ab, floor31), 23);
    const __m256 e3 = _mm256_castsi256_ps(_mm256_slli_epi32(e, 28)), e4 = _mm256_castsi256_ps(_mm256_slli_epi32(e, 27));
    const __m256 ge = _mm256_cmp_ps(a, fo_lut32_avx2(mp->tlo, e, e3, e4), _CMP_GE_OQ);
    const __m256 lt = _mm256_cmp_ps(a, fo_lut32_avx2(mp->thi, e, e3, e4), _CMP_LT_OQ);
    __m256i cls = _mm256_castps_si256(fo_lut32_avx2((const float *)mp->cg, e, e3, e4));
    cls = _mm256_sub_epi32(cls, _mm256_castps_si256(ge)); /* + 1 where ge */
    const __m256 c3 = _mm256_castsi256_ps(_mm256_slli_epi32(cls, 28));
    const __m256 t = _mm256_fmsub_ps(a, fo_lut16_avx2(mp->s, cls, c3), fo_lut16_avx2(mp->o, cls, c3));
    const __m256 fr = _mm256_sub_ps(t, _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256 near = _mm256_cmp_ps(_mm256_and_ps(fr, _mm256_castsi256_ps(mag)), _mm256_set1_ps((float)FO_Q8_M),
                                      _CMP_LT_OQ);
    const __m256i c = _mm256_min_epi32(_mm256_cvttps_epi32(t),
                                       _mm256_castps_si256(fo_lut16_avx2((const float *)mp->hi, cls, c3)));
    const __m256i neg = _mm256_srai_epi32(yb, 31);
    *redo = _mm256_movemask_ps(_mm256_or_ps(_mm256_and_ps(ge, lt), near));
    if (mp->sgn)
        return _mm256_blendv_epi8(c, _mm256_sub_epi32(_mm256_set1_epi32(254), c), neg);
    return _mm256_andnot_si256(neg, c);
}

/* q = nearest(code, x / scale) for the n values of tile x on AVX2 (fo_q8_encode_x's codes); absmax as there. */
static FO_TARGET_AVX2 void fo_q8_encode_avx2(const fo_tile *FO_RESTRICT x, int64_t n, float scale,
                                            const fo_q8_map *FO_RESTRICT mp, const float *FO_RESTRICT lev,
                                            uint8_t *FO_RESTRICT q)
{
    const __m256 r = _mm256_set1_ps(1.0f / scale);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        int k0, k1, k2, k3;
        const __m256i c0 = fo_q8_code8_avx2(x->f + i, r, mp, &k0), c1 = fo_q8_code8_avx2(x->f + i + 8, r, mp, &k1);
        const __m256i c2 = fo_q8_code8_avx2(x->f + i + 16, r, mp, &k2);
        const __m256i c3 = fo_q8_code8_avx2(x->f + i + 24, r, mp, &k3);
        /* per 128-bit half h: dword 4 h + j of the packed bytes holds codes 8 j + 4 h .. + 3 */
        const __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(c0, c1), _mm256_packus_epi32(c2, c3));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(b, perm));
        uint64_t redo = (uint64_t)(k0 | k1 << 8 | k2 << 16 | (uint32_t)k3 << 24);
        while (redo) {
            const int j = __builtin_ctzll(redo);
            redo &= redo - 1;
            q[i + j] = fo_q8_nearest(x->f[i + j] / scale, lev);
        }
    }
    for (; i < n; ++i)
        q[i] = fo_q8_nearest(x->f[i] / scale, lev);
}

#if defined(__clang__)
#define FO_NOCLONE __attribute__((noinline))
#else
#define FO_NOCLONE __attribute__((noinline, noclone)) /* no constant-n clone: its dead tail loop would warn */
#endif
/* The decoder's permute of 64 codes: byte p = 16 L + 4 r + j of the permuted codes is code 16 r + 4 L + j, so that after
 * the two unpack stages of fo_q8_dec64 register r holds codes 16 r .. 16 r + 15 in order. */
FO_TARGET_Q8X static inline __attribute__((always_inline)) __m512i fo_q8_dec_perm(void)
{
    uint8_t perm_b[64];
    for (int p = 0; p < 64; ++p)
        perm_b[p] = (uint8_t)(16 * ((p & 15) >> 2) + 4 * (p >> 4) + (p & 3));
    return _mm512_loadu_si512(perm_b);
}

/* out[r] = code[q[16 r .. 16 r + 15]] * s (vs = s in every lane) for 64 codes, from the byte planes P (P[k][j]: bytes
 * 64 j .. 64 j + 63 of mp->plane[k]). */
FO_TARGET_Q8X static inline __attribute__((always_inline)) void
fo_q8_dec64(const uint8_t *FO_RESTRICT q, const __m512i P[4][4], const __m512i perm, const __m512 vs, __m512 out[4])
{
    const __m512i idx = _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(q));
    const __mmask64 top = _mm512_movepi8_mask(idx);
    __m512i b[4];
    for (int k = 0; k < 4; ++k)
        b[k] = _mm512_mask_blend_epi8(top, _mm512_permutex2var_epi8(P[k][0], idx, P[k][1]),
                                      _mm512_permutex2var_epi8(P[k][2], idx, P[k][3]));
    const __m512i lo01 = _mm512_unpacklo_epi8(b[0], b[1]), hi01 = _mm512_unpackhi_epi8(b[0], b[1]);
    const __m512i lo23 = _mm512_unpacklo_epi8(b[2], b[3]), hi23 = _mm512_unpackhi_epi8(b[2], b[3]);
    out[0] = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(lo01, lo23)), vs);
    out[1] = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(lo01, lo23)), vs);
    out[2] = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(hi01, hi23)), vs);
    out[3] = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(hi01, hi23)), vs);
}

static FO_TARGET_Q8X FO_NOCLONE void
fo_q8_decode_x(const uint8_t *FO_RESTRICT q, int64_t n, const fo_q8_map *FO_RESTRICT mp,
               const float *FO_RESTRICT code, float s, float *FO_RESTRICT out)
{
    __m512i P[4][4];
    for (int k = 0; k < 4; ++k)
        for (int j = 0; j < 4; ++j)
            P[k][j] = _mm512_loadu_si512(mp->plane[k] + 64 * j);
    const __m512i perm = fo_q8_dec_perm();
    const __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 o[4];
        fo_q8_dec64(q + i, P, perm, vs, o);
        for (int r = 0; r < 4; ++r)
            _mm512_storeu_ps(out + i + 16 * r, o[r]);
    }
    for (; i < n; ++i)
        out[i] = code[q[i]] * s;
}

#define FO_Q8_NEAREST(isa, x, n, lev, q) \
    ((isa) == 2 ? fo_q8_nearest_avx512(x, n, lev, q) : fo_q8_nearest_scalar(x, n, lev, q))
#define FO_Q8_DECODE(isa, mp, q, n, code, s, out)                                                          \
    ((mp) != NULL && (isa) == 2 ? fo_q8_decode_x(q, n, mp, code, s, out)                                   \
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
        if (isa == 2)
            fo_q8_encode_x(x, n, scale, mp, lev, q);
        else
            fo_q8_encode_avx2(x, n, scale, mp, lev, q);
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

#endif /* FO_Q8_H */
