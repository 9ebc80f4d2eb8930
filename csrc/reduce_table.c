/* reduce_table.c — fo_reducers[]: one row per FO_REDUCERS entry (fastopt.h), generated from that list. */
#include "fastopt.h"

#define FO_ADAPT_(name, kernel, n_out)                                                                  \
    static int fo_call_##name##_f32(const fo_tensor_list *t, const void *h, double *partials, double *out) \
    { return fo_##name##_f32(t, (const fo_##kernel##_hyper *)h, partials, out); }                       \
    static int fo_call_##name##_f64(const fo_tensor_list *t, const void *h, double *partials, double *out) \
    { return fo_##name##_f64(t, (const fo_##kernel##_hyper *)h, partials, out); }
FO_REDUCERS(FO_ADAPT_)

#define FO_ROW_(name, kernel, n_out) {#name, #kernel, n_out, fo_call_##name##_f32, fo_call_##name##_f64},
const fo_reducer_info fo_reducers[] = {FO_REDUCERS(FO_ROW_)};
const int64_t fo_n_reducers = (int64_t)(sizeof(fo_reducers) / sizeof(fo_reducers[0]));
