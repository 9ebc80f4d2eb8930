/* fo_f32_bodies.h — the float32 kernels' range functions (adam_range_f32, sgd_range_f32, rmsprop_range_f32,
 * lion_range_f32: the formula blocks of adam.c, sgd.c, rmsprop.c and lion.c) for the kernels that stage
 * low-precision data through float32 tiles in L1 (lowp_params.c: 16-bit params; lowp_state.c: compressed state),
 * so that their arithmetic per element is exactly the float32 kernel's. FO_ELEMENTWISE is emptied first, so no
 * entry point is defined twice. Included once per file, after fastopt.h. */
#ifndef FO_F32_BODIES_H
#define FO_F32_BODIES_H
#undef FO_ELEMENTWISE
#define FO_ELEMENTWISE(name)
#define FO_T float
#define FO_FN(name) name##_f32
#include "adam.c"
#include "sgd.c"
#include "rmsprop.c"
#include "lion.c"
#undef FO_FN
#undef FO_T
#endif
