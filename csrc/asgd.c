/* asgd kernels: the body is asgd_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "asgd_impl.h"
#include "fo_instantiate.h"
