/* fo_instantiate.h — compile the kernel body named by FO_IMPL twice: for float (suffix f32) and double (f64).
 * Inside the body, FO_T is the element type and FO_FN(name) appends the suffix: FO_FN(fo_adam) -> fo_adam_f32. */
#ifndef FO_IMPL
#error "define FO_IMPL before including fo_instantiate.h"
#endif

#define FO_CAT3_(a, b, c) a##b##c
#define FO_CAT3(a, b, c) FO_CAT3_(a, b, c)
#ifdef FO_VARIANT /* an extra suffix, for files that build their bodies once per instruction set (adafactor.c) */
#define FO_FN(name) FO_CAT3(FO_CAT3(name, _, FO_SFX), _, FO_VARIANT)
#else
#define FO_FN(name) FO_CAT3(name, _, FO_SFX)
#endif

#define FO_T float
#define FO_SFX f32
#include FO_IMPL
#undef FO_T
#undef FO_SFX

#define FO_T double
#define FO_SFX f64
#include FO_IMPL
#undef FO_T
#undef FO_SFX

#undef FO_FN
