/* RAdam kernels: the body is radam_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "radam_impl.h"
#include "fo_instantiate.h"
