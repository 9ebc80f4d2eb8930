/* q8_micro.c — per-phase profile and exhaustive code check of the 8-bit state kernel (csrc/lowp.c, csrc/fo_q8.h).
 * Not part of the package: built by bench/q8_micro.sh against the in-place build's objects (lowp.c itself is
 * included here so its static phases can be timed one by one).
 *   q8_micro maps.bin prof [n reps]   cycles (rdtsc) per element of: decode both moments, the Adam arithmetic,
 *                                     absmax + encode both moments, and the fused kernel (median of reps)
 *   q8_micro maps.bin check [scale..]  every float32 x in [-scale, scale] (scale 1 if none given), both maps: the
 *                                     codes of x / scale by the AVX-512 encoder (and its non-negative variant for
 *                                     x >= 0) and the AVX2 encoder vs fo_q8_nearest (the exact search); exit 1 if any
 *                                     differs. A scale that is not a power of two exercises the re-done bands. */
#include "../csrc/lowp.c"
#include <stdio.h>
#include <x86intrin.h>

static float MAP[4][256]; /* QMAP1, QLEV1, QMAP2, QLEV2 */

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static float frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) * 0x1p-24) - 0.5f;
}

#define NREP 64
static FO_TARGET_Q8X __attribute__((noinline)) void adam_tile_x(const fo_adam_f32c c, float *p, const float *g,
                                                                float *m, float *v)
{ fo_adam_tile(c, p, g, m, v, FO_QBLOCK, 0, 0, 1); }
static FO_TARGET_Q8X __attribute__((noinline)) void store_x(fo_tile *x, const float *lev, const fo_q8_map *mp,
                                                            uint8_t *q, float *a)
{ fo_q8_store(x, FO_QBLOCK, lev, mp, q, a, 2); }
static FO_TARGET_AVX2 __attribute__((noinline)) void store_2(fo_tile *x, const float *lev, const fo_q8_map *mp,
                                                             uint8_t *q, float *a)
{ fo_q8_store(x, FO_QBLOCK, lev, mp, q, a, 1); }
static FO_TARGET_AVX2 __attribute__((noinline)) void
range_2(const fo_adam_f32c c, float *p, const float *g, uint8_t *q1, uint8_t *q2, float *a1, float *a2,
        const fo_q8_map *mp1, const fo_q8_map *mp2, int64_t n)
{ fo_adam_q8_range(c, p, g, q1, q2, a1, a2, MAP[0], MAP[2], MAP[1], MAP[3], mp1, mp2, n, 0, 0, 1, 1); }
static FO_TARGET_AVX2 __attribute__((noinline)) void decode_2(const uint8_t *q, const float *code, float s, float *out)
{ FO_Q8_DECODE(1, (const fo_q8_map *)NULL, q, FO_QBLOCK, code, s, out); }
static volatile uint64_t sink;
/* fo_q8_enc64 with nonneg = 1 over the whole 64-lane groups of x (the rest of q is left alone). */
static FO_TARGET_Q8X __attribute__((noinline)) void enc_nonneg(const fo_tile *x, int64_t n, float scale,
                                                               const fo_q8_map *mp, const float *lev, uint8_t *q)
{
    const __m512 r = _mm512_set1_ps(1.0f / scale);
    for (int64_t i = 0; i + 64 <= n; i += 64)
        fo_q8_enc64(x->f + i, r, scale, mp, lev, q + i, 1);
}

int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL || fread(MAP, sizeof(MAP), 1, f) != 1)
        return 2;
    fclose(f);
    const fo_q8_map *mp1 = fo_q8_map_get(MAP[1], MAP[0]);
    fo_q8_map m1 = *mp1;
    const fo_q8_map *mp2 = fo_q8_map_get(MAP[3], MAP[2]);
    fo_q8_map m2 = *mp2;
    mp1 = &m1;
    mp2 = &m2;
    if (strcmp(argv[2], "check") == 0) {
        int bad = 0;
        const int nscale = argc > 3 ? argc - 3 : 1;
        for (int si = 0; si < nscale; ++si) {
            const float scale = argc > 3 ? strtof(argv[3 + si], NULL) : 1.0f;
            fo_bits32 sb;
            sb.f = scale;
            if (!(scale >= 0x1p-125f && scale <= 0x1p125f)) {
                printf("scale %s: not a normal float within [2^-125, 2^125]\n", argv[3 + si]);
                return 2;
            }
            for (int w = 0; w < 2; ++w) {
                const fo_q8_map *mp = w ? mp2 : mp1;
                const float *lev = MAP[2 * w + 1];
                long long diff = 0, total = 0;
                static fo_tile x;
                static uint8_t q[FO_QBLOCK], q2[FO_QBLOCK], q3[FO_QBLOCK];
                for (uint64_t u0 = 0; u0 <= sb.u; u0 += 128) {
                    for (int sgn = 0; sgn < 2; ++sgn) {
                        for (int i = 0; i < 128; ++i)
                            x.u[i] = (uint32_t)(u0 + i) | (sgn ? 0x80000000u : 0);
                        const int64_t n = u0 + 128 > sb.u + 1 ? (int64_t)(sb.u + 1 - u0) : 128;
                        fo_q8_encode_x(&x, n, scale, mp, lev, q);
                        fo_q8_encode_avx2(&x, n, scale, mp, lev, q2);
                        if (!sgn) /* the Adam pipe's second-moment variant: every x known to be +0 or more */
                            enc_nonneg(&x, n, scale, mp, lev, q3);
                        for (int64_t i = 0; i < n; ++i) {
                            const uint8_t r = fo_q8_nearest(x.f[i] / scale, lev);
                            const int nn_bad = !sgn && i < (n & ~63) && q3[i] != r;
                            if (q[i] != r || q2[i] != r || nn_bad) {
                                if (diff < 5)
                                    printf("map %d scale %a x=%a got %d (avx2 %d, nonneg %d) want %d\n", w + 1,
                                           (double)scale, (double)x.f[i], q[i], q2[i], sgn ? -1 : q3[i], r);
                                ++diff;
                            }
                        }
                        total += n;
                    }
                }
                printf("map %d (%s), scale %a: %lld floats in [-scale, scale], %lld codes of the AVX-512 (both "
                       "variants) or AVX2 encoder differ from the search's\n", w + 1, w ? "unsigned" : "signed",
                       (double)scale, total, diff);
                fflush(stdout);
                bad |= diff != 0;
            }
        }
        return bad;
    }
    const int64_t n = argc > 3 ? atoll(argv[3]) : 65536;
    const int reps = argc > 4 ? atoi(argv[4]) : 31;
    const int64_t nb = n / FO_QBLOCK;
    float *p = aligned_alloc(64, n * 4), *g = aligned_alloc(64, n * 4), *a1 = malloc(nb * 4), *a2 = malloc(nb * 4);
    uint8_t *q1 = aligned_alloc(64, n), *q2 = aligned_alloc(64, n);
    uint64_t s = 1;
    for (int64_t i = 0; i < n; ++i) {
        p[i] = frand(&s);
        g[i] = frand(&s) * 1e-2f;
    }
    memset(q1, 127, n);
    memset(q2, 0, n);
    for (int64_t b = 0; b < nb; ++b)
        a1[b] = a2[b] = 0;
    fo_adam_lowp_hyper h = {0};
    h.lr = 1e-3;
    h.beta1 = 0.9;
    h.beta2 = 0.999;
    h.eps = 1e-8;
    const double sc[2] = {1e-3, 0.3};
    const fo_adam_f32c c = fo_adam_consts(&h, sc);
    for (int it = 0; it < 5; ++it) /* realistic codes */
        fo_adam_q8_x(c, p, g, q1, q2, a1, a2, MAP[0], MAP[2], MAP[1], MAP[3], mp1, mp2, nb, 0, 0, 1);
    static fo_tile M, V;
    uint64_t t[5][NREP];
    const char *names[5] = {"decode m,v", "adam (tiles)", "absmax+encode m,v", "sum of phases", "fused kernel"};
    for (int r = 0; r < reps && r < NREP; ++r) {
        uint64_t t0 = __rdtsc();
        for (int64_t b = 0; b < nb; ++b) {
            fo_q8_decode_x(q1 + b * FO_QBLOCK, FO_QBLOCK, mp1, MAP[0], a1[b], M.f);
            fo_q8_decode_x(q2 + b * FO_QBLOCK, FO_QBLOCK, mp2, MAP[2], a2[b], V.f);
            sink += M.u[b & 255] + V.u[b & 255];
        }
        uint64_t t1 = __rdtsc();
        for (int64_t b = 0; b < nb; ++b) {
            adam_tile_x(c, p + b * FO_QBLOCK, g + b * FO_QBLOCK, M.f, V.f);
        }
        uint64_t t2 = __rdtsc();
        uint8_t qq1[FO_QBLOCK], qq2[FO_QBLOCK];
        for (int64_t b = 0; b < nb; ++b) {
            float x1, x2;
            store_x(&M, MAP[1], mp1, qq1, &x1);
            store_x(&V, MAP[3], mp2, qq2, &x2);
            sink += qq1[b & 255] + qq2[b & 255];
        }
        uint64_t t3 = __rdtsc();
        fo_adam_q8_x(c, p, g, q1, q2, a1, a2, MAP[0], MAP[2], MAP[1], MAP[3], mp1, mp2, nb, 0, 0, 1);
        uint64_t t4 = __rdtsc();
        t[0][r] = t1 - t0;
        t[1][r] = t2 - t1;
        t[2][r] = t3 - t2;
        t[3][r] = t3 - t0;
        t[4][r] = t4 - t3;
    }
    { /* the AVX2 variant's encoders and scalar decoder, one moment each */
        uint64_t te[NREP], ta[NREP], td[NREP];
        static fo_tile X;
        uint8_t qq[FO_QBLOCK];
        for (int r = 0; r < reps && r < NREP; ++r) {
            uint64_t t0 = __rdtsc(), ts = t0;
            for (int k = 0; k < 2; ++k) { /* the search (no tables), then the arithmetic encoder */
                for (int64_t b = 0; b < nb; ++b) {
                    memcpy(X.f, p + b * FO_QBLOCK, sizeof(X.f));
                    float x1;
                    store_2(&X, MAP[1], k ? mp1 : NULL, qq, &x1);
                    sink += qq[b & 255];
                }
                if (k == 0)
                    ts = __rdtsc();
            }
            uint64_t t1 = __rdtsc();
            ta[r] = t1 - ts;
            for (int64_t b = 0; b < nb; ++b) {
                decode_2(q1 + b * FO_QBLOCK, MAP[0], a1[b], X.f);
                sink += X.u[b & 255];
            }
            uint64_t t2 = __rdtsc();
            te[r] = ts - t0;
            td[r] = t2 - t1;
        }
        qsort(te, reps, sizeof(uint64_t), cmp_u64);
        qsort(td, reps, sizeof(uint64_t), cmp_u64);
        qsort(ta, reps, sizeof(uint64_t), cmp_u64);
        printf("AVX2 variant, one moment, cycles/elem (median): copy+absmax+encode: search %.3f, arithmetic %.3f; "
               "decode %.3f\n", (double)te[reps / 2] / (nb * FO_QBLOCK), (double)ta[reps / 2] / (nb * FO_QBLOCK),
               (double)td[reps / 2] / (nb * FO_QBLOCK));
    }
    { /* the AVX2 variant's whole kernel: with the search, then with the arithmetic encoder */
        uint64_t tk[2][NREP];
        for (int r = 0; r < reps && r < NREP; ++r)
            for (int k = 0; k < 2; ++k) {
                const uint64_t t0 = __rdtsc();
                range_2(c, p, g, q1, q2, a1, a2, k ? mp1 : NULL, k ? mp2 : NULL, nb * FO_QBLOCK);
                tk[k][r] = __rdtsc() - t0;
            }
        for (int k = 0; k < 2; ++k)
            qsort(tk[k], reps, sizeof(uint64_t), cmp_u64);
        printf("AVX2 variant, whole kernel, cycles/elem (median): search %.3f, arithmetic %.3f\n",
               (double)tk[0][reps / 2] / (nb * FO_QBLOCK), (double)tk[1][reps / 2] / (nb * FO_QBLOCK));
    }
    printf("n = %lld, %d reps, TSC cycles per element (median; min)\n", (long long)n, reps);
    for (int k = 0; k < 5; ++k) {
        qsort(t[k], reps, sizeof(uint64_t), cmp_u64);
        printf("  %-20s %6.3f  %6.3f\n", names[k], (double)t[k][reps / 2] / (nb * FO_QBLOCK),
               (double)t[k][0] / (nb * FO_QBLOCK));
    }
    return 0;
}
