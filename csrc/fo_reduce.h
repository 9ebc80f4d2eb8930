/* fo_reduce.h — the reduce-then-update driver: kernels whose update needs per-tensor norms of the step's own
 * values (LAMB's and LARS's trust ratios). Included by such a kernel's body inside its FO_T instantiation, after
 * fo_common.h; it extends the elementwise driver (FO_ELEMENTWISE) and changes nothing for the other kernels.
 *
 * A kernel body defines
 *   FO_REDUCE_RANGE(name) { ... }   pass 1 over one whole work item (no alignment peel, so that which element
 *                                   lands in which accumulator lane never depends on the address): it may update
 *                                   state in place, and writes FO_PARTIALS sums into acc[], each fastopt's one
 *                                   reduction (fo_sum.h: FO_SUM_LOOP's lanes, folded by fo_sum_fold);
 *   FO_FN(name##_combine)(h, s, sums, out)   per tensor, on the calling thread: its FO_PARTIALS sums (the items'
 *                                   partials added in item order) -> FO_PARTIALS results (the trust ratio, ...);
 *   FO_APPLY_RANGE(name) { ... }    pass 2, elementwise, given the tensor's results r[] (with FO_ELEMENTWISE's
 *                                   alignment peel: elementwise results do not depend on where a run starts);
 *   FO_FN(name##_needs)(h)          as for FO_ELEMENTWISE;
 * and ends with FO_REDUCE_THEN_UPDATE(name), which generates the entry point fo_<name>_{f32,f64}: check the list
 * (before the first write), pass 1 over every work item on the thread pool, the per-tensor combination in index
 * order, pass 2 over every work item. The partials live in the table's scratch (fo_tensor_list.partials), so
 * nothing is allocated; every sum has one fixed order, so the results are the same bits for any thread count and
 * instruction set. */
#include "fo_sum.h"

#define FO_REDUCE_RANGE(name) FO_INLINE void FO_FN(name##_reduce_range)(const fo_##name##_hyper *h,            \
                                                                         FO_T *const *bufs, const double *s, \
                                                                         const int64_t n, double *acc)
#define FO_APPLY_RANGE(name) FO_INLINE void FO_FN(name##_apply_range)(const fo_##name##_hyper *h,              \
                                                                       FO_T *const *bufs, const double *s,   \
                                                                       const double *r, const int64_t n)

#define FO_REDUCE_THEN_UPDATE(name)                                                                          \
    FO_INLINE void FO_FN(name##_reduce_item)(const fo_tensor_list *t, const fo_##name##_hyper *h, int64_t w) \
    {                                                                                                        \
        const fo_work *it = &t->work[w];                                                                     \
        FO_T *b[FO_MAX_BUFS] = {NULL};                                                                       \
        FO_ITEM_BUFS(t, it, b, FO_ITEM_NB(t), 0);                                                            \
        double *acc = t->partials + w * FO_PARTIALS;                                                         \
        for (int k = 0; k < FO_PARTIALS; ++k)                                                                \
            acc[k] = 0.0;                                                                                    \
        FO_FN(name##_reduce_range)(h, b, t->scalars + it->tensor * t->n_scalars, it->end - it->begin, acc);  \
    }                                                                                                        \
    FO_INLINE void FO_FN(name##_apply_item)(const fo_tensor_list *t, const fo_##name##_hyper *h, int64_t w)  \
    {                                                                                                        \
        const fo_work *it = &t->work[w];                                                                     \
        const int64_t n = it->end - it->begin, nb = FO_ITEM_NB(t);                                           \
        const double *s = t->scalars + it->tensor * t->n_scalars;                                            \
        const double *r = t->partials + (t->n_work + it->tensor) * FO_PARTIALS;                              \
        FO_T *b[FO_MAX_BUFS] = {NULL};                                                                       \
        FO_ITEM_BUFS(t, it, b, nb, 0);                                                                       \
        FO_PEELED(t, it, b, nb, n, FO_FN(name##_apply_range), h, b, s, r);                                   \
    }                                                                                                        \
    FO_DEFINE_VARIANTS(name##_reduce_item, fo_##name##_hyper)                                                \
    FO_DEFINE_VARIANTS(name##_apply_item, fo_##name##_hyper)                                                 \
    int FO_FN(fo_##name)(const fo_tensor_list *t, const fo_##name##_hyper *h)                                \
    {                                                                                                        \
        FO_ENTRY_CHECKS(t, h, FO_FN(name##_needs), fo_##name##_n_scalars);                                   \
        if (t->partials == NULL)                                                                             \
            return FO_ERR_LAYOUT;                                                                            \
        FO_RUN_ITEMS(t, FO_SELECT(name##_reduce_item), h);                                                   \
        int64_t w = 0;                                                                                       \
        for (int64_t i = 0; i < t->n_tensors; ++i) { /* the items of tensor i are consecutive, in order */   \
            const int64_t w0 = w;                                                                            \
            while (w < t->n_work && t->work[w].tensor == i)                                                  \
                ++w;                                                                                         \
            double sums[FO_PARTIALS];                                                                        \
            for (int k = 0; k < FO_PARTIALS; ++k)                                                            \
                sums[k] = fo_sum_items(t->partials + w0 * FO_PARTIALS + k, w - w0, FO_PARTIALS);             \
            FO_FN(name##_combine)(h, t->scalars + i * t->n_scalars, sums,                                    \
                                  t->partials + (t->n_work + i) * FO_PARTIALS);                              \
        }                                                                                                    \
        FO_RUN_ITEMS(t, FO_SELECT(name##_apply_item), h);                                                    \
        return FO_OK;                                                                                        \
    }
