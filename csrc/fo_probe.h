/* fo_probe.h — the same-traffic probe: the memory ceiling the benchmark compares kernels against.
 *
 * fo_probe_{f32,f64} runs over an fo_tensor_list exactly as an optimizer kernel does (same work items, thread
 * policy and alignment peel) and touches the same arrays: it reads buffer 1 (the gradient, IN) and reads and
 * writes buffer 0 and buffers 2 .. 1 + n_state (the parameter and state, INOUT), with one multiply-add per
 * written element (b = b + scale * g; the benchmark passes scale 0 so that the optimizers' state it shares
 * keeps its values). Its time is what moving the algorithm's minimum traffic costs on this machine. */
#ifndef FO_PROBE_H
#define FO_PROBE_H

#include "fastopt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t n_state; /* state buffers after param and grad: 0 to 3 */
    double scale;    /* b = b + scale * g */
} fo_probe_hyper;

int fo_probe_f32(const fo_tensor_list *t, const fo_probe_hyper *h);
int fo_probe_f64(const fo_tensor_list *t, const fo_probe_hyper *h);

#ifdef __cplusplus
}
#endif
#endif /* FO_PROBE_H */
