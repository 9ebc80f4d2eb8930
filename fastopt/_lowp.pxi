# The blockwise 8-bit quantizer on its own (included by _kernels.pyx; C in csrc/lowp.c): what the fused
# low-precision kernels do per block, for tests and for converting checkpoints to and from float32 moments.

from libc.stdint cimport uint8_t

cdef extern from "fastopt.h":
    int64_t FO_QBLOCK
    int FO_LOWP_F32
    int FO_LOWP_BF16
    int FO_LOWP_Q8
    int fo_q8_quantize(const float *x, int64_t n, const float *levels, uint8_t *q, float *absmax) nogil
    int fo_q8_dequantize(const uint8_t *q, int64_t n, const float *code, const float *absmax, float *x) nogil

Q8_BLOCK = FO_QBLOCK
LOWP_F32 = FO_LOWP_F32
LOWP_BF16 = FO_LOWP_BF16
LOWP_Q8 = FO_LOWP_Q8


cdef int _q8_arg(object a, str name, object dtype, int64_t size, bint written) except -1:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray x = <cnp.ndarray>a
    if x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, expected {np.dtype(dtype)}")
    if cnp.PyArray_SIZE(x) != size:
        raise ValueError(f"{name} has {x.size} elements, expected {size}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_ISALIGNED(x)):
        raise ValueError(f"{name} must be C-contiguous and aligned")
    if written and not cnp.PyArray_ISWRITEABLE(x):
        raise ValueError(f"{name} is read-only")
    return 0


def q8_quantize(cnp.ndarray x, cnp.ndarray levels, cnp.ndarray q, cnp.ndarray absmax) -> None:
    """Quantize float32 ``x`` blockwise into uint8 ``q`` (x's size) and float32 ``absmax`` (one per block) with a
    map's rounding thresholds ``levels`` (fastopt._lowp.code_levels: 256 float32)."""
    cdef int64_t n = cnp.PyArray_SIZE(x)
    _q8_arg(x, "x", np.float32, n, False)
    _q8_arg(levels, "levels", np.float32, 256, False)
    _q8_arg(q, "q", np.uint8, n, True)
    _q8_arg(absmax, "absmax", np.float32, (n + FO_QBLOCK - 1) // FO_QBLOCK, True)
    if find_overlap([q, absmax, x, levels], [True, True, False, False]) is not None:
        raise ValueError("q8_quantize: the outputs must not share memory with any other argument")
    fo_q8_quantize(<const float *>cnp.PyArray_DATA(x), n, <const float *>cnp.PyArray_DATA(levels),
                   <uint8_t *>cnp.PyArray_DATA(q), <float *>cnp.PyArray_DATA(absmax))


def q8_dequantize(cnp.ndarray q, cnp.ndarray code, cnp.ndarray absmax, cnp.ndarray x) -> None:
    """``x = code[q] * absmax[block]``: the inverse of ``q8_quantize`` up to its rounding."""
    cdef int64_t n = cnp.PyArray_SIZE(q)
    _q8_arg(q, "q", np.uint8, n, False)
    _q8_arg(code, "code", np.float32, 256, False)
    _q8_arg(absmax, "absmax", np.float32, (n + FO_QBLOCK - 1) // FO_QBLOCK, False)
    _q8_arg(x, "x", np.float32, n, True)
    if find_overlap([x, q, code, absmax], [True, False, False, False]) is not None:
        raise ValueError("q8_dequantize: the output must not share memory with any other argument")
    fo_q8_dequantize(<const uint8_t *>cnp.PyArray_DATA(q), n, <const float *>cnp.PyArray_DATA(code),
                     <const float *>cnp.PyArray_DATA(absmax), <float *>cnp.PyArray_DATA(x))

cdef extern from "fastopt.h":
    int FO_LP_BF16
    int FO_LP_F16

LP_BF16 = FO_LP_BF16
LP_F16 = FO_LP_F16
