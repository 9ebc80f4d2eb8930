/* Adadelta kernels: the body is adadelta_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "adadelta_impl.h"
#include "fo_instantiate.h"
