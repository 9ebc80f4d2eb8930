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
 * plain AVX-512 the search and the decoding read their tables from registers; AVX2 has the arithmetic encoder too
 * (fo_q8_encode_avx2, the same codes) with the scalar decoder. On AVX-512 the bf16 kernel is one
 * fused 16-lane loop (fo_adam_bf16_avx512, csrc/fo_bf16.h); elsewhere three loops per tile.
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
#include "fo_q8.h"
#include "fo_bf16.h"


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

#ifdef FO_HAVE_BF16_AVX512
/* 16 elements at i: decode the moments, fo_adam_v16, encode. */
FO_TARGET_AVX512 FO_BF16_INLINE void fo_adam_bf16_v16(const fo_adam_v16c *k, float *FO_RESTRICT p,
                                                      const float *FO_RESTRICT g, uint16_t *FO_RESTRICT m,
                                                      uint16_t *FO_RESTRICT v, const int64_t i, const int maximize,
                                                      const int l2, const int small_w)
{
    __m512 mi = fo_bf16_unpack16(m + i), vi = fo_bf16_unpack16(v + i);
    _mm512_storeu_ps(p + i, fo_adam_v16(k, _mm512_loadu_ps(p + i), _mm512_loadu_ps(g + i), &mi, &vi, maximize, l2,
                                        small_w));
    _mm256_storeu_si256((__m256i *)(m + i), fo_bf16_pack16(mi));
    _mm256_storeu_si256((__m256i *)(v + i), fo_bf16_pack16(vi));
}

/* The bf16 range in one pass of 16 lanes (fo_bf16.h: each lane equals the scalar element); the elements before p's
 * first 64-byte boundary and the last n % 16 go through the scalar element. */
static FO_TARGET_AVX512 void fo_adam_bf16_avx512(const fo_adam_f32c c, float *FO_RESTRICT p,
                                                 const float *FO_RESTRICT g, uint16_t *FO_RESTRICT m,
                                                 uint16_t *FO_RESTRICT v, const int64_t n,
                                                 const int maximize, const int l2, const int small_w)
{
    const int64_t head = fo_align_head(p, n, (int64_t)sizeof(float));
    fo_adam_bf16_one(c, p, g, m, v, head, maximize, l2, small_w);
    const fo_adam_v16c k = fo_adam_v16_consts(c);
    int64_t i = head;
    for (; i + 16 <= n; i += 16)
        fo_adam_bf16_v16(&k, p, g, m, v, i, maximize, l2, small_w);
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

/* nb full blocks on AVX-512 with VBMI, software-pipelined: one loop runs Adam on block b, 16 lanes at a time
 * (decoded moments in, new moments to a tile, their absmax accumulated), and encodes 64 lanes of block b - 1's tiles
 * after every 64 lanes of Adam, so the divider-bound Adam lanes and the permute-bound encoder lanes overlap. (Decoding
 * inside that loop, straight to registers, was measured slower: the 32 byte-plane registers of the two maps do not
 * fit beside the encoder's tables.) Each lane's arithmetic is FO_ADAM_ELEMENT's, operation for
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
    int ok1 = 0, ok2 = 0, nn2 = 0; /* nn2: every new v of the previous block is +0 or more (the usual case) */
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
        const int enc1 = blk > 0 && ok1, enc2 = blk > 0 && ok2;
        fo_q8_decode_x(q1 + k, FO_QBLOCK, mp1, code1, a1[blk], M[cur].f);
        fo_q8_decode_x(q2 + k, FO_QBLOCK, mp2, code2, a2[blk], V[cur].f);
        const __m512 r1 = _mm512_set1_ps(1.0f / sc1), r2 = _mm512_set1_ps(1.0f / sc2);
        __m512i top1 = _mm512_setzero_si512(), top2 = _mm512_setzero_si512();
        float *FO_RESTRICT pk = p + k;
        const float *FO_RESTRICT gk = g + k;
        for (int j0 = 0; j0 < FO_QBLOCK; j0 += 64) {
            for (int j = j0; j < j0 + 64; j += 16) {
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
                top2 = _mm512_max_epu32(top2, _mm512_castps_si512(vi)); /* the raw bits: see below */
            }
            if (enc1)
                fo_q8_enc64(M[prv].f + j0, r1, sc1, mp1, lev1, pq1 + j0, 0);
            if (enc2 && nn2) /* nonneg a constant in each call: each its own inlined encoder */
                fo_q8_enc64(V[prv].f + j0, r2, sc2, mp2, lev2, pq2 + j0, 1);
            else if (enc2)
                fo_q8_enc64(V[prv].f + j0, r2, sc2, mp2, lev2, pq2 + j0, 0);
        }
        if (blk > 0 && !ok1)
            fo_q8_exact_tile(&M[prv], FO_QBLOCK, sc1, lev1, pq1);
        if (blk > 0 && !ok2)
            fo_q8_exact_tile(&V[prv], FO_QBLOCK, sc2, lev2, pq2);
        fo_bits32 u1, u2;
        u1.u = (uint32_t)_mm512_reduce_max_epu32(top1);
        u2.u = (uint32_t)_mm512_reduce_max_epu32(top2);
        /* v = (1 - beta2) g^2 + beta2 v_old is +0 or more unless v_old or g is odd (a NaN; a negative absmax loaded):
         * then the raw bits' maximum is the magnitudes' maximum, and the encoder skips the sign (nonneg) */
        nn2 = u2.u < 0x80000000u;
        if (!nn2) {
            __m512i t2 = _mm512_setzero_si512();
            for (int j = 0; j < FO_QBLOCK; j += 16)
                t2 = _mm512_max_epu32(t2, _mm512_and_si512(_mm512_load_si512(V[cur].u + j), mag));
            u2.u = (uint32_t)_mm512_reduce_max_epu32(t2);
        }
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
    FO_UNSWITCH3(FO_CALL_, maximize_, l2_, small_w_);
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
    if (isa == 2 && mp1 != NULL && mp2 != NULL && n >= FO_QBLOCK) { /* the full blocks pipelined, a partial last one below */
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
#define FO_UNSWITCH(call_) FO_UNSWITCH3(call_, maximize_, l2_, small_w_)

/* What the work items read: the hyper-parameters and, on AVX-512 with VBMI or on AVX2, the arithmetic quantizer's
 * tables of the two maps (NULL: the search and the register-table decoder). */
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
#ifdef FO_HAVE_BF16_AVX512
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
    if (h->state_kind == FO_LOWP_Q8 && isa >= 1) {
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
