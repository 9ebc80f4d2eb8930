/* Adam and AdamW kernels: the body is adam_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "adam_impl.h"
#include "fo_instantiate.h"
