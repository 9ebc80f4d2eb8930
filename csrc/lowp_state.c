/* lowp_state.c — Lion and SGD-momentum on float32 parameters with compressed state (issue 14, item 2): exp_avg /
 * momentum_buffer stored as bfloat16 (state_kind FO_LOWP_BF16) or blockwise 8-bit with bitsandbytes' signed
 * dynamic map (FO_LOWP_Q8).
 *
 * The arithmetic is the float32 kernel's own: this file includes lion.c and sgd.c for float and, per block of
 * FO_QBLOCK elements, decodes the state into a float32 tile in L1 (bf16: exact widening; 8-bit: code[q] * absmax),
 * runs the float32 kernel's range function on (param, grad, tile), then encodes the tile again with csrc/fo_q8.h
 * (bf16 nearest-even; 8-bit: absmax = max |tile| of the block, each element the nearest code of x / absmax). So
 * decode -> float32 step -> encode is the compressed step bit for bit. The bfloat16 state skips the tile: one fused
 * loop of the same operations (fo_sgd16_range / fo_lion16_range, csrc/fo_bf16.h), the same bits. Work items start
 * at multiples of FO_CHUNK, a multiple of FO_QBLOCK, so blocks never straddle items and the result does not depend
 * on the thread count. */
#include <string.h>

#include "fastopt.h"
/* Lion on float32 params with compressed exp_avg: 0 param, 1 grad (float32), 2 exp_avg (uint16 bfloat16 bits,
 * state_kind FO_LOWP_BF16) or state1 (uint8 codes, FO_LOWP_Q8), 3 absmax1 (float32 per FO_QBLOCK block), 4 qmap1
 * (float32[256] IN), 5 qlev1 (its rounding thresholds, level order, IN) (3-5 Q8 only); hyper as lion's + state_kind */
FO_KERNEL(lion_lowp, 6, 0, D(lr) D(beta1) D(beta2) D(weight_decay) I(maximize) I(state_kind))
/* SGD-momentum on float32 params with a compressed momentum_buffer: buffers as lion_lowp's; scalars 0 first (1.0
 * when the buffer is new: set to g); hyper as sgd's + state_kind (momentum must be non-zero) */
FO_KERNEL(sgd_lowp, 6, 1, D(lr) D(momentum) D(dampening) D(weight_decay) I(nesterov) I(maximize) I(state_kind))
#include "fo_q8.h"
#include "fo_bf16.h"

#include "fo_f32_bodies.h" /* lion_range_f32, sgd_range_f32: the arithmetic of the kernels below */

#define FO_LS_COPY_(S, x) (S).x = h->x;
enum { FO_LS_LION = 0, FO_LS_SGD = 1 };

typedef struct {
    const void *h;
    const fo_q8_map *mp; /* the arithmetic 8-bit encoder/decoder of the signed map, or NULL: the search */
} fo_ls_ctx;

FO_INLINE void fo_ls_item(const int algo, const fo_tensor_list *t, const fo_ls_ctx *x, const int64_t w,
                          const int isa)
{
    const fo_work *it = &t->work[w];
    void *const *b = t->bufs + it->tensor * t->n_bufs;
    const double *s = t->scalars + it->tensor * t->n_scalars;
    const int64_t begin = it->begin, n = it->end - it->begin;
    fo_lion_hyper lh;
    fo_sgd_hyper sh;
    int kind;
    if (algo == FO_LS_LION) {
        const fo_lion_lowp_hyper *h = (const fo_lion_lowp_hyper *)x->h;
        FO_LION_FIELDS(FO_LS_COPY_, FO_LS_COPY_, lh)
        kind = h->state_kind;
    } else {
        const fo_sgd_lowp_hyper *h = (const fo_sgd_lowp_hyper *)x->h;
        FO_SGD_FIELDS(FO_LS_COPY_, FO_LS_COPY_, sh)
        kind = h->state_kind;
    }
    float *p = (float *)b[0] + begin;
    const float *g = (const float *)b[1] + begin;
    uint16_t *m16 = kind == FO_LOWP_BF16 ? (uint16_t *)b[2] + begin : NULL;
    uint8_t *q = kind == FO_LOWP_Q8 ? (uint8_t *)b[2] + begin : NULL;
    float *absmax = kind == FO_LOWP_Q8 ? (float *)b[3] + begin / FO_QBLOCK : NULL;
    const float *code = kind == FO_LOWP_Q8 ? (const float *)b[4] : NULL;
    const float *lev = kind == FO_LOWP_Q8 ? (const float *)b[5] : NULL;
    if (m16 != NULL) { /* bfloat16: one fused loop (fo_bf16.h) */
        const fo_bf16_bufs fb = {NULL, p, g, NULL, m16, NULL, NULL};
        if (algo == FO_LS_LION)
            fo_lion16_range(&lh, fb, n, 0, 1, 1, 0);
        else
            fo_sgd16_range(&sh, s, fb, n, 0, 1, 1, 0);
        return;
    }
    fo_tile tile;
    for (int64_t k = 0, blk = 0; k < n; k += FO_QBLOCK, ++blk) {
        const int64_t len = n - k < FO_QBLOCK ? n - k : FO_QBLOCK;
        if (m16 != NULL) {
            const uint16_t *FO_RESTRICT mk = m16 + k;
#pragma omp simd
            for (int64_t i = 0; i < len; ++i)
                tile.u[i] = (uint32_t)mk[i] << 16;
        } else {
            FO_Q8_DECODE(isa, x->mp, q + k, len, code, absmax[blk], tile.f);
        }
        float *const bufs[3] = {p + k, (float *)(g + k), tile.f};
        if (algo == FO_LS_LION)
            lion_range_f32(&lh, bufs, s, len);
        else
            sgd_range_f32(&sh, bufs, s, len);
        if (m16 != NULL) {
            uint16_t *FO_RESTRICT mk = m16 + k;
#pragma omp simd
            for (int64_t i = 0; i < len; ++i)
                mk[i] = fo_bits_to_bf16(tile.u[i]);
        } else {
            fo_q8_store(&tile, len, lev, x->mp, q + k, absmax + blk, isa);
        }
    }
}

#define FO_LS_VARIANTS_(name, algo)                                                                           \
    static FO_TARGET_AVX512 void fo_##name##_avx512(const fo_tensor_list *t, const fo_ls_ctx *x, int64_t w)   \
    { fo_ls_item(algo, t, x, w, 2); }                                                                         \
    static FO_TARGET_AVX2 void fo_##name##_avx2(const fo_tensor_list *t, const fo_ls_ctx *x, int64_t w)       \
    { fo_ls_item(algo, t, x, w, 1); }                                                                         \
    static void fo_##name##_base(const fo_tensor_list *t, const fo_ls_ctx *x, int64_t w)                      \
    { fo_ls_item(algo, t, x, w, 0); }
FO_LS_VARIANTS_(lion_lowp, FO_LS_LION)
FO_LS_VARIANTS_(sgd_lowp, FO_LS_SGD)

/* The entry's checks before any write: a known state_kind, the buffers it needs, blocks inside work items; then the
 * 8-bit map's tables (every tensor must share the map for them; otherwise the search). */
FO_INLINE int fo_ls_run(const fo_tensor_list *t, const void *h, const int kind, const int64_t n_scalars,
                        fo_item_fn avx512, fo_item_fn avx2, fo_item_fn base)
{
    int64_t needs;
    if (kind == FO_LOWP_BF16)
        needs = FO_FIRST(3);
    else if (kind == FO_LOWP_Q8)
        needs = FO_FIRST(6);
    else
        return FO_ERR_ARG;
    const int rc = fo_kernel_check(t, (uint32_t)needs, n_scalars);
    if (rc != FO_OK)
        return rc;
    for (int64_t w = 0; w < t->n_work; ++w)
        if (t->work[w].begin % FO_QBLOCK != 0)
            return FO_ERR_LAYOUT;
    const int isa = fo_isa();
    fo_ls_ctx x = {h, NULL};
#ifdef FO_HAVE_Q8_MAP
    if (kind == FO_LOWP_Q8 && isa >= 1) {
        void *const *b0 = NULL;
        int same = 1;
        for (int64_t i = 0; i < t->n_tensors && same; ++i) {
            if (t->sizes[i] == 0)
                continue;
            void *const *bi = t->bufs + i * t->n_bufs;
            if (b0 == NULL)
                b0 = bi;
            for (int j = 4; j < 6 && same; ++j)
                same = bi[j] == b0[j] || memcmp(bi[j], b0[j], 256 * sizeof(float)) == 0;
        }
        if (same && b0 != NULL)
            x.mp = fo_q8_map_get((const float *)b0[5], (const float *)b0[4]);
    }
#endif
    fo_run_items((const void *)t, t->n_work, (const void *)&x, isa == 2 ? avx512 : isa == 1 ? avx2 : base,
                 fo_threads_for(t->total, t->n_threads));
    return FO_OK;
}

int fo_lion_lowp_f32(const fo_tensor_list *t, const fo_lion_lowp_hyper *h)
{
    if (t == NULL || h == NULL)
        return FO_ERR_ARG;
    return fo_ls_run(t, h, h->state_kind, fo_lion_lowp_n_scalars, (fo_item_fn)fo_lion_lowp_avx512,
                     (fo_item_fn)fo_lion_lowp_avx2, (fo_item_fn)fo_lion_lowp_base);
}

int fo_sgd_lowp_f32(const fo_tensor_list *t, const fo_sgd_lowp_hyper *h)
{
    if (t == NULL || h == NULL || h->momentum == 0)
        return FO_ERR_ARG;
    return fo_ls_run(t, h, h->state_kind, fo_sgd_lowp_n_scalars, (fo_item_fn)fo_sgd_lowp_avx512,
                     (fo_item_fn)fo_sgd_lowp_avx2, (fo_item_fn)fo_sgd_lowp_base);
}

int fo_lion_lowp_f64(const fo_tensor_list *t, const fo_lion_lowp_hyper *h)
{
    (void)t;
    (void)h;
    return FO_ERR_ARG; /* compressed state is for float32 parameters */
}

int fo_sgd_lowp_f64(const fo_tensor_list *t, const fo_sgd_lowp_hyper *h)
{
    (void)t;
    (void)h;
    return FO_ERR_ARG;
}
