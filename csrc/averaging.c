/* Parameter averaging (SWA / EMA) kernels: the body is averaging_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "averaging_impl.h"
#include "fo_instantiate.h"
