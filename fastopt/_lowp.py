"""Compressed optimizer state for float32 parameters: ``state_dtype="bfloat16"`` and ``state_dtype="int8"``.

An optimizer built with a compressed ``state_dtype`` keeps its moments in fewer bytes and runs one fused C pass
per tensor (csrc/lowp.c): the moments are decoded, updated in float32 in torch's order (exactly the float32
kernel's arithmetic) and encoded again in registers; no float32 copy of the state is ever made.

- ``"bfloat16"``: ``exp_avg`` and ``exp_avg_sq`` hold bfloat16 bit patterns (``uint16`` arrays of the parameter's
  shape; ``arr.view(ml_dtypes.bfloat16)`` or ``fastopt.io.dequantize_state`` reads them), rounded to nearest-even.
- ``"int8"``: bitsandbytes' blockwise 8-bit scheme and state keys: ``state1``/``state2`` (``uint8`` codes of the
  parameter's shape), ``absmax1``/``absmax2`` (one float32 per block of 256 elements of the flattened tensor,
  recomputed from the updated moments every step) and ``qmap1``/``qmap2`` (the 256 sorted codes: bitsandbytes'
  signed dynamic map for the first moment, the unsigned one for the second). Each element takes the nearest
  code of ``moment / absmax`` (ties to the lower code). Tensors under 4096 elements keep float32 ``exp_avg`` and
  ``exp_avg_sq`` (bitsandbytes' ``min_8bit_size``). The nearest code is defined by an exact branchless binary
  search over the 255 thresholds between neighbouring codes (8 comparisons per element), never by scanning the
  codes; on AVX-512 with VBMI and on AVX2 it is computed arithmetically (class from the exponent, then the decade's linear
  grid; lanes near a boundary are redone by the search), giving the same codes.

NaN and Inf gradients propagate as in torch (the block's absmax becomes NaN, so its moments decode to NaN);
bitsandbytes instead zeroes that element's moments and skips its update.

The step validates every group, parameter, gradient and state array before anything is written (a rejected step
leaves every byte as it was), then creates missing state, advances step counts and runs the kernels.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _kernels as K
from . import _validate as V
from ._memory import copy_aligned, zeros_like_aligned
from ._plan import cacheable

__all__ = ["STATE_DTYPES", "BLOCK", "MIN_8BIT_SIZE", "dynamic_map", "code_levels", "check_state_dtype",
           "Compressed", "quantize", "dequantize"]

STATE_DTYPES = ("float32", "bfloat16", "int8")
BLOCK = int(K.Q8_BLOCK)          # elements per absmax block (bitsandbytes' blocksize since v0.44)
MIN_8BIT_SIZE = 4096             # smaller tensors keep float32 moments (bitsandbytes' min_8bit_size)


# ---------------------------------------------------------------------------------------------------------------
# The code maps and their nearest-code tables
# ---------------------------------------------------------------------------------------------------------------
def _torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace(start, end, steps) in float32 as torch's CPU kernel evaluates it (the map is built with it):
    step = (end - start) / (steps - 1) in float32; the lower half start + step * i, the upper half
    end - step * (steps - 1 - i), each rounded once (an fma: step * i is exact in double)."""
    f32, f64 = np.float32, np.float64
    step = (f32(end) - f32(start)) / f32(steps - 1)
    i = np.arange(steps, dtype=np.float64)
    lower = (f64(f32(start)) + f64(step) * i).astype(f32)
    upper = (f64(f32(end)) - f64(step) * (steps - 1 - i)).astype(f32)
    return np.where(np.arange(steps) < steps // 2, lower, upper)


def dynamic_map(signed: bool) -> np.ndarray:
    """bitsandbytes' ``create_dynamic_map(signed)`` (8 bits, 7 exponent bits): 256 sorted float32 codes. Decade
    d = 0..6 holds 10^(d-6) times the midpoints of linspace(0.1, 1, n + 1), n = 2^d (signed: and their negatives)
    or 2^(d+1) (unsigned); then 0 and 1."""
    codes: list[np.ndarray] = []
    for d in range(7):
        n = 2 ** d if signed else 2 ** (d + 1)
        edges = _torch_linspace_f32(0.1, 1.0, n + 1)
        mids = (edges[:-1] + edges[1:]) / np.float32(2)
        level = np.float32(10.0 ** (d - 6)) * mids
        codes.append(level)
        if signed:
            codes.append(-level)
    codes.append(np.array([0.0, 1.0], np.float32))
    out = np.sort(np.concatenate(codes).astype(np.float32))
    if out.size != 256:
        raise RuntimeError(f"dynamic map has {out.size} codes")
    return out


def _order_key(x: np.ndarray) -> np.ndarray:
    """float32 -> uint32 keys in the floats' order (negative floats reversed below the positive ones)."""
    u = np.asarray(x, np.float32).view(np.uint32)
    return np.where(u >> 31, ~u, u | np.uint32(0x80000000)).astype(np.uint32)


def _from_key(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, np.uint32)
    return np.where(k >> 31, k & np.uint32(0x7FFFFFFF), ~k).astype(np.uint32).view(np.float32)


def _thresholds(code: np.ndarray) -> np.ndarray:
    """For each code c < 255: the smallest float32 x that is nearer to code[c + 1] than to code[c] by the rounding
    rule (code[c + 1] - x < x - code[c] in float32, ties to the lower); NaN for the last code. The rule is
    monotone in x, so ``c + (x >= threshold[c])`` is the nearest of the two for every x."""
    lo, hi = code[:-1], code[1:]
    a, b = _order_key(lo), _order_key(hi)          # rule false at lo, true at hi
    with np.errstate(invalid="ignore", over="ignore"):
        for _ in range(33):
            mid = (a.astype(np.uint64) + (b.astype(np.uint64) - a.astype(np.uint64)) // 2).astype(np.uint32)
            x = _from_key(mid)
            up = (hi - x) < (x - lo)
            b = np.where(up, mid, b)
            a = np.where(up, a, mid)
    return np.append(_from_key(b), np.float32(np.nan)).astype(np.float32)


def code_levels(code: np.ndarray) -> np.ndarray:
    """The kernel's rounding table for the sorted map ``code`` (csrc/lowp.c ``fo_q8_nearest``): the 255 thresholds
    between neighbouring codes stored level by level for an 8-step binary search: level k (k = 0..7) holds, at
    offset 2^k - 1, the thresholds 2^(8-k) * i + 2^(7-k) - 1 for i < 2^k; 256 float32 in all (the last is padding)."""
    t = _thresholds(code)
    out = np.zeros(256, np.float32)
    for k in range(8):
        i = np.arange(2 ** k)
        out[2 ** k - 1 + i] = t[(i << (8 - k)) + (128 >> k) - 1]
    out[255] = np.nan
    return out


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


QMAP1 = _frozen(dynamic_map(True))
QMAP2 = _frozen(dynamic_map(False))
QLEV1 = _frozen(code_levels(QMAP1))
QLEV2 = _frozen(code_levels(QMAP2))
ZERO1 = int(np.searchsorted(QMAP1, 0.0))   # the signed map's code of 0


def quantize(x: np.ndarray, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """float32 array -> (uint8 codes of its shape, float32 absmax per block): the kernel's own quantizer."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    q = np.empty(x.shape, np.uint8)
    absmax = np.empty(-(-x.size // BLOCK), np.float32)
    K.q8_quantize(x, QLEV1 if signed else QLEV2, q, absmax)
    return q, absmax


def dequantize(q: np.ndarray, absmax: np.ndarray, code: np.ndarray) -> np.ndarray:
    """``code[q] * absmax[block]`` as float32, of ``q``'s shape."""
    out = np.empty(q.shape, np.float32)
    K.q8_dequantize(np.ascontiguousarray(q, np.uint8), np.ascontiguousarray(code, np.float32),
                    np.ascontiguousarray(absmax, np.float32), out)
    return out


def check_state_dtype(value: Any) -> str:
    if not isinstance(value, str) or value not in STATE_DTYPES:
        raise ValueError(f"Invalid state_dtype value: {value!r} (expected one of {', '.join(STATE_DTYPES)})")
    return value


# ---------------------------------------------------------------------------------------------------------------
# The step path of an optimizer with compressed state
# ---------------------------------------------------------------------------------------------------------------
_F32, _U8, _U16 = np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.uint16)
Q8_KEYS = ("state1", "state2", "absmax1", "absmax2", "qmap1", "qmap2")
_LOWP_NAMES = ("param", "grad", "state1", "state2", "absmax1", "absmax2", "qmap1", "qmap2", "qlev1", "qlev2")
_LOWP_READONLY = (False, True, False, False, False, False, True, True, True, True)
_LOWP_DTYPES = (None, None, _U8, _U8, _F32, _F32, _F32, _F32, _F32, _F32)
_LOWP_LENGTHS = (0, 0, 0, 0, -BLOCK, -BLOCK, 256, 256, 256, 256)
_BF16_DTYPES = (None, None, _U16, _U16)


class Compressed:
    """The compressed-state mode of one optimizer (Adam / AdamW): its state layout per parameter, the checks of
    live and loaded state, and the step (``FusedOptimizer.step`` hands over to ``step`` when the mode is set)."""

    def __init__(self, state_dtype: str) -> None:
        self.state_dtype = check_state_dtype(state_dtype)
        self.kind = int(K.LOWP_BF16 if state_dtype == "bfloat16" else K.LOWP_Q8)

    @property
    def kernel(self) -> K.Kernel:
        return K.KERNELS["adam_lowp"]

    def state_kind(self, st: Any) -> str | None:
        return state_kind(st)

    # -- layout --------------------------------------------------------------------------------------------------
    def layout(self, data: np.ndarray) -> str:
        """'f32' (float32 moments: int8 mode below MIN_8BIT_SIZE), 'bf16' or 'q8' for this parameter."""
        if self.kind == K.LOWP_BF16:
            return "bf16"
        return "q8" if data.size >= MIN_8BIT_SIZE else "f32"

    def expected(self, layout: str, data: np.ndarray) -> dict[str, tuple[np.dtype, tuple[int, ...], bool]]:
        """State key -> (dtype, shape, written) for a parameter of this layout."""
        if layout == "f32":
            return {"exp_avg": (_F32, data.shape, True), "exp_avg_sq": (_F32, data.shape, True)}
        if layout == "bf16":
            return {"exp_avg": (_U16, data.shape, True), "exp_avg_sq": (_U16, data.shape, True)}
        nb = (-(-data.size // BLOCK),)
        return {"state1": (_U8, data.shape, True), "state2": (_U8, data.shape, True),
                "absmax1": (_F32, nb, True), "absmax2": (_F32, nb, True),
                "qmap1": (_F32, (256,), False), "qmap2": (_F32, (256,), False)}

    def _describe(self, layout: str) -> str:
        if layout == "f32":
            return f"state_dtype={self.state_dtype!r} keeps float32 moments for tensors under {MIN_8BIT_SIZE} elements"
        return f"state_dtype={self.state_dtype!r}"

    def check_array(self, value: Any, key: str, want: tuple, gi: int, j: int, layout: str, live: bool) -> None:
        dtype, shape, written = want
        place = V.where(gi, j)
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{place}: state '{key}' must be a numpy.ndarray, got {type(value).__name__}")
        if value.dtype != dtype or value.shape != shape:
            raise ValueError(f"{place}: state '{key}' is {value.dtype}{list(value.shape)}, expected "
                             f"{dtype}{list(shape)} ({self._describe(layout)})")
        if live and written and not value.flags.writeable:
            raise ValueError(f"{place}: state '{key}' is read-only")
        if key in ("qmap1", "qmap2"):
            ref = QMAP1 if key == "qmap1" else QMAP2
            if not np.array_equal(value.view(np.uint32), ref.view(np.uint32)):
                raise ValueError(f"{place}: state '{key}' is not bitsandbytes' {'signed' if key == 'qmap1' else 'unsigned'}"
                                 " dynamic map (the only code map fastopt's 8-bit kernels use)")

    def check_state(self, st: dict, data: np.ndarray, gi: int, j: int, live: bool) -> str:
        layout = self.layout(data)
        want = self.expected(layout, data)
        kind = self.state_kind(st)
        fits = {"f32": "float32", "bf16": "bfloat16", "q8": "int8"}[layout]
        if kind is not None and kind != fits:
            raise ValueError(f"{V.where(gi, j)}: the state was made with state_dtype={kind!r}, this optimizer keeps "
                             f"{fits} moments for this parameter ({self._describe(layout)}): construct it with "
                             f"that state_dtype, or convert the state with fastopt.io.convert_state")
        keys = set(want) | {"step"}
        if set(st) != keys:
            raise ValueError(f"{V.where(gi, j)}: state has keys {sorted(st)}, expected {sorted(keys)} "
                             f"({self._describe(layout)})")
        for key, w in want.items():
            self.check_array(st[key], key, w, gi, j, layout, live)
        V.step_count(st["step"], gi, j)
        return layout

    def new_state(self, layout: str, data: np.ndarray) -> dict[str, np.ndarray]:
        if layout == "f32":
            return {"exp_avg": zeros_like_aligned(data), "exp_avg_sq": zeros_like_aligned(data)}
        if layout == "bf16":
            return {"exp_avg": np.zeros(data.shape, _U16), "exp_avg_sq": np.zeros(data.shape, _U16)}
        nb = -(-data.size // BLOCK)
        return {"state1": np.full(data.shape, ZERO1, np.uint8), "state2": np.zeros(data.shape, np.uint8),
                "absmax1": np.zeros(nb, np.float32), "absmax2": np.zeros(nb, np.float32),
                "qmap1": QMAP1, "qmap2": QMAP2}

    def load_param_state(self, pstate: Any, p: Any, gi: int, j: int) -> dict:
        """A saved per-parameter state for this mode, checked against the live parameter and copied (the codes,
        absmax and maps load bit for bit)."""
        if not isinstance(pstate, dict):
            raise TypeError(f"{V.where(gi, j)}: saved state must be a dict, got {type(pstate).__name__}")
        if not pstate:
            return {}
        data = p.data
        if not isinstance(data, np.ndarray) or data.dtype != _F32:
            raise TypeError(f"{V.where(gi, j)}: state_dtype={self.state_dtype!r} needs float32 parameters")
        layout = self.check_state(pstate, data, gi, j, live=False)
        out: dict[str, Any] = {"step": V.step_count(pstate["step"], gi, j)}
        for key in self.expected(layout, data):
            value = pstate[key]
            if key in ("qmap1", "qmap2"):
                out[key] = QMAP1 if key == "qmap1" else QMAP2
            elif layout == "f32":
                out[key] = copy_aligned(value, data)
            else:
                out[key] = np.array(value, order="C", copy=True)
        return out

    # -- the step --------------------------------------------------------------------------------------------------
    def hyper(self, group: dict[str, Any]) -> bytes:
        beta1, beta2 = group["betas"]
        return self.kernel.pack({"lr": group["lr"], "beta1": beta1, "beta2": beta2, "eps": group["eps"],
                                 "weight_decay": group["weight_decay"], "maximize": group["maximize"],
                                 "decoupled_weight_decay": group["decoupled_weight_decay"],
                                 "state_kind": self.kind})

    def row_buffers(self, layout: str, cur: dict) -> list:
        """A parameter's state buffers in its table's positions after param and grad."""
        if layout == "f32":
            return [cur["exp_avg"], cur["exp_avg_sq"], None]
        if layout == "bf16":
            return [cur["exp_avg"], cur["exp_avg_sq"]]
        return [cur["state1"], cur["state2"], cur["absmax1"], cur["absmax2"], QMAP1, QMAP2, QLEV1, QLEV2]

    def packed_table(self, rows: list) -> Any:
        """The compressed kernel's table over these rows."""
        if self.kind == K.LOWP_BF16:
            return K.TensorTable(rows, _LOWP_NAMES[:2] + ("exp_avg", "exp_avg_sq"), (False, True, False, False),
                                 self.kernel.n_scalars, _BF16_DTYPES, None)
        return K.TensorTable(rows, _LOWP_NAMES, _LOWP_READONLY, self.kernel.n_scalars, _LOWP_DTYPES, _LOWP_LENGTHS)

    def step(self, opt: Any, closure: Callable[[], Any] | None) -> Any:
        """The full step (validate, stage, commit, run), then the plans of the next, cached, step."""
        from ._fused import _Rows  # the driver's row builder (scratch copies of strided params)
        loss = closure() if closure is not None else None
        if cached_step(opt):
            return loss
        spec = opt._spec
        work = self._check_all(opt)
        launches = []
        for group, items in work:
            plain, packed = _Rows(), _Rows()
            commits_plain: list[tuple[Any, dict, int]] = []
            commits_packed: list[tuple[Any, dict, int]] = []
            for j, p, data, grad, st, layout in items:
                new = {} if st else self.new_state(layout, data)
                rows, commits = (plain, commits_plain) if layout == "f32" else (packed, commits_packed)
                rows.add(data, grad, self.row_buffers(layout, st if st else new))
                commits.append((p, new, j))
            t_plain = t_packed = None
            if plain.rows:  # int8 mode's small tensors: the float32 kernel
                t_plain = K.TensorTable(plain.rows, spec.buffer_names, (False, True) + (False,) * (len(
                    spec.buffer_names) - 2), spec.n_scalars)
            if packed.rows:
                t_packed = self.packed_table(packed.rows)
            launches.append((group, ((t_plain, plain, commits_plain, spec.table_kernel, spec.hyper(group)),
                                     (t_packed, packed, commits_packed, self.kernel, self.hyper(group)))))
        self._run(opt, launches)
        self._plan(opt, launches)
        return loss

    def check_group(self, gi: int, group: dict[str, Any]) -> None:
        """The options this mode refuses (Adam: amsgrad)."""
        if group["amsgrad"]:
            raise ValueError(f"param_groups[{gi}]: amsgrad is not supported with state_dtype={self.state_dtype!r}")

    def _check_all(self, opt: Any) -> list:
        """Every group, parameter, gradient and state array checked (nothing written): [(group, items)]."""
        work = []
        arrays: list = []
        for gi, group, checked in opt._checked_groups():
            self.check_group(gi, group)
            items = []
            for j, p, data, grad, st in checked:
                if data.dtype != _F32:
                    raise TypeError(f"{V.where(gi, j)}: state_dtype={self.state_dtype!r} needs float32 parameters, "
                                    f"got {data.dtype}")
                layout = self.check_state(st, data, gi, j, live=True) if st else self.layout(data)
                place = V.where(gi, j)
                arrays.append((data, True, place, "data"))
                arrays.append((grad, False, place, "grad"))
                if st:
                    for key, (_, _, written) in self.expected(layout, data).items():
                        arrays.append((st[key], written, place, f"state '{key}'"))
                items.append((j, p, data, grad, st, layout))
            work.append((group, items))
        V.no_overlap(arrays)
        return work

    def _run(self, opt: Any, launches: list) -> None:
        """Commit new state and step counts, then run the kernels (plain float32 tables, then packed ones)."""
        spec = opt._spec
        for group, runs in launches:
            for table, rows, commits, kernel, hyper in runs:
                if table is None:
                    continue
                steps = []
                for p, new, _ in commits:
                    live = opt.state[p]
                    live.update(new)
                    live["step"] = int(live.get("step", 0)) + 1
                    steps.append(live["step"])
                spec.fill(group, table.scalars, steps, [bool(new) for _, new, _ in commits])
                kernel(table, hyper)
                table.release(1)
                rows.finish()

    @staticmethod
    def _plan(opt: Any, launches: list) -> None:
        """The next step's plans (``FusedOptimizer._step_plan``, one per table: the float32 kernel's for int8 mode's
        small tensors, the compressed kernel's), when every group can have them; else none."""
        plans: list = []
        group_of: list[int] = []
        for gi, (group, runs) in enumerate(launches):
            tables = [r for r in runs if r[0] is not None]
            if (not plannable(opt, group, sum(len(r[2]) for r in tables))
                    or any(r[1].copy_back for r in tables)):
                opt._set_plans(None)
                return
            for table, _, commits, kernel, hyper in tables:
                plans.append(opt._step_plan(group, table, hyper, kernel=kernel, counts=True,
                                            index=tuple(j for _, _, j in commits)))
                group_of.append(gi)
        opt._set_plans(plans, tuple(group_of))


class CompressedOne(Compressed):
    """The compressed-state mode of a one-moment optimizer (Lion's ``exp_avg``, SGD's ``momentum_buffer``; csrc/
    lowp_state.c): ``"bfloat16"`` keeps the moment as bfloat16 bits (uint16) under its float32 name; ``"int8"``
    keeps ``state1``/``absmax1``/``qmap1`` (bitsandbytes' signed map), tensors under MIN_8BIT_SIZE elements a float32
    moment. Every parameter also keeps a ``step`` count. Each element's float32 arithmetic is the float32 kernel's
    on the decoded moment; then the moment is encoded again."""

    def __init__(self, state_dtype: str, algo: str) -> None:
        super().__init__(state_dtype)
        if algo not in ("lion", "sgd"):
            raise ValueError(f"no compressed-state kernel for {algo!r}")
        self.algo = algo
        self.key = "exp_avg" if algo == "lion" else "momentum_buffer"

    @property
    def kernel(self) -> K.Kernel:
        return K.KERNELS[f"{self.algo}_lowp"]

    def expected(self, layout: str, data: np.ndarray) -> dict[str, tuple[np.dtype, tuple[int, ...], bool]]:
        if layout == "f32":
            return {self.key: (_F32, data.shape, True)}
        if layout == "bf16":
            return {self.key: (_U16, data.shape, True)}
        return {"state1": (_U8, data.shape, True), "absmax1": (_F32, (-(-data.size // BLOCK),), True),
                "qmap1": (_F32, (256,), False)}

    def new_state(self, layout: str, data: np.ndarray) -> dict[str, np.ndarray]:
        if layout == "f32":
            return {self.key: zeros_like_aligned(data)}
        if layout == "bf16":
            return {self.key: np.zeros(data.shape, _U16)}
        return {"state1": np.full(data.shape, ZERO1, np.uint8), "absmax1": np.zeros(-(-data.size // BLOCK), _F32),
                "qmap1": QMAP1}

    def state_kind(self, st: Any) -> str | None:
        return state_kind(st, self.key)

    def check_group(self, gi: int, group: dict[str, Any]) -> None:
        if self.algo == "sgd" and group["momentum"] == 0:
            raise ValueError(f"param_groups[{gi}]: state_dtype={self.state_dtype!r} compresses the momentum "
                             "buffer and needs momentum > 0 (this group has momentum 0)")

    def hyper(self, group: dict[str, Any]) -> bytes:
        values = dict(group, state_kind=self.kind)
        if self.algo == "lion":
            values["beta1"], values["beta2"] = group["betas"]
        return self.kernel.pack({f: values[f] for f in self.kernel.fields})

    def row_buffers(self, layout: str, cur: dict) -> list:
        if layout in ("f32", "bf16"):
            return [cur[self.key]]
        return [cur["state1"], cur["absmax1"], QMAP1, QLEV1]

    def packed_table(self, rows: list) -> Any:
        if self.kind == K.LOWP_BF16:
            return K.TensorTable(rows, ("param", "grad", self.key), (False, True, False), self.kernel.n_scalars,
                                 (None, None, _U16), None)
        return K.TensorTable(rows, ("param", "grad", "state1", "absmax1", "qmap1", "qlev1"),
                             (False, True, False, False, True, True), self.kernel.n_scalars,
                             (None, None, _U8, _F32, _F32, _F32), (0, 0, 0, -BLOCK, 256, 256))


def set_state_dtype(opt: Any, state_dtype: Any, algo: str) -> None:
    """Lion / SGD: the optimizer-wide ``state_dtype`` (checked first); "float32" keeps the float32 kernel."""
    check_state_dtype(state_dtype)
    opt.state_dtype = state_dtype
    opt._lowp = None if state_dtype == "float32" else CompressedOne(state_dtype, algo)


def check_compressed_setup(opt: Any) -> None:
    """After the constructor: compressed state needs float32 parameters (not 16-bit ones) and, for SGD, momentum."""
    if opt.state_dtype == "float32":
        return
    if not isinstance(opt._lowp, CompressedOne):
        raise TypeError(f"state_dtype={opt.state_dtype!r} is for float32 parameters (float16/bfloat16 parameters "
                        "keep float32 state)")
    if opt._lowp.algo == "sgd":
        for gi, g in enumerate(opt.param_groups):
            if g["momentum"] == 0:
                raise ValueError(f"param_groups[{gi}]: state_dtype={opt.state_dtype!r} compresses the momentum "
                                 "buffer and needs momentum > 0 (SGD without momentum keeps no state)")


def load_state_check(opt: Any, pstate: Any, gi: int, j: int, key: str) -> None:
    """A float32-state optimizer refuses a compressed saved state with a clear error."""
    kind = state_kind(pstate, key)
    if kind in ("int8", "bfloat16"):
        raise ValueError(f"{V.where(gi, j)}: the saved state was made with state_dtype={kind!r}, this optimizer "
                         "keeps float32 state: construct it with that state_dtype, or convert the state with "
                         "fastopt.io.convert_state(state_dict, 'float32')")


def state_kind(st: Any, key: str = "exp_avg") -> str | None:
    """'int8', 'bfloat16' or 'float32' for one parameter's saved state whose first moment is ``key`` (Adam's and
    Lion's exp_avg, SGD's momentum_buffer; None if it is none of them)."""
    if not isinstance(st, dict):
        return None
    if "state1" in st:
        return "int8"
    m = st.get(key)
    if isinstance(m, np.ndarray):
        return "bfloat16" if m.dtype == _U16 else "float32"
    return None


def warn_lossy(what: str) -> None:
    warnings.warn(f"{what} is lossy: the moments are rounded to the compressed format", stacklevel=3)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint conversion (fastopt.io.convert_state)
# ---------------------------------------------------------------------------------------------------------------
def _decode(st: dict) -> tuple[np.ndarray, np.ndarray]:
    kind = state_kind(st)
    if kind == "int8":
        for key in Q8_KEYS:
            if not isinstance(st.get(key), np.ndarray):
                raise ValueError(f"8-bit state lacks the array '{key}'")
        m = dequantize(st["state1"], st["absmax1"], st["qmap1"])
        v = dequantize(st["state2"], st["absmax2"], st["qmap2"])
        return m, v
    m, v_any = st["exp_avg"], st.get("exp_avg_sq")
    if not isinstance(v_any, np.ndarray) or v_any.dtype != m.dtype or v_any.shape != m.shape:
        raise ValueError("state 'exp_avg_sq' must be an array of exp_avg's dtype and shape")
    v = v_any
    if kind == "bfloat16":
        return (np.asarray(m, np.uint16).astype(np.uint32) << 16).view(np.float32), \
               (np.asarray(v, np.uint16).astype(np.uint32) << 16).view(np.float32)
    return np.array(m, np.float32), np.array(v, np.float32)


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, nearest-even (NaN stays a quiet NaN), as the kernel stores them."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = ((u.astype(np.uint64) + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), ((u >> 16) | 0x0040).astype(np.uint16), rounded)


def _one_moment(st: dict, first: str) -> bool:
    """Whether ``st`` is a one-moment state (Lion's exp_avg, SGD's momentum_buffer; float32, bfloat16 or int8)."""
    if "state1" in st:
        return "state2" not in st
    return first in st and "exp_avg_sq" not in st


def _convert_one(st: dict, state_dtype: str, first: str) -> tuple[dict, bool]:
    """One parameter's Lion / SGD-momentum state (moment key ``first``) in another ``state_dtype``."""
    kind = state_kind(st, first)
    if kind == "int8":
        for key in ("state1", "absmax1", "qmap1"):
            if not isinstance(st.get(key), np.ndarray):
                raise ValueError(f"8-bit state lacks the array '{key}'")
        m = dequantize(st["state1"], st["absmax1"], st["qmap1"])
    elif kind == "bfloat16":
        m = (np.asarray(st[first], np.uint16).astype(np.uint32) << 16).view(np.float32)
    elif kind == "float32":
        m = np.array(st[first], np.float32)
    else:
        raise ValueError(f"state '{first}' must be a float32 or uint16 (bfloat16 bits) array")
    target = state_dtype
    if state_dtype == "int8" and m.size < MIN_8BIT_SIZE:
        target = "float32"
    # torch's float32 Lion / SGD keep no step count; fastopt's compressed mode keeps one (0 when there was none)
    out: dict[str, Any] = {} if state_dtype == "float32" else {"step": st.get("step", 0)}
    if target == "float32":
        out[first] = m
    elif target == "bfloat16":
        out[first] = _bf16_bits(m)
    else:
        out["state1"], out["absmax1"] = quantize(m, True)
        out["qmap1"] = QMAP1.copy()
    rank = {"float32": 0, "bfloat16": 1, "int8": 2}
    return out, rank[target] > rank[kind] or (rank[target] == 2 and rank[kind] == 1)


def convert_param_state(st: dict, state_dtype: str, first: str = "exp_avg") -> tuple[dict, bool]:
    """One parameter's Adam state (or a one-moment Lion / SGD state whose moment is ``first``) in another
    ``state_dtype``: (new dict, whether precision was lost)."""
    check_state_dtype(state_dtype)
    if isinstance(st, dict) and _one_moment(st, first):
        return _convert_one(st, state_dtype, first)
    kind = state_kind(st)
    if kind is None:
        if st:
            raise ValueError(f"state with keys {sorted(st)} is not Adam state (exp_avg/exp_avg_sq or state1/state2)")
        return {}, False
    m, v = _decode(st)
    out: dict[str, Any] = {"step": st["step"]} if "step" in st else {}
    target = state_dtype
    if state_dtype == "int8" and m.size < MIN_8BIT_SIZE:
        target = "float32"
    if target == "float32":
        out["exp_avg"], out["exp_avg_sq"] = m, v
    elif target == "bfloat16":
        out["exp_avg"], out["exp_avg_sq"] = _bf16_bits(m), _bf16_bits(v)
    else:
        out["state1"], out["absmax1"] = quantize(m, True)
        out["state2"], out["absmax2"] = quantize(v, False)
        out["qmap1"], out["qmap2"] = QMAP1.copy(), QMAP2.copy()
    rank = {"float32": 0, "bfloat16": 1, "int8": 2}
    return out, rank[target] > rank[kind] or (rank[target] == 2 and rank[kind] == 1)


# ---------------------------------------------------------------------------------------------------------------
# float16 / bfloat16 parameters with float32 state (csrc/lowp_params.c)
# ---------------------------------------------------------------------------------------------------------------
PARAM_DTYPES = ("float16", "bfloat16")   # by dtype name: ml_dtypes.bfloat16 is never imported
ROUNDINGS = ("nearest", "stochastic")
_LP_NAMES = ("exp_avg", "exp_avg_sq", "param", "grad", "master")


def is_lowp_param(data: Any) -> bool:
    """Whether ``data`` is a float16 or bfloat16 (``ml_dtypes.bfloat16``, by name) ndarray."""
    return isinstance(data, np.ndarray) and data.dtype.name in PARAM_DTYPES and data.dtype.itemsize == 2


def set_param_mode(opt: Any, master_weights: Any, rounding: Any, seed: Any) -> None:
    """Check the low-precision-parameter options and, when the optimizer's parameters are float16/bfloat16, hand
    its steps to :class:`LowParams`. Called at the end of the constructors of Adam, AdamW, SGD, RMSprop and Lion (the
    parameters are known there); the optimizer's spec name picks the algorithm (``LP_ALGOS``)."""
    if not isinstance(master_weights, (bool, np.bool_)):
        raise TypeError(f"master_weights must be a bool, got {type(master_weights).__name__}")
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        raise ValueError(f"Invalid rounding value: {rounding!r} (expected one of {', '.join(ROUNDINGS)})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2 ** 31:
        raise ValueError(f"Invalid seed value: {seed!r} (expected an int in [0, 2**31))")
    opt.master_weights, opt.rounding, opt.seed = bool(master_weights), rounding, int(seed)
    params = [(gi, j, p.data) for gi, g in enumerate(opt.param_groups) for j, p in enumerate(g["params"])]
    low = [x for x in params if is_lowp_param(x[2])]
    if not low:
        if master_weights or rounding != "nearest":
            what = "master_weights=True" if master_weights else f"rounding={rounding!r}"
            raise ValueError(f"{what} is for float16 or bfloat16 parameters; these are "
                             f"{sorted({str(x[2].dtype) for x in params})} (float32 parameters are their own master)")
        return
    for gi, j, data in params:
        if not is_lowp_param(data):
            raise TypeError(f"{V.where(gi, j)}: dtype {data.dtype}: an optimizer over float16/bfloat16 parameters "
                            "takes only float16/bfloat16 parameters (give the others their own optimizer)")
    state_dtype = getattr(opt, "state_dtype", "float32")
    if state_dtype != "float32":
        raise ValueError(f"state_dtype={state_dtype!r} is for float32 parameters; float16/bfloat16 parameters "
                         "keep float32 state (state_dtype='float32')")
    if rounding == "stochastic":
        for gi, j, data in low:
            if data.dtype.name != "bfloat16":
                raise ValueError(f"{V.where(gi, j)}: rounding='stochastic' is for bfloat16 parameters, got "
                                 f"{data.dtype} (float16 rounds to nearest-even)")
        if master_weights:
            raise ValueError("rounding='stochastic' is for bfloat16 parameters without master weights "
                             "(with master_weights=True the float32 master carries the precision)")
    opt._lowp = LowParams(opt.master_weights, rounding == "stochastic", opt.seed, LP_ALGOS[opt._spec.kernel.name])


class LpAlgo:
    """How one optimizer family runs on 16-bit parameters: its kernel (csrc/lowp_params.c), the kernel's buffer
    names by position, where the parameter, gradient and master go, the state keys a group's options keep (with
    their positions) and the float32 kernel's per-tensor scalars."""

    def __init__(self, kernel: str, names: tuple[str, ...], param: int, grad: int, master: int,
                 state: Callable[[dict[str, Any]], tuple[tuple[str, int], ...]],
                 scalars: Callable[[Any, dict[str, Any]], Callable[[int, bool], tuple]],
                 unsupported: tuple[str, ...] = ()) -> None:
        self.kernel_name, self.names, self.param, self.grad, self.master = kernel, names, param, grad, master
        self.state, self.scalars, self.unsupported = state, scalars, unsupported

    @property
    def kernel(self) -> K.Kernel:
        return K.KERNELS[self.kernel_name]


def _adam_scalars(opt: Any, group: dict[str, Any]) -> Callable[[int, bool], tuple]:
    at = opt._spec.at_step(group)
    return lambda t, fresh: at(t)


LP_ALGOS = {
    "adam": LpAlgo("adam_lp", _LP_NAMES, 2, 3, 4, lambda g: (("exp_avg", 0), ("exp_avg_sq", 1)), _adam_scalars,
                   unsupported=("amsgrad",)),
    "sgd": LpAlgo("sgd_lp", ("param", "grad", "momentum_buffer", "master"), 0, 1, 3,
                  lambda g: (("momentum_buffer", 2),) if g["momentum"] != 0 else (),
                  lambda opt, g: lambda t, fresh: (1.0 if fresh else 0.0,)),  # a new buffer starts at the gradient
    "rmsprop": LpAlgo("rmsprop_lp", ("param", "grad", "square_avg", "grad_avg", "momentum_buffer", "master"), 0, 1, 5,
                      lambda g: ((("square_avg", 2),) + ((("grad_avg", 3),) if g["centered"] else ())
                                 + ((("momentum_buffer", 4),) if g["momentum"] > 0 else ())),
                      lambda opt, g: lambda t, fresh: ()),
    "lion": LpAlgo("lion_lp", ("param", "grad", "exp_avg", "master"), 0, 1, 3, lambda g: (("exp_avg", 2),),
                   lambda opt, g: lambda t, fresh: ()),
}


class _Staged(NamedTuple):
    """One parameter of a 16-bit step, staged before anything is written: its kernel row, the parameter, its new
    state (empty when it had state), its tensor index (stochastic rounding's hash), its data, the contiguous
    array the kernel updates (data itself, or a copy written back after the kernel), its index in the group and
    its gradient's dtype."""
    row: list
    param: Any
    new: dict
    tensor: int
    data: np.ndarray
    target: np.ndarray
    j: int
    grad_dtype: np.dtype


class LowParams:
    """The float16/bfloat16-parameter mode of one optimizer (Adam / AdamW, SGD, RMSprop, Lion): float32 state per
    parameter (the float32 optimizer's buffers for the group's options, ``step``, and ``master`` with master
    weights), the checks of live and loaded state, and the step (one kernel call per group and format)."""

    def __init__(self, master: bool, stochastic: bool, seed: int, algo: LpAlgo | None = None) -> None:
        self.master, self.stochastic, self.seed = master, stochastic, seed
        self.algo = LP_ALGOS["adam"] if algo is None else algo

    @property
    def kernel(self) -> K.Kernel:
        return self.algo.kernel

    @property
    def n32(self) -> int:
        """The float32 kernel's per-tensor scalars: this kernel's, less the step count and the tensor index."""
        return self.kernel.n_scalars - 2

    def keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The float32 arrays a parameter of this group keeps (besides ``step``)."""
        return tuple(k for k, _ in self.algo.state(group)) + (("master",) if self.master else ())

    def _mode(self) -> str:
        return "master_weights=True" if self.master else "master_weights=False"

    def check_param(self, p: Any, gi: int, j: int) -> np.ndarray:
        data = p.data
        if not is_lowp_param(data):
            raise TypeError(f"{V.where(gi, j)}: dtype {getattr(data, 'dtype', type(data).__name__)}: this optimizer "
                            "was built for float16/bfloat16 parameters")
        if self.stochastic and data.dtype.name != "bfloat16":
            raise TypeError(f"{V.where(gi, j)}: rounding='stochastic' needs bfloat16 parameters, got {data.dtype}")
        if not data.flags.writeable:
            raise ValueError(f"{V.where(gi, j)}: data is read-only; fastopt updates parameters in place")
        return data

    @staticmethod
    def check_grad(g: Any, data: np.ndarray, gi: int, j: int) -> np.ndarray:
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{V.where(gi, j)}: grad must be a numpy.ndarray or None, got {type(g).__name__}")
        if g.dtype != data.dtype and g.dtype != _F32:
            raise TypeError(f"{V.where(gi, j)}: grad is {g.dtype}, param is {data.dtype}; the gradient of a "
                            f"{data.dtype} parameter must be {data.dtype} or float32")
        if g.shape != data.shape:
            raise ValueError(f"{V.where(gi, j)}: grad has shape {g.shape}, param has shape {data.shape}")
        if g.size and np.may_share_memory(g, data) and np.shares_memory(g, data):
            raise ValueError(f"{V.where(gi, j)}: grad shares memory with the parameter's data; pass a separate array")
        return g

    def check_state(self, st: Any, data: np.ndarray, gi: int, j: int, live: bool, group: dict[str, Any]) -> None:
        place = V.where(gi, j)
        if not isinstance(st, dict):
            raise TypeError(f"{place}: saved state must be a dict, got {type(st).__name__}")
        arrays = self.keys(group)
        keys = set(arrays) | {"step"}
        if set(st) != keys:
            raise ValueError(f"{place}: state has keys {sorted(st)}, expected {sorted(keys)} ({data.dtype} "
                             f"parameters with {self._mode()} and this group's options keep float32 "
                             f"{', '.join(arrays) or 'no arrays'} and a step count)")
        for key in arrays:
            value = st[key]
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{place}: state '{key}' must be a numpy.ndarray, got {type(value).__name__}")
            if value.dtype != _F32 or value.shape != data.shape:
                raise ValueError(f"{place}: state '{key}' is {value.dtype}{list(value.shape)}, expected "
                                 f"float32{list(data.shape)} (the state of {data.dtype} parameters is float32)")
            if live and not (value.flags.writeable and value.flags.c_contiguous and value.flags.aligned):
                raise ValueError(f"{place}: state '{key}' must be a writeable, C-contiguous, aligned array")
        V.step_count(st["step"], gi, j)

    def new_state(self, data: np.ndarray, group: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {k: np.zeros(data.shape, _F32) for k, _ in self.algo.state(group)}
        if self.master:
            out["master"] = np.ascontiguousarray(data.astype(_F32))
        return out

    def load_param_state(self, pstate: Any, p: Any, gi: int, j: int, group: dict[str, Any] | None = None) -> dict:
        if not isinstance(pstate, dict):
            raise TypeError(f"{V.where(gi, j)}: saved state must be a dict, got {type(pstate).__name__}")
        if not pstate:
            return {}
        group = group if group is not None else {}  # Adam's keys do not depend on the group's options
        data = self.check_param(p, gi, j)
        self.check_state(pstate, data, gi, j, False, group)
        out: dict[str, Any] = {"step": V.step_count(pstate["step"], gi, j)}
        for key in self.keys(group):
            out[key] = np.array(pstate[key], dtype=_F32, order="C", copy=True)
        return out

    def hyper(self, group: dict[str, Any], f16: bool, grad_f32: bool) -> bytes:
        kernel = self.kernel
        beta1, beta2 = group.get("betas", (None, None))
        values = {"beta1": beta1, "beta2": beta2, **group, "param_kind": int(K.LP_F16 if f16 else K.LP_BF16),
                  "grad_f32": int(grad_f32), "stochastic": int(self.stochastic), "seed": self.seed}
        return kernel.pack({f: values[f] for f in kernel.fields})

    def step(self, opt: Any, closure: Callable[[], Any] | None) -> Any:
        """The full step (validate, stage, commit, run: one kernel call per group and format), then the plans of
        the next, cached, step."""
        loss = closure() if closure is not None else None
        if cached_step(opt):
            return loss
        algo = self.algo
        work = []
        arrays: list = []
        first = 0  # the tensor index of each group's first parameter (stochastic rounding's hash)
        for gi, group, with_grads in opt._groups_with_grads():
            for name in algo.unsupported:
                if group[name]:
                    raise ValueError(f"param_groups[{gi}]: {name} is not supported with float16/bfloat16 parameters")
            keys = self.keys(group)
            items = []
            for j, p, g in with_grads:
                data = self.check_param(p, gi, j)
                grad = self.check_grad(g, data, gi, j)
                st = opt.state.get(p)
                if st:
                    self.check_state(st, data, gi, j, True, group)
                place = V.where(gi, j)
                arrays.append((data, True, place, "data"))
                arrays.append((grad, False, place, "grad"))
                if st:
                    arrays.extend((st[k], True, place, f"state '{k}'") for k in keys)
                items.append((p, data, grad, st, j, first + j))
            work.append((group, items))
            first += len(group["params"])
        V.no_overlap(arrays)
        launches = []
        nb = len(algo.names)
        readonly = tuple(k == algo.grad for k in range(nb))
        for gi, (group, items) in enumerate(work):
            positions = algo.state(group)
            tables: dict[tuple[bool, bool], list] = {}
            for p, data, grad, st, j, index in items:
                new = {} if st else self.new_state(data, group)
                cur = st if st else new
                target = data if data.flags.c_contiguous and data.flags.aligned else np.array(data, order="C")
                g = grad if grad.flags.c_contiguous and grad.flags.aligned else np.array(grad, order="C")
                row: list = [None] * nb
                for name, k in positions:
                    row[k] = cur[name]
                row[algo.param] = target.view(_U16)
                row[algo.grad] = g if g.dtype == _F32 else g.view(_U16)
                row[algo.master] = cur.get("master")
                key = (data.dtype.name == "float16", g.dtype == _F32)
                tables.setdefault(key, []).append(_Staged(row, p, new, index, data, target, j, g.dtype))
            for (f16, gf32), entries in tables.items():
                dtypes: list = [None] * nb
                dtypes[algo.param] = _U16
                dtypes[algo.grad] = None if gf32 else _U16  # None: the table's dtype, float32
                table = K.TensorTable([e.row for e in entries], algo.names, readonly, self.kernel.n_scalars,
                                      tuple(dtypes), None)
                launches.append((gi, group, table, self.hyper(group, f16, gf32), entries))
        # everything checked and staged: commit state and step counts, then run the kernels
        n32 = self.n32
        for _, group, table, hyper, entries in launches:
            at = algo.scalars(opt, group)
            for i, e in enumerate(entries):
                live = opt.state[e.param]
                live.update(e.new)
                live["step"] = int(live.get("step", 0)) + 1
                if n32:
                    table.scalars[i, :n32] = at(live["step"], bool(e.new))
                table.scalars[i, n32] = live["step"]
                table.scalars[i, n32 + 1] = e.tensor
            self.kernel(table, hyper)
            table.release(algo.grad)
            for e in entries:
                if e.target is not e.data:
                    np.copyto(e.data, e.target)
        self._plan(opt, work, launches)
        return loss

    def _plan(self, opt: Any, work: list, launches: list) -> None:
        """The next step's plans (``FusedOptimizer._step_plan``, one per table), when every group can have them (its
        parameters updated in place, their dtypes one per table) and this kernel's scalars begin with the float32
        spec's (those the plan fills as the float32 step would); else none."""
        n32 = self.n32
        if n32 != opt._spec.n_scalars or not all(plannable(opt, group, len(items)) for group, items in work):
            opt._set_plans(None)
            return
        plans = []
        for gi, group, table, hyper, entries in launches:
            if (any(e.target is not e.data for e in entries) or len({e.data.dtype.num for e in entries}) != 1
                    or len({e.grad_dtype.num for e in entries}) != 1):
                opt._set_plans(None)
                return
            plans.append(opt._step_plan(group, table, hyper, kernel=self.kernel, counts=True,
                                        index=tuple(e.j for e in entries), param_pos=self.algo.param,
                                        grad_pos=self.algo.grad, grad_dtype=entries[0].grad_dtype, count_col=n32))
        opt._set_plans(plans, tuple(launch[0] for launch in launches))


def plannable(opt: Any, group: dict[str, Any], n: int) -> bool:
    """Whether a group whose full step updated ``n`` tensors can have a cached repeated step: every parameter had a
    gradient, its options compare by value (``_plan.cacheable``) and the optimizer has no scalar state."""
    return n == len(group["params"]) and n > 0 and cacheable(group) and opt._fast_path_ok()


def cached_step(opt: Any) -> bool:
    """The cached repeated step of a low-precision mode from inside its full step (after the closure, or with step
    hooks, when ``fastopt._kernels.fused_step`` did not try it): True if it ran."""
    plans = opt._plans
    return plans is not None and plans.step(opt.param_groups, opt.state)
