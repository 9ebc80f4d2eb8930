/* kernel_table.c — fo_kernels[]: one row per FO_KERNELS entry (fastopt.h), generated from the same list that
 * declares the hyper structs, so the field names, offsets and counts Python reads cannot drift from the C side. */
#include <stddef.h>

#include "fastopt.h"

#define FO_FIELD_D_(S, x) {#x, FO_FIELD_DOUBLE, offsetof(S, x)},
#define FO_FIELD_I_(S, x) {#x, FO_FIELD_INT, offsetof(S, x)},
#define FO_FIELDS_(name, FIELDS, nb, ns) \
    static const fo_field fo_fields_##name[] = {FIELDS(FO_FIELD_D_, FO_FIELD_I_, fo_##name##_hyper)};
FO_KERNELS(FO_FIELDS_)

/* Entry points taking the hyper block as an untyped pointer, so that one generic call can run any kernel. */
#define FO_ADAPT_(name, FIELDS, nb, ns)                                                 \
    static int fo_call_##name##_f32(const fo_tensor_list *t, const void *h)           \
    { return fo_##name##_f32(t, (const fo_##name##_hyper *)h); }                       \
    static int fo_call_##name##_f64(const fo_tensor_list *t, const void *h)           \
    { return fo_##name##_f64(t, (const fo_##name##_hyper *)h); }
FO_KERNELS(FO_ADAPT_)

#define FO_ROW_(name, FIELDS, nb, ns)                                                                     \
    {#name, (int64_t)(sizeof(fo_fields_##name) / sizeof(fo_field)), fo_fields_##name,                     \
     sizeof(fo_##name##_hyper), nb, ns, fo_call_##name##_f32, fo_call_##name##_f64},
const fo_kernel_info fo_kernels[] = {FO_KERNELS(FO_ROW_)};
const int64_t fo_n_kernels = (int64_t)(sizeof(fo_kernels) / sizeof(fo_kernels[0]));

#define FO_STEP_ROW_(name) {#name, (fo_step_scalars_fn)fo_##name##_step_scalars},
const fo_step_scalars_info fo_step_scalars[] = {FO_STEP_SCALARS(FO_STEP_ROW_)};
const int64_t fo_n_step_scalars = (int64_t)(sizeof(fo_step_scalars) / sizeof(fo_step_scalars[0]));
