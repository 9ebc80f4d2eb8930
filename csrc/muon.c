/* muon kernels: the body is muon_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "muon_impl.h"
#include "fo_instantiate.h"
