/* fo_sum.h — fastopt's one deterministic reduction. Every sum a kernel takes over a tensor (clipping's norms of
 * every order, Adafactor's row / column / RMS sums, LAMB's and LARS's trust-ratio norms, Prodigy's group sums) is
 * taken the same way, so it has the same bits for any thread count, instruction set and alignment:
 *
 *   1. the n values are cut into items at fixed FO_CHUNK boundaries (the work items of fo_plan_work, or
 *      fo_sum_run's chunks for a run reduced on one thread) — never by the thread count;
 *   2. in an item, element i goes into lane i % FO_SUM_LANES (FO_SUM_LOOP), each lane accumulated in double in
 *      element order, no alignment peel (the lanes start at the item's first element wherever it lies);
 *   3. the lanes are folded by one fixed pairwise tree (FO_SUM_TREE / fo_sum_fold) into the item's partial;
 *   4. the partials are added in item order, starting from 0 (fo_sum_items).
 *
 * The lane loop needs no reassociation, so the compiler vectorises it unchanged under every ISA variant: 16
 * double lanes are two AVX-512 or four AVX2 accumulators. Maxima and minima (clipping's inf / -inf norms) use the
 * same lanes with a NaN-sticky compare; their result does not depend on the order at all.
 *
 * The first part is type-independent; the second (after FO_SUM_H) is included inside an FO_T instantiation
 * (fo_instantiate.h) and defines fo_sum / fo_sumsq over a run of FO_T for that type. */
#ifndef FO_SUM_H
#define FO_SUM_H
#include "fo_common.h"

#define FO_SUM_LANES 16

/* The fixed combination tree of the 16 lanes L(0) .. L(15) (L: a one-argument macro naming lane k): pairs, then
 * pairs of pairs, ... the same tree on every CPU. Applied to an expression, it vectorises across columns too. */
#define FO_SUM_TREE(L)                                                                                      \
    (((((L(0)) + (L(1))) + ((L(2)) + (L(3)))) + (((L(4)) + (L(5))) + ((L(6)) + (L(7)))))                    \
     + ((((L(8)) + (L(9))) + ((L(10)) + (L(11)))) + (((L(12)) + (L(13))) + ((L(14)) + (L(15))))))

#define FO_SUM_LANE_(k) l[k]
static inline double fo_sum_fold(const double *l) { return FO_SUM_TREE(FO_SUM_LANE_); }
#undef FO_SUM_LANE_

static inline void fo_lanes_fill(double *l, const double v)
{
    for (int k = 0; k < FO_SUM_LANES; ++k)
        l[k] = v;
}

/* max (is_max) or min of the lanes, NaN if any lane is NaN: exact, so any order gives the same value. */
static inline double fo_extreme_fold(const double *l, const int is_max)
{
    double m = l[0];
    for (int k = 1; k < FO_SUM_LANES; ++k) {
        const double x = l[k];
        m = (m != m) ? m : (x != x) ? x : is_max ? (x > m ? x : m) : (x < m ? x : m);
    }
    return m;
}

/* The partials of `count` consecutive items (partial c at part[c * stride]) added in item order. */
static inline double fo_sum_items(const double *part, const int64_t count, const int64_t stride)
{
    double s = 0.0;
    for (int64_t c = 0; c < count; ++c)
        s += part[c * stride];
    return s;
}

/* Run BODY over the n elements of one item: `i` the element's index in the item, `k` its lane (i % FO_SUM_LANES);
 * BODY accumulates into its lane arrays (acc[k] += ...) and may read and write element i of its buffers. Full
 * blocks of FO_SUM_LANES elements are one vectorised loop, the last partial block a scalar one. */
#define FO_SUM_LOOP(n, i, k, ...)                                                                            \
    do {                                                                                                     \
        const int64_t fo_n_ = (n);                                                                           \
        int64_t fo_i0_ = 0;                                                                                  \
        for (; fo_i0_ + FO_SUM_LANES <= fo_n_; fo_i0_ += FO_SUM_LANES) {                                     \
            _Pragma("omp simd") for (int k = 0; k < FO_SUM_LANES; ++k)                                       \
            {                                                                                                \
                const int64_t i = fo_i0_ + k;                                                                \
                __VA_ARGS__                                                                                  \
            }                                                                                                \
        }                                                                                                    \
        for (int k = 0; fo_i0_ + k < fo_n_; ++k) {                                                           \
            const int64_t i = fo_i0_ + k;                                                                    \
            __VA_ARGS__                                                                                      \
        }                                                                                                    \
    } while (0)
#endif /* FO_SUM_H */

#ifdef FO_T
/* sum of x (fo_sum) or of x^2 (fo_sumsq) over one item of n <= FO_CHUNK elements, in double: its partial. */
static inline double FO_FN(fo_sum_item)(const FO_T *FO_RESTRICT x, const int64_t n, const int squares)
{
    double acc[FO_SUM_LANES] = {0.0};
    if (squares)
        FO_SUM_LOOP(n, i, k, { const double v = (double)x[i]; acc[k] += v * v; });
    else
        FO_SUM_LOOP(n, i, k, { acc[k] += (double)x[i]; });
    return fo_sum_fold(acc);
}

/* The same sum over a run of any length reduced on one thread: its FO_CHUNK items' partials added in order, so a
 * run's sum is the bits of the same values summed as work items on the thread pool. */
static inline double FO_FN(fo_sum_run)(const FO_T *x, const int64_t n, const int squares)
{
    double s = 0.0;
    for (int64_t b = 0; b < n; b += FO_CHUNK)
        s += FO_FN(fo_sum_item)(x + b, n - b < FO_CHUNK ? n - b : FO_CHUNK, squares);
    return s;
}
#endif
