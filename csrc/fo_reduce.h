/* fo_reduce.h — the reduce-then-update driver: kernels whose update needs per-tensor norms of the step's own
 * values (LAMB's and LARS's trust ratios). Included by such a kernel's body inside its FO_T instantiation, after
 * fo_common.h; it extends the elementwise driver (FO_ELEMENTWISE) and changes nothing for the other kernels.
 *
 * A kernel body defines
 *   FO_REDUCE_RANGE(name) { ... }   pass 1 over one whole work item (no alignment peel, so that which element
 *                                   lands in which accumulator lane never depends on the address): it may update
 *                                   state in place, and writes FO_PARTIALS sums into acc[], each fastopt's one
 *                                   reduction (fo_sum.h: FO_SUM_LOOP's lanes, folded by fo_sum_fold); `keep`, when
 *                                   not NULL, is room for one FO_T per element of the item that pass 2 gets back
 *                                   (LAMB keeps its update direction there instead of recomputing it);
 *   FO_FN(name##_combine)(h, s, sums, out)   per tensor, on whichever thread runs it: its FO_PARTIALS sums (the
 *                                   items' partials added in item order) -> FO_PARTIALS results (the trust ratio, ...);
 *   FO_APPLY_RANGE(name) { ... }    pass 2, elementwise, given the tensor's results r[] (with FO_ELEMENTWISE's
 *                                   alignment peel: elementwise results do not depend on where a run starts) and
 *                                   `keep` (NULL, or what pass 1 kept for these elements: the same values the body
 *                                   would recompute, so either way gives the same bits);
 *   FO_FN(name##_needs)(h)          as for FO_ELEMENTWISE;
 * and ends with FO_REDUCE_THEN_UPDATE(name), which generates the entry point fo_<name>_{f32,f64}: check the list
 * (before the first write), then
 *   - a tensor of at most FO_REDUCE_FUSE_BYTES (all its buffers) is one unit of work for one thread: pass 1 over
 *     its items, its combination, pass 2 over its items, back to back, so that pass 2 reads the tensor from cache
 *     (on a model of many small tensors this halves the memory traffic of pass 2's reads), with keep pointing into
 *     the thread's scratch (fo_reduce_scratch, allocated once per thread; NULL if there is none);
 *   - a larger tensor keeps the global structure: pass 1 over its items on the thread pool (with the small tensors'
 *     units, in one run), the per-tensor combinations in index order on the calling thread, pass 2 over its items.
 * Both paths compute every element with the same operations and combine a tensor's item partials in item order
 * (fo_sum_items), so which path, which thread and how many threads never change a bit. The partials live in the
 * table's scratch (fo_tensor_list.partials), so nothing is allocated; every sum has one fixed order, so the
 * results are the same bits for any thread count and instruction set. */
#include "fo_sum.h"

#define FO_REDUCE_RANGE(name) FO_INLINE void FO_FN(name##_reduce_range)(const fo_##name##_hyper *h,            \
                                                                         FO_T *const *bufs, const double *s, \
                                                                         const int64_t n, double *acc,      \
                                                                         FO_T *FO_RESTRICT keep)
#define FO_APPLY_RANGE(name) FO_INLINE void FO_FN(name##_apply_range)(const fo_##name##_hyper *h,              \
                                                                       FO_T *const *bufs, const double *s,   \
                                                                       const double *r,                      \
                                                                       const FO_T *FO_RESTRICT keep, const int64_t n)

/* A tensor whose buffers take at most this many bytes in all (param, grad and state: LAMB float32, 16 bytes per
 * element, up to 131072 elements) runs both passes on one thread while it is in that core's cache (L2 and its
 * share of L3); larger ones are split across threads per pass. Any value gives the same bits. */
#ifndef FO_REDUCE_FUSE_BYTES
#define FO_REDUCE_FUSE_BYTES (2 << 20)
#endif
#define FO_REDUCE_FUSED(t, i) ((t)->sizes[i] * FO_ITEM_NB(t) * (int64_t)sizeof(FO_T) <= FO_REDUCE_FUSE_BYTES)
/* This thread's FO_REDUCE_FUSE_BYTES bytes of scratch, or NULL (fo_reduce_scratch.c). */
void *fo_reduce_scratch(void);

#define FO_REDUCE_THEN_UPDATE(name)                                                                          \
    FO_INLINE void FO_FN(name##_reduce_one)(const fo_tensor_list *t, const fo_##name##_hyper *h, int64_t w,  \
                                            FO_T *keep)                                                      \
    {                                                                                                        \
        const fo_work *it = &t->work[w];                                                                     \
        FO_T *b[FO_MAX_BUFS] = {NULL};                                                                       \
        FO_ITEM_BUFS(t, it, b, FO_ITEM_NB(t), 0);                                                            \
        double *acc = t->partials + w * FO_PARTIALS;                                                         \
        for (int k = 0; k < FO_PARTIALS; ++k)                                                                \
            acc[k] = 0.0;                                                                                    \
        FO_FN(name##_reduce_range)(h, b, t->scalars + it->tensor * t->n_scalars, it->end - it->begin, acc,   \
                                   keep);                                                                    \
    }                                                                                                        \
    FO_INLINE void FO_FN(name##_apply_one)(const fo_tensor_list *t, const fo_##name##_hyper *h, int64_t w,   \
                                           const FO_T *keep)                                                 \
    {                                                                                                        \
        const fo_work *it = &t->work[w];                                                                     \
        const int64_t n = it->end - it->begin, nb = FO_ITEM_NB(t);                                           \
        const double *s = t->scalars + it->tensor * t->n_scalars;                                            \
        const double *r = t->partials + (t->n_work + it->tensor) * FO_PARTIALS;                              \
        FO_T *b[FO_MAX_BUFS] = {NULL};                                                                       \
        FO_ITEM_BUFS(t, it, b, nb, 0);                                                                       \
        const int64_t head = fo_align_head(b[0], n, (int64_t)sizeof(FO_T)); /* FO_PEELED's peel, with keep */ \
        if (head > 0) {                                                                                      \
            FO_FN(name##_apply_range)(h, b, s, r, keep, head);                                               \
            FO_ITEM_BUFS(t, it, b, nb, head);                                                                \
        }                                                                                                    \
        FO_FN(name##_apply_range)(h, b, s, r, keep == NULL ? NULL : keep + head, n - head);                  \
    }                                                                                                        \
    /* Tensor i's combination from the partials of its items [w0, w1): its results, in the table's scratch. */  \
    FO_INLINE void FO_FN(name##_combine_items)(const fo_tensor_list *t, const fo_##name##_hyper *h, int64_t i, \
                                               int64_t w0, int64_t w1)                                       \
    {                                                                                                        \
        double sums[FO_PARTIALS];                                                                            \
        for (int k = 0; k < FO_PARTIALS; ++k)                                                                \
            sums[k] = fo_sum_items(t->partials + w0 * FO_PARTIALS + k, w1 - w0, FO_PARTIALS);                \
        FO_FN(name##_combine)(h, t->scalars + i * t->n_scalars, sums,                                        \
                              t->partials + (t->n_work + i) * FO_PARTIALS);                                  \
    }                                                                                                        \
    /* Run 1, item w: a small tensor's first item does the whole tensor (its other items nothing); a large      \
     * tensor's item does its pass 1. */                                                                     \
    FO_INLINE void FO_FN(name##_reduce_item)(const fo_tensor_list *t, const fo_##name##_hyper *h, int64_t w) \
    {                                                                                                        \
        const int64_t i = t->work[w].tensor;                                                                 \
        if (!FO_REDUCE_FUSED(t, i)) {                                                                        \
            FO_FN(name##_reduce_one)(t, h, w, NULL);                                                         \
            return;                                                                                          \
        }                                                                                                    \
        if (t->work[w].begin != 0)                                                                           \
            return;                                                                                          \
        FO_T *keep = (FO_T *)fo_reduce_scratch(); /* room for the whole tensor (FO_REDUCE_FUSED), or NULL */  \
        int64_t w1 = w;                                                                                      \
        for (; w1 < t->n_work && t->work[w1].tensor == i; ++w1) /* tensor i's items: consecutive, in order */ \
            FO_FN(name##_reduce_one)(t, h, w1, keep == NULL ? NULL : keep + t->work[w1].begin);              \
        FO_FN(name##_combine_items)(t, h, i, w, w1);                                                         \
        for (int64_t v = w; v < w1; ++v)                                                                     \
            FO_FN(name##_apply_one)(t, h, v, keep == NULL ? NULL : keep + t->work[v].begin);                 \
    }                                                                                                        \
    /* Run 2, item w: pass 2 of a large tensor's item (a small tensor is done). */                           \
    FO_INLINE void FO_FN(name##_apply_item)(const fo_tensor_list *t, const fo_##name##_hyper *h, int64_t w)  \
    {                                                                                                        \
        if (!FO_REDUCE_FUSED(t, t->work[w].tensor))                                                          \
            FO_FN(name##_apply_one)(t, h, w, NULL);                                                          \
    }                                                                                                        \
    FO_DEFINE_VARIANTS(name##_reduce_item, fo_##name##_hyper)                                                \
    FO_DEFINE_VARIANTS(name##_apply_item, fo_##name##_hyper)                                                 \
    int FO_FN(fo_##name)(const fo_tensor_list *t, const fo_##name##_hyper *h)                                \
    {                                                                                                        \
        FO_ENTRY_CHECKS(t, h, FO_FN(name##_needs), fo_##name##_n_scalars);                                   \
        if (t->partials == NULL)                                                                             \
            return FO_ERR_LAYOUT;                                                                            \
        FO_RUN_ITEMS(t, FO_SELECT(name##_reduce_item), h);                                                   \
        int large = 0;                                                                                       \
        for (int64_t w = 0; w < t->n_work;) { /* the large tensors' combinations, in index order */          \
            const int64_t i = t->work[w].tensor, w0 = w;                                                     \
            while (w < t->n_work && t->work[w].tensor == i)                                                  \
                ++w;                                                                                         \
            if (!FO_REDUCE_FUSED(t, i)) {                                                                    \
                FO_FN(name##_combine_items)(t, h, i, w0, w);                                                 \
                large = 1;                                                                                   \
            }                                                                                                \
        }                                                                                                    \
        if (large)                                                                                           \
            FO_RUN_ITEMS(t, FO_SELECT(name##_apply_item), h);                                                \
        return FO_OK;                                                                                        \
    }
