/* RMSprop kernels: the body is rmsprop_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "rmsprop_impl.h"
#include "fo_instantiate.h"
