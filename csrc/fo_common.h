/* fo_common.h — macros shared by every kernel: index type, chunking, OpenMP and SIMD helpers.
 *
 * Work is split into fixed-size (tensor, chunk) items of FO_CHUNK elements, so the split — and with it
 * every result, including reductions — never depends on the number of threads. */
#ifndef FO_COMMON_H
#define FO_COMMON_H

#include <stdint.h>
#include <stddef.h>

#define FO_RESTRICT __restrict__

/* Elements per work item. Adam fp32 touches 16 bytes per element (4 arrays), so 16384 elements is
 * 256 KiB of working set per item: it fits in L2 on every current x86-64 core. */
#ifndef FO_CHUNK
#define FO_CHUNK 16384
#endif

/* Below this many elements in a call, threads cost more than they save: run on one thread. */
#ifndef FO_PARALLEL_MIN
#define FO_PARALLEL_MIN 262144
#endif


#if defined(__GNUC__)
#define FO_INLINE static inline __attribute__((always_inline))
#else
#define FO_INLINE static inline
#endif



/* sqrt in the element type: sqrtf for float, sqrt for double (both vectorise with -fno-math-errno). */
#include <math.h>
#define FO_FMA(a, b, c) _Generic((a), float: fmaf, double: fma)(a, b, c)
#define FO_SQRT(x) _Generic((x), float: sqrtf, double: sqrt)(x)

/* torch.maximum: NaN if either side is NaN. */
#define FO_MAX_NAN(a, b) (((a) != (a)) ? (a) : (((a) > (b)) ? (a) : (b)))

/* Run item_fn(t, h, w) over every work item of t, on up to fo_threads_for(total, t->n_threads) threads.
 * The calling thread claims items one by one from a shared counter and helper threads (a small pool, see
 * fo_run_items in table.c) claim from the same counter when they are awake: the caller never waits for a
 * helper that has not started, only for items a helper has claimed, so more threads are never slower than one
 * on a busy machine. Which thread runs an item never changes any result: items are fixed by the plan.
 * item_fn is called through a generic pointer type (every item function takes (list, hyper pointer, index)). */
#define FO_RUN_ITEMS(t, item_fn, h)                                                                          \
    fo_run_items((const void *)(t), (t)->n_work, (const void *)(h), (fo_item_fn)(item_fn),               \
                 fo_threads_for((t)->total, (t)->n_threads))

/* How many leading elements of an n-element run starting at p to process before p sits on a 64-byte (cache
 * line, AVX-512 vector) boundary: SGD, Adam/AdamW, RMSprop and the probe run [0, head) then [head, n) so
 * that the vector loop's stores to p — and to state buffers allocated with p's alignment (fastopt/_memory.py) — never split a cache
 * line. NumPy only guarantees 16-byte alignment; a split store costs up to 1.6x at L3-resident sizes.
 * Each element is computed by the same correctly rounded operations either way, so results do not change. */
FO_INLINE int64_t fo_align_head(const void *p, int64_t n, int64_t elem)
{
    const uintptr_t a = (uintptr_t)p;
    const int64_t head = (a % (uintptr_t)elem) ? 0 : (int64_t)(((64 - (a & 63)) & 63) / (uintptr_t)elem);
    return head < n ? head : n;
}

/* Runtime ISA dispatch: each kernel's per-item function is compiled three times — AVX-512 + FMA, AVX2 + FMA,
 * baseline x86-64 — and fo_isa() picks one when a kernel runs, so one portable binary uses what the CPU has.
 * FMA is used exactly where torch's CPU kernels use it (add with alpha, lerp, addcmul), through fma(), which
 * is correctly rounded everywhere: the baseline build calls libm's fma and gets the same bits, only slower. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(FO_NO_DISPATCH)
#define FO_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define FO_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define FO_TARGET_AVX512
#define FO_TARGET_AVX2
#endif
int fo_isa(void); /* 2: AVX-512F + FMA, 1: AVX2 + FMA, 0: baseline (table.c) */

#define FO_DEFINE_VARIANTS(item, hyper_t)                                                                   \
    static FO_TARGET_AVX512 void FO_FN(item##_avx512)(const fo_tensor_list *t, const hyper_t *h, int64_t w) \
    { FO_FN(item)(t, h, w); }                                                                               \
    static FO_TARGET_AVX2 void FO_FN(item##_avx2)(const fo_tensor_list *t, const hyper_t *h, int64_t w)     \
    { FO_FN(item)(t, h, w); }                                                                               \
    static void FO_FN(item##_base)(const fo_tensor_list *t, const hyper_t *h, int64_t w)                    \
    { FO_FN(item)(t, h, w); }

#define FO_SELECT(item) \
    (fo_isa() == 2 ? FO_FN(item##_avx512) : fo_isa() == 1 ? FO_FN(item##_avx2) : FO_FN(item##_base))

/* ---- The elementwise driver: every kernel of the table (fastopt.h, FO_KERNELS) is built by it ----------------
 *
 * A kernel is one file, csrc/<name>.c, that instantiates itself (fo_instantiate.h includes it once per element
 * type, with FO_T set); its body defines:
 *   FO_RANGE(<name>) { ... }                the update over one run of n elements (see FO_RANGE);
 *   FO_FN(<name>_needs)(h)                   bit mask of the buffer positions these options read or write
 *                                            (bit k: buffer k), or -1 if the options are invalid (FO_ERR_ARG)
 *                                            (FO_NEEDS_FIRST for a fixed set);
 * and ends with FO_ELEMENTWISE(<name>). That generates the per-item function, which peels the elements before
 * the parameter's first 64-byte boundary (see fo_align_head), its three ISA variants, and the entry point
 * fo_<name>_{f32,f64}: check the list (fo_kernel_check) before the first write, then run every work item on the
 * thread pool. Each element is computed by the same correctly rounded operations on either side of the peel and
 * in every variant, so the results depend neither on the alignment nor on the CPU nor on the thread count. */
#define FO_MAX_BUFS 5 /* the most buffers per tensor any table kernel reads (fastopt.h: n_bufs) */

/* The signature of a kernel body's range function: h its hyper-parameters, bufs[k] buffer k at the range's
 * first element (NULL for an unused optional buffer), s the tensor's per-tensor scalars, n the range's length. */
#define FO_RANGE(name) FO_INLINE void FO_FN(name##_range)(const fo_##name##_hyper *h, FO_T *const *bufs, \
                                                          const double *s, const int64_t n)

/* Buffer k of the tensor of work item `it`, `offset` elements into the item (NULL stays NULL). */
#define FO_ITEM_BUF(t, it, k, offset)                                                                        \
    ((t)->bufs[(it)->tensor * (t)->n_bufs + (k)] == NULL ? (FO_T *)NULL                                     \
                                                       : (FO_T *)(t)->bufs[(it)->tensor * (t)->n_bufs + (k)] \
                                                             + (it)->begin + (offset))

/* b[0 .. nb) = buffer k of work item `it`'s tensor, `offset` elements into the item. */
#define FO_ITEM_BUFS(t, it, b, nb, offset)                                                                   \
    for (int64_t fo_k_ = 0; fo_k_ < (nb); ++fo_k_)                                                           \
    (b)[fo_k_] = FO_ITEM_BUF(t, it, fo_k_, offset)

/* The buffer count a driver unpacks for table t (at most FO_MAX_BUFS). */
#define FO_ITEM_NB(t) ((t)->n_bufs < FO_MAX_BUFS ? (t)->n_bufs : FO_MAX_BUFS)

/* Run range_fn(args..., length) over an item of n elements whose buffers b (nb of them) start at the item: first
 * up to the 64-byte boundary of b[0] (the peel), then the rest, so that the body's vector loop runs aligned. */
#define FO_PEELED(t, it, b, nb, n, range_fn, ...)                                                            \
    do {                                                                                                     \
        const int64_t fo_head_ = fo_align_head((b)[0], (n), (int64_t)sizeof(FO_T));                          \
        if (fo_head_ > 0) {                                                                                  \
            range_fn(__VA_ARGS__, fo_head_);                                                                 \
            FO_ITEM_BUFS(t, it, b, nb, fo_head_);                                                            \
        }                                                                                                    \
        range_fn(__VA_ARGS__, (n) - fo_head_);                                                               \
    } while (0)

/* The entry point's checks, before anything is written: arguments, the buffers the kernel needs (needs_fn(h):
 * a mask, or -1 for invalid hyper-parameters) and the scalar count; returns the error code from the entry. */
#define FO_ENTRY_CHECKS(t, h, needs_fn, n_scalars)                                                           \
    do {                                                                                                     \
        if ((t) == NULL || (h) == NULL)                                                                      \
            return FO_ERR_ARG;                                                                               \
        const int64_t fo_needs_ = needs_fn(h);                                                               \
        if (fo_needs_ < 0)                                                                                   \
            return FO_ERR_ARG;                                                                               \
        const int fo_rc_ = fo_kernel_check((t), (uint32_t)fo_needs_, (n_scalars));                           \
        if (fo_rc_ != FO_OK)                                                                                 \
            return fo_rc_;                                                                                   \
    } while (0)

#define FO_ELEMENTWISE(name)                                                                                 \
    FO_INLINE void FO_FN(name##_item)(const fo_tensor_list *t, const fo_##name##_hyper *h, int64_t w)        \
    {                                                                                                        \
        const fo_work *it = &t->work[w];                                                                     \
        const int64_t n = it->end - it->begin, nb = FO_ITEM_NB(t);                                           \
        const double *s = t->scalars + it->tensor * t->n_scalars;                                            \
        FO_T *b[FO_MAX_BUFS] = {NULL};                                                                       \
        FO_ITEM_BUFS(t, it, b, nb, 0);                                                                       \
        FO_PEELED(t, it, b, nb, n, FO_FN(name##_range), h, b, s);                                            \
    }                                                                                                        \
    FO_DEFINE_VARIANTS(name##_item, fo_##name##_hyper)                                                       \
    int FO_FN(fo_##name)(const fo_tensor_list *t, const fo_##name##_hyper *h)                                \
    {                                                                                                        \
        FO_ENTRY_CHECKS(t, h, FO_FN(name##_needs), fo_##name##_n_scalars);                                   \
        FO_RUN_ITEMS(t, FO_SELECT(name##_item), h);                                                          \
        return FO_OK;                                                                                        \
    }

/* A kernel that always reads buffers [0, n): its needs function. */
#define FO_NEEDS_FIRST(name, n)                                                   \
    static inline int64_t FO_FN(name##_needs)(const fo_##name##_hyper *h)         \
    {                                                                             \
        (void)h;                                                                  \
        return FO_FIRST(n);                                                       \
    }

/* Bit mask of buffer positions [0, n): what most kernels need (param, grad, then their state). */
#define FO_FIRST(n) ((int64_t)((1u << (n)) - 1u))

/* ---- Helpers for what repeats in kernel bodies (each in torch's operations) ----------------------------- */

/* torch's lerp(start, end, w): start + w * (end - start) when |w| < 0.5, else end - (end - start) * (1 - w), each
 * as one fma (torch's CPU lerp kernel); `small_w` is |w| < 0.5, decided once per call (fo_small_weight). */
#define FO_LERP(start, end, w, small_w) \
    ((small_w) ? FO_FMA((w), (end) - (start), (start)) : FO_FMA((w) - 1, (end) - (start), (end)))
#define fo_small_weight(w) (((w) < 0 ? -(w) : (w)) < 0.5)

/* The weight-decay prologue of the kernels with a decoupled_weight_decay option (Adam, NAdam, RAdam): L2 decay
 * (added to the gradient, FO_GRAD) unless decoupled; decoupled, the parameter is first scaled by 1 - lr * wd
 * (exactly 1 otherwise: p * 1 == p for every p). */
#define FO_L2(h) ((h)->weight_decay != 0 && !(h)->decoupled_weight_decay)
#define FO_DECOUPLED_DECAY(h) \
    ((FO_T)(((h)->weight_decay != 0 && (h)->decoupled_weight_decay) ? 1 - (h)->lr * (h)->weight_decay : 1.0))

/* The gradient as the update sees it: negated if maximize, plus wd * p for L2 weight decay (grad.add(p, alpha=wd),
 * one fma). `l2` is weight_decay != 0 (and not decoupled), decided once per call. */
#define FO_GRAD(g, p, wd, maximize, l2) ((l2) ? FO_FMA((wd), (p), (maximize) ? -(g) : (g)) : ((maximize) ? -(g) : (g)))

/* Element i's parameter and gradient, inside a kernel's loop over p and g that has the flags maximize and l2 and the
 * weight decay wd (element type): declares pi = p[i] and gi, the gradient as the update sees it (FO_GRAD: negated
 * if maximize, plus wd * p for L2 weight decay). */
#define FO_PARAM_GRAD(i) \
    FO_T pi = p[i];      \
    FO_T gi = FO_GRAD(g[i], pi, wd, maximize, l2)

/* ---- The Adam family's shared first steps (Adam, NAdam, RAdam; each in torch's operations) ------------------
 *
 * FO_ADAM_LOCALS(h, bufs), in a range function, declares the buffers the family's loops take (p, g, m = exp_avg,
 * v = exp_avg_sq: bufs 0-3) and their constants, as the element type: l2 and decay (FO_L2, FO_DECOUPLED_DECAY),
 * w1 = 1 - beta1 and small_w (the branch of its lerp), wd, b2 = beta2, w2 = 1 - beta2, eps. A loop declares them as
 * its first parameters with FO_ADAM_PARAMS (with the count n) and the range passes them with FO_ADAM_ARGS. */
#define FO_ADAM_LOCALS(h, bufs)                                                                              \
    FO_T *p = (bufs)[0];                                                                                     \
    const FO_T *g = (bufs)[1];                                                                               \
    FO_T *m = (bufs)[2];                                                                                     \
    FO_T *v = (bufs)[3];                                                                                     \
    const int l2 = FO_L2(h);                                                                                 \
    const FO_T decay = FO_DECOUPLED_DECAY(h);                                                                \
    const FO_T w1 = (FO_T)(1 - (h)->beta1);                                                                  \
    const int small_w = fo_small_weight(w1);                                                                 \
    const FO_T wd = (FO_T)(h)->weight_decay, b2 = (FO_T)(h)->beta2, w2 = (FO_T)(1 - (h)->beta2), eps = (FO_T)(h)->eps
#define FO_ADAM_PARAMS                                                                                       \
    FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m, FO_T *FO_RESTRICT v, const int64_t n, \
        const FO_T wd, const FO_T decay, const FO_T w1, const FO_T b2, const FO_T w2, const FO_T eps
#define FO_ADAM_ARGS p, g, m, v, n, wd, decay, w1, b2, w2, eps

/* Element i's first steps, inside such a loop (which also has the flags maximize, l2 and small_w): pi = p[i]; gi the
 * gradient as the update sees it (FO_GRAD, with the parameter before decay); pi scaled by the decoupled decay;
 * mi = lerp(m[i], gi, w1) (exp_avg.lerp_(grad, 1 - beta1)); vi = v[i] * b2 + (w2 * gi) * gi
 * (exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2), one fma). Declares pi, gi, mi and vi. */
#define FO_ADAM_MOMENTS(i)                                                                                   \
    FO_PARAM_GRAD(i);                                                                                        \
    pi = pi * decay; /* exactly 1 unless decoupled weight decay is on: p * 1 == p for every p */             \
    const FO_T mi = FO_LERP(m[i], gi, w1, small_w);                                                          \
    const FO_T vi = FO_FMA(w2 * gi, gi, v[i] * b2)

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

/* ---- Division by a per-call constant without a divide instruction (float32, bit-exact) --------------------
 *
 * For float x and a float constant c with FLT_MIN <= c <= 1, the correctly rounded x / c equals
 * (float)((double)x * (1.0 / (double)c)), for every x: NaN (same payload), +-inf, +-0, subnormals, overflow to inf.
 * Proof: with q = x / c exactly, r = RN64(1 / c) and p = RN64(x * r) (neither over- nor underflows in double here),
 * |p - q| < 2^-51 |q|, so RN32(p) = RN32(q) unless a float32 rounding boundary (a midpoint between adjacent floats,
 * the overflow threshold included) lies between p and q, or on p. Write x = X 2^a, c = C 2^b (X, C integers,
 * 2^23 <= C < 2^24 as c is normal) and a midpoint m = (2K + 1) 2^(e - 1) of q's binade (ulp 2^e). If q is normal,
 * x < 2^(a + 24) and x = q c >= 2^(e + 23) 2^(b + 23) give a >= e + b + 23, so x - m c is a multiple of
 * 2^(e - 1 + b), and not 0 (x / 2^(e - 1 + b) has at least 24 factors of 2, (2K + 1) C at most 23): |q - m| >=
 * 2^(e - 1) / C > 2^-49 |q|. If q is subnormal (e = -149; c <= 1 so b <= -23), x - m c is a nonzero multiple of
 * 2^(b - 150) (x is a multiple of 2^-149, (2K + 1) C 2^(b - 150) is not), so |q - m| > 2^-174 > 2^-51 |q|. Either way
 * the boundary is farther from q than p is. (Also under DAZ, as torch.set_flush_denormal sets it with FTZ: a subnormal
 * x reads as 0 on both sides and a normal x gives q >= FLT_MIN. FTZ without DAZ could differ for subnormal x.)
 * Checked over all 2^32 x for sample constants c: `sh bench/sf_micro.sh check` (bench/sf_div_check.c).
 *
 * A division costs what 16 multiplications do on the divider of current x86 cores (AVX-512: one vdivps per 16 lanes
 * against two conversions each way and two vmulpd): fo_div_exact_ok(c) says whether the rewrite is exact for the
 * element type (float, and c in range; never for double: there is no wider type), FO_DIV_BY_INV(x, c, inv) is x / c
 * computed so, with inv = 1.0 / (double)c hoisted per call (for a double x it is x / c). */
#define fo_div_exact_ok(c) (sizeof(c) == sizeof(float) && (c) >= 0x1p-126f && (c) <= 1)
#define FO_DIV_BY_INV(x, c, inv) _Generic((x), float: (float)((double)(x) * (inv)), default: (x) / (c))

#endif /* FO_COMMON_H */
