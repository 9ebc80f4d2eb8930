/* rprop kernels: the body is rprop_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "rprop_impl.h"
#include "fo_instantiate.h"
