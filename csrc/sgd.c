/* SGD kernels: the body is sgd_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "sgd_impl.h"
#include "fo_instantiate.h"
