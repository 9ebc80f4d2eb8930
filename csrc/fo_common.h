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

#define FO_STR_(x) #x
#define FO_STR(x) FO_STR_(x)
#define FO_PRAGMA(x) _Pragma(FO_STR(x))

/* Runtime SIMD dispatch: one binary, the best of AVX-512 / AVX2 / baseline picked when the module loads. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(FO_NO_CLONES)
#define FO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FO_CLONES
#endif

#if defined(__GNUC__)
#define FO_INLINE static inline __attribute__((always_inline))
#else
#define FO_INLINE static inline
#endif

#endif /* FO_COMMON_H */
