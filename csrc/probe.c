/* Same-traffic probe for the benchmark: the body is probe_impl.h, compiled for float and double. */
#include "fastopt.h"
#define FO_IMPL "probe_impl.h"
#include "fo_instantiate.h"
