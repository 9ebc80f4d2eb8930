/* fo_group_reduce.h — the driver of the group reductions (FO_REDUCERS in fastopt.h), the reducing sibling of the
 * elementwise driver in fo_common.h. Included by a kernel body (inside its FO_T instantiation), which defines
 *   FO_REDUCE_RANGE(<name>, <kernel>) { ... }  the work on one work item of n elements: buffers bufs[k] (NULL for
 *                                              an unused optional buffer), scalars s; writes its n_out partial
 *                                              sums to part[0 .. n_out), each fastopt's one reduction
 *                                              (fo_sum.h: FO_SUM_LOOP's lanes folded by fo_sum_fold);
 *   FO_FN(<name>_needs)(h)                     bit mask of the buffer positions it reads or writes, or -1;
 * and ends with FO_REDUCTION(<name>, <kernel>, <n_out>). That generates the per-item function (no alignment peel:
 * an item's lanes always start at its first element), its ISA variants and the entry point fo_<name>_{f32,f64}:
 * check the list before the first write, run every item on the thread pool, then add the partials in item order
 * (fo_sum_items). */
#include "fo_sum.h"
#ifndef FO_GROUP_REDUCE_H
#define FO_GROUP_REDUCE_H
#define FO_REDUCE_MAX_BUFS 8
typedef struct {
    const void *h;     /* the kernel's hyper struct */
    double *partials;  /* [n_work * n_out] */
} fo_reduce_ctx;
#endif

#define FO_REDUCE_RANGE(name, kernel)                                                                          \
    FO_INLINE void FO_FN(name##_range)(const fo_##kernel##_hyper *h, FO_T *const *bufs, const double *s,    \
                                       const int64_t n, double *part)

#define FO_REDUCTION(name, kernel, n_out)                                                                      \
    FO_INLINE void FO_FN(name##_item)(const fo_tensor_list *t, const fo_reduce_ctx *c, int64_t w)            \
    {                                                                                                          \
        const fo_work *it = &t->work[w];                                                                       \
        const int64_t nb = t->n_bufs < FO_REDUCE_MAX_BUFS ? t->n_bufs : FO_REDUCE_MAX_BUFS;                    \
        FO_T *b[FO_REDUCE_MAX_BUFS] = {NULL};                                                                  \
        FO_ITEM_BUFS(t, it, b, nb, 0);                                                                         \
        FO_FN(name##_range)((const fo_##kernel##_hyper *)c->h, b, t->scalars + it->tensor * t->n_scalars,     \
                            it->end - it->begin, c->partials + w * (n_out));                                   \
    }                                                                                                          \
    FO_DEFINE_VARIANTS(name##_item, fo_reduce_ctx)                                                             \
    int FO_FN(fo_##name)(const fo_tensor_list *t, const fo_##kernel##_hyper *h, double *partials, double *out) \
    {                                                                                                          \
        if (partials == NULL || out == NULL)                                                                   \
            return FO_ERR_ARG;                                                                                 \
        FO_ENTRY_CHECKS(t, h, FO_FN(name##_needs), fo_##kernel##_n_scalars);                                   \
        const fo_reduce_ctx ctx = {(const void *)h, partials};                                                 \
        FO_RUN_ITEMS(t, FO_SELECT(name##_item), &ctx);                                                         \
        for (int64_t k = 0; k < (n_out); ++k)                                                                  \
            out[k] = fo_sum_items(partials + k, t->n_work, (n_out));                                           \
        return FO_OK;                                                                                          \
    }
