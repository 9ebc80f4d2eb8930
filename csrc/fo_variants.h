/* fo_variants.h — compile the body named by FO_IMPL once per element type (fo_instantiate.h) and once per
 * instruction set: AVX-512 + FMA, AVX2 + FMA and baseline x86-64, with FO_VARIANT the suffix (FO_FN(name) ->
 * name_f32_avx512, ...). For the kernels whose work items are not those of an fo_tensor_list (clipping's mixed-dtype
 * gradient list, Adafactor's per-tensor arrays), so FO_DEFINE_VARIANTS does not apply; FO_PICK(name) then names the
 * variant fo_isa() chooses, as FO_SELECT does for the table kernels. Without the variants the baseline build calls
 * libm's fma for every element and the reductions run on SSE2. */
#ifndef FO_IMPL
#error "define FO_IMPL before including fo_variants.h"
#endif

#if defined(__GNUC__) && defined(__x86_64__) && !defined(FO_NO_DISPATCH)
#define FO_VARIANTS_DISPATCH 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx2,fma")
#define FO_VARIANT avx512
#include "fo_instantiate.h"
#undef FO_VARIANT
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FO_VARIANT avx2
#include "fo_instantiate.h"
#undef FO_VARIANT
#pragma GCC pop_options
#endif

#define FO_VARIANT base
#include "fo_instantiate.h"
#undef FO_VARIANT

#ifdef FO_VARIANTS_DISPATCH
#define FO_PICK(name) (fo_isa() == 2 ? name##_avx512 : fo_isa() == 1 ? name##_avx2 : name##_base)
#else
#define FO_PICK(name) (name##_base)
#endif
