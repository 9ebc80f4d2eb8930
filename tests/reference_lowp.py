"""NumPy references for low-precision parameters and compressed optimizer state (issue 14):
bfloat16 rounding (nearest-even and seeded stochastic) on raw uint16 bits, bitsandbytes' signed and
unsigned dynamic quantization maps, blockwise 8-bit quantization with exact nearest-code rounding,
and an 8-bit-state Adam step. Readable first, never fast: these are what fastopt's fused low-precision
kernels are tested against.

bfloat16 values are handled as their uint16 bit patterns, so nothing here needs ml_dtypes (the tests
compare against ml_dtypes' own cast when it is installed).
"""
from __future__ import annotations

import numpy as np

from reference import _c, _lerp

BLOCK = 256            # bitsandbytes' block size since v0.44
MIN_8BIT_SIZE = 4096   # tensors smaller than this keep float32 state (bnb's min_8bit_size)


# ---------------------------------------------------------------------------------------------
# bfloat16 as uint16 bits
# ---------------------------------------------------------------------------------------------
def bf16_bits_nearest(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest, ties to even; NaN stays a (quiet) NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lsb = (u >> 16) & 1
    rounded = ((u + 0x7FFF + lsb) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    quiet = ((u >> 16) | 0x0040).astype(np.uint16)          # keep sign and payload, set quiet bit
    return np.where(nan, quiet, rounded)


def bf16_bits_stochastic(x: np.ndarray, random16: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, stochastic rounding: add 16 random low bits, then truncate. An
    element rounds up with probability (distance to the lower neighbour) / (spacing), so the
    rounding is unbiased. ``random16`` holds one uint16 per element (the caller seeds it)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    finite = np.isfinite(np.asarray(x, dtype=np.float32))
    up = ((u + random16.astype(np.uint64)) >> 16).astype(np.uint16)
    return np.where(finite, up, bf16_bits_nearest(x))


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits -> float32 (exact)."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------------------------------------
# bitsandbytes' dynamic maps and blockwise quantization
# ---------------------------------------------------------------------------------------------
def _linspace_f32(start: float, end: float, n: int) -> np.ndarray:
    """linspace in float32 the way torch evaluates it (which bitsandbytes' map is built with): a
    float32 step, the first half counted up from ``start`` and the second half down from ``end``,
    each point one fused multiply-add (step * i is exact in double, so the double sum rounded once
    to float32 is the fma's result)."""
    f32, f64 = np.float32, np.float64
    step = (f32(end) - f32(start)) / f32(n - 1)
    idx = np.arange(n)
    up = (f64(step) * idx + f64(f32(start))).astype(f32)
    down = (f64(f32(end)) - f64(step) * (n - 1 - idx)).astype(f32)
    return np.where(idx < n // 2, up, down)


def dynamic_map(signed: bool) -> np.ndarray:
    """The 256 sorted float32 codes of bitsandbytes' ``create_dynamic_map(signed)`` (7 exponent
    decades, linear inside each): decade i = 0..6 holds 10^(i-6) times the midpoints of
    linspace(0.1, 1, k + 1), with k = 2^i (signed: mirrored to negative) or 2^(i+1) (unsigned),
    plus 0 and 1."""
    f32 = np.float32
    values: list[float] = []
    for i in range(7):
        k = 2 ** i if signed else 2 ** (i + 1)
        edges = _linspace_f32(0.1, 1.0, k + 1)
        mids = (edges[:-1] + edges[1:]) / f32(2.0)              # all of it in float32, as bnb
        scale = f32(10.0 ** (i - 6))
        values.extend((scale * mids).tolist())
        if signed:
            values.extend((-scale * mids).tolist())
    values.extend([0.0, 1.0])
    code = np.array(sorted(values), dtype=np.float32)
    assert code.size == 256, code.size
    return code


def _nearest_code(normalized: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Index of the nearest code (ties to the lower index), exact: no lookup table."""
    hi = np.clip(np.searchsorted(code, normalized, side="left"), 1, code.size - 1)
    lo = hi - 1
    pick_hi = np.abs(code[hi] - normalized) < np.abs(normalized - code[lo])
    return np.where(pick_hi, hi, lo).astype(np.uint8)


def quantize_blockwise(x: np.ndarray, code: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """float32 array -> (uint8 codes of x's shape, float32 absmax per block of the flattened array).

    Each block is divided by its absmax (so its largest element maps to code +-1 exactly), then every
    element takes the nearest code. A block of zeros keeps absmax 0 and the code of 0. NaN elements
    give a NaN absmax for their block (they propagate, as in torch), and take code index 0.
    """
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    n = flat.size
    nblocks = -(-n // block)
    padded = np.zeros(nblocks * block, np.float32)
    padded[:n] = flat
    blocks = padded.reshape(nblocks, block)
    absmax = np.max(np.abs(blocks), axis=1)
    scale = np.where(absmax > 0, absmax, np.float32(1)).astype(np.float32)
    normalized = blocks / scale[:, None]
    idx = _nearest_code(np.nan_to_num(normalized, nan=0.0).reshape(-1), code).reshape(nblocks, block)
    idx = np.where(np.isnan(normalized), np.uint8(0), idx)
    return idx.reshape(-1)[:n].reshape(x.shape).astype(np.uint8), absmax.astype(np.float32)


def dequantize_blockwise(codes: np.ndarray, absmax: np.ndarray, code: np.ndarray,
                         block: int = BLOCK) -> np.ndarray:
    """Inverse of :func:`quantize_blockwise` up to rounding: ``code[q] * absmax[block of q]``."""
    flat = codes.reshape(-1)
    scale = np.repeat(absmax, block)[: flat.size]
    return (code[flat] * scale).astype(np.float32).reshape(codes.shape)


# ---------------------------------------------------------------------------------------------
# Adam with 8-bit state
# ---------------------------------------------------------------------------------------------
def ref_adam_8bit(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float, betas: tuple = (0.9, 0.999),
                  eps: float = 1e-8, weight_decay: float = 0.0, decoupled_weight_decay: bool = False) -> None:
    """Adam (or AdamW) on a float32 param whose moments are stored blockwise in 8 bits.

    Per step: dequantize m and v, update them in float32 in torch's order (as fp32 Adam), compute the
    param update from the **unquantized** new moments, then requantize with each block's new absmax
    (m with the signed map, v with the unsigned one). Tensors under MIN_8BIT_SIZE elements keep
    float32 moments. NaN/Inf gradients propagate (bitsandbytes zeroes that element's state instead).
    """
    dt = p.dtype
    beta1, beta2 = betas
    small = p.size < MIN_8BIT_SIZE
    if not state:
        state["step"] = 0
        if small:
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        else:
            nb = -(-p.size // BLOCK)
            state.update(qmap1=dynamic_map(True), qmap2=dynamic_map(False),
                         state1=np.full(p.shape, np.searchsorted(dynamic_map(True), 0.0), np.uint8),
                         state2=np.zeros(p.shape, np.uint8),
                         absmax1=np.zeros(nb, np.float32), absmax2=np.zeros(nb, np.float32))
    state["step"] += 1
    t = state["step"]
    if small:
        m, v = state["exp_avg"], state["exp_avg_sq"]
    else:
        m = dequantize_blockwise(state["state1"], state["absmax1"], state["qmap1"])
        v = dequantize_blockwise(state["state2"], state["absmax2"], state["qmap2"])
    g = g.copy()
    if weight_decay != 0:
        if decoupled_weight_decay:
            p[...] = p * _c(1 - lr * weight_decay, dt)
        else:
            g = g + _c(weight_decay, dt) * p
    m[...] = _lerp(m, g, 1 - beta1)
    v[...] = v * _c(beta2, dt) + (_c(1 - beta2, dt) * g) * g
    step_size = lr / (1 - beta1 ** t)
    bc2_sqrt = (1 - beta2 ** t) ** 0.5
    denom = np.sqrt(v) / _c(bc2_sqrt, dt) + _c(eps, dt)
    p[...] = p + (_c(-step_size, dt) * m) / denom
    if not small:
        state["state1"], state["absmax1"] = quantize_blockwise(m, state["qmap1"])
        state["state2"], state["absmax2"] = quantize_blockwise(v, state["qmap2"])


# ---------------------------------------------------------------------------------------------
# float16 / bfloat16 parameters with float32 state (any optimizer of tests/reference.py)
# ---------------------------------------------------------------------------------------------
def round_to(x: np.ndarray, kind: str) -> np.ndarray:
    """float32 -> the uint16 bits of a "float16" or "bfloat16" parameter, nearest-even (NumPy's own float16 cast;
    bf16_bits_nearest)."""
    x = np.asarray(x, np.float32)
    if kind == "float16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).view(np.uint16)
    return bf16_bits_nearest(x)


def widen(bits: np.ndarray, kind: str) -> np.ndarray:
    """The uint16 bits of a float16 / bfloat16 parameter -> float32 (exact)."""
    bits = np.asarray(bits, np.uint16)
    return bits.view(np.float16).astype(np.float32) if kind == "float16" else bf16_to_f32(bits)


def ref_lowp_step(ref_fn, bits: np.ndarray, g: np.ndarray, state: dict, kind: str, master: bool = False,
                  **hyper) -> np.ndarray:
    """One step of the float32 reference ``ref_fn`` (tests/reference.py: ref_sgd, ref_rmsprop, ref_lion, ...) on a
    16-bit parameter: from ``state['master']`` when ``master`` (updated in place), else from the parameter widened
    exactly; the gradient widened likewise unless float32; ``state`` (float32) updated in place. Returns the new
    parameter bits, the float32 result rounded to nearest-even."""
    p = state["master"] if master else widen(bits, kind)
    g32 = np.asarray(g, np.float32) if np.asarray(g).dtype == np.float32 else widen(np.asarray(g).view(np.uint16), kind)
    inner = {k: v for k, v in state.items() if k != "master"}
    ref_fn(p, g32, inner, **hyper)
    state.update(inner)
    return round_to(p, kind)


# ---------------------------------------------------------------------------------------------
# Lion / SGD-momentum with compressed state (one moment: exp_avg / momentum_buffer)
# ---------------------------------------------------------------------------------------------
def decode_one(state: dict, key: str, code: np.ndarray) -> np.ndarray | None:
    """The float32 moment of a compressed one-moment state (None when it has none yet)."""
    if "state1" in state:
        return dequantize_blockwise(state["state1"], state["absmax1"], code)
    m = state.get(key)
    if m is None:
        return None
    return bf16_to_f32(m) if m.dtype == np.uint16 else m.astype(np.float32)


def ref_compressed_one_step(ref_fn, key: str, p: np.ndarray, g: np.ndarray, state: dict, mode: str,
                            **hyper) -> None:
    """One step of a one-moment optimizer with compressed state: decode the moment, the float32 reference step
    (``ref_fn``: ref_lion, ref_sgd), encode again ('bfloat16': nearest-even bits; 'int8': blockwise with the
    signed dynamic map; tensors under MIN_8BIT_SIZE keep float32). ``state`` is updated in place."""
    code = dynamic_map(True)
    m = decode_one(state, key, code)
    inner = {} if m is None else {key: m}
    ref_fn(p, g, inner, **hyper)
    new = inner[key].astype(np.float32)
    state.clear()
    if mode == "bfloat16":
        state[key] = bf16_bits_nearest(new)
    elif mode == "int8" and new.size >= MIN_8BIT_SIZE:
        state["state1"], state["absmax1"] = quantize_blockwise(new, code)
    else:
        state[key] = new
