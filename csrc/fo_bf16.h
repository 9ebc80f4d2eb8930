/* fo_bf16.h — the AVX-512 pieces of the fused bfloat16 kernels (lowp.c: Adam with bfloat16 moments;
 * lowp_params.c: Adam on bfloat16 parameters): 16 lanes of bfloat16 widened to float32 (exact) and rounded back
 * to nearest-even (a NaN stays a quiet NaN with its sign and top payload bits: fo_bits_to_bf16 lane by lane), one
 * 16-lane Adam element (FO_ADAM_ELEMENT of lowp.c, operation for operation, each an IEEE operation, so every lane
 * equals the scalar element bit for bit). No software prefetch: measured at 2e7 elements (under load), one
 * prefetcht1 per 64-byte line of every stream 512 to 2048 elements ahead made the bfloat16-state step 10-15 %
 * slower and 256 ahead changed nothing; the hardware prefetchers already follow the streams. Every function is
 * static, one copy per including file. */
#ifndef FO_BF16_H
#define FO_BF16_H

#include "fastopt.h"
#include "fo_adam_f32.h"

/* call_(x, y, z) with the run-time flags a, b, c as compile-time constants: each combination its own loop. */
#define FO_UNSWITCH3(call_, a, b, c)                                             \
    do {                                                                         \
        if (a) {                                                                 \
            if (b) { if (c) call_(1, 1, 1); else call_(1, 1, 0); }               \
            else   { if (c) call_(1, 0, 1); else call_(1, 0, 0); }               \
        } else {                                                                 \
            if (b) { if (c) call_(0, 1, 1); else call_(0, 1, 0); }               \
            else   { if (c) call_(0, 0, 1); else call_(0, 0, 0); }               \
        }                                                                        \
    } while (0)

#if defined(__GNUC__) && defined(__x86_64__) && !defined(FO_NO_DISPATCH)
#include <immintrin.h>
#define FO_HAVE_BF16_AVX512 1
#define FO_BF16_INLINE static inline __attribute__((always_inline))

/* float32 lanes -> bf16 lanes, nearest-even, NaN quiet (fo_bits_to_bf16 lane by lane). */
FO_TARGET_AVX512 FO_BF16_INLINE __m256i fo_bf16_pack16(__m512 x)
{
    const __m512i u = _mm512_castps_si512(x);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i nearest = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd),
                                              16);
    const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x0040));
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, nearest, quiet));
}

FO_TARGET_AVX512 FO_BF16_INLINE __m512 fo_bf16_unpack16(const uint16_t *src)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)src)), 16));
}

/* Adam's per-tensor constants (fo_adam_f32c) broadcast to 16 lanes; w1m = w1 - 1 in float, as FO_LERP forms it. */
typedef struct {
    __m512 wd, decay, w1, w1m, b2, w2, bc2s, eps, ns;
} fo_adam_v16c;

FO_TARGET_AVX512 FO_BF16_INLINE fo_adam_v16c fo_adam_v16_consts(const fo_adam_f32c c)
{
    fo_adam_v16c k;
    k.wd = _mm512_set1_ps(c.wd), k.decay = _mm512_set1_ps(c.decay), k.w1 = _mm512_set1_ps(c.w1);
    k.w1m = _mm512_set1_ps(c.w1 - 1), k.b2 = _mm512_set1_ps(c.b2), k.w2 = _mm512_set1_ps(c.w2);
    k.bc2s = _mm512_set1_ps(c.bc2s), k.eps = _mm512_set1_ps(c.eps), k.ns = _mm512_set1_ps(c.neg_step);
    return k;
}

/* One 16-lane Adam element: p, g in; *m, *v old moments in, new moments out; returns the new p. The flags are
 * compile-time constants at every use. */
FO_TARGET_AVX512 FO_BF16_INLINE __m512 fo_adam_v16(const fo_adam_v16c *k, __m512 pi, __m512 gi, __m512 *m,
                                                  __m512 *v, const int maximize, const int l2, const int small_w)
{
    if (maximize)
        gi = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(gi), _mm512_set1_epi32((int)0x80000000u)));
    if (l2)
        gi = _mm512_fmadd_ps(k->wd, pi, gi);
    pi = _mm512_mul_ps(pi, k->decay);
    const __m512 mo = *m, d = _mm512_sub_ps(gi, mo);
    const __m512 mi = small_w ? _mm512_fmadd_ps(k->w1, d, mo) : _mm512_fmadd_ps(k->w1m, d, gi);
    const __m512 vi = _mm512_fmadd_ps(_mm512_mul_ps(k->w2, gi), gi, _mm512_mul_ps(*v, k->b2));
    const __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), k->bc2s), k->eps);
    *m = mi;
    *v = vi;
    return _mm512_add_ps(pi, _mm512_div_ps(_mm512_mul_ps(k->ns, mi), den));
}
#endif

#endif /* FO_BF16_H */
