/* Adafactor kernels: the body is adafactor_impl.h, compiled for float and double. */
#include "fastopt.h"

int64_t fo_adafactor_n_chunks(int64_t n)
{
    return n <= 0 ? 0 : (n + FO_CHUNK - 1) / FO_CHUNK;
}

#define FO_IMPL "adafactor_impl.h"
#include "fo_instantiate.h"
