/* Adagrad kernels: the body is adagrad_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "adagrad_impl.h"
#include "fo_instantiate.h"
