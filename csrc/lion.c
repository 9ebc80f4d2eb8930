/* Lion kernels: the body is lion_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "lion_impl.h"
#include "fo_instantiate.h"
