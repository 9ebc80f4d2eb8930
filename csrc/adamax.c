/* Adamax kernels: the body is adamax_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "adamax_impl.h"
#include "fo_instantiate.h"
