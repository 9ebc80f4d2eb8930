/* sparse_adam kernels: the body is sparse_adam_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "sparse_adam_impl.h"
#include "fo_instantiate.h"
