/* NAdam kernels: the body is nadam_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "nadam_impl.h"
#include "fo_instantiate.h"
