"""The 8-bit state's codes on every ISA variant (issue 14): the AVX-512 + VBMI and the AVX2 variants quantize with
the arithmetic encoder (csrc/fo_q8.h: fo_q8_encode_x, fo_q8_encode_avx2), the baseline with the exact threshold
search; all three must give the same codes, absmax and parameters bit for bit. Each variant runs in a child process
with FASTOPT_ISA set (a variant the machine lacks falls back to a lower one and is not compared)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import runs_on_each_isa

_SCRIPT = r"""
import hashlib, sys, numpy as np, fastopt as fo
from fastopt import _lowp
F32 = np.float32
what = sys.argv[1]
h = hashlib.sha256()
if what == "quantize":
    rng = np.random.default_rng(3)
    for signed in (True, False):
        code = _lowp.QMAP1 if signed else _lowp.QMAP2
        thr = np.sort(_lowp.code_levels(code)[:255])
        mids = ((code[1:].astype(np.float64) + code[:-1]) / 2).astype(F32)
        pts = np.concatenate([code, mids, thr])
        pts = np.concatenate([pts, np.nextafter(pts, F32(np.inf)), np.nextafter(pts, F32(-np.inf))])
        pts = pts[np.abs(pts) <= 1]
        # the boundary points under absmax scales that are not powers of two (y = x * (1 / scale) differs from
        # x / scale there), then magnitudes over many decades with exact zeros, signs mixed
        for scale in (1.0, 3.0, 0.7071, 1e-3 / 3, 123.456, 2.0 ** -100 * 5):
            x = np.concatenate([pts, -pts]).astype(F32) * F32(scale)
            x = np.concatenate([x, np.full(256 - x.size % 256, F32(scale))])   # every block's absmax is scale
            q, absmax = _lowp.quantize(x, signed)
            h.update(q.tobytes() + absmax.tobytes())
        x = rng.standard_normal(256 * 300 + 77).astype(F32) * (F32(10.0) ** rng.integers(-12, 4, 256 * 300 + 77))
        x[rng.random(x.size) < 0.02] = 0
        x[::257] *= F32(-1)
        for v in (x, np.abs(x), x[5:]):
            q, absmax = _lowp.quantize(np.ascontiguousarray(v), signed)
            h.update(q.tobytes() + absmax.tobytes())
else:
    for cls, kw in ((fo.Adam, dict(lr=1e-3)), (fo.AdamW, dict(lr=1e-2, weight_decay=0.1, maximize=True)),
                    (fo.Adam, dict(lr=1e-3, betas=(0.3, 0.5), weight_decay=0.01))):
        rng = np.random.default_rng(4)
        ps = [fo.Parameter(rng.standard_normal(n).astype(F32)) for n in (70000, 4096, 5000 + 17)]
        opt = cls(ps, state_dtype="int8", **kw)
        for _ in range(4):
            for p in ps:
                p.grad = (rng.standard_normal(p.data.shape) * 10.0 ** rng.integers(-7, 2, p.data.shape)).astype(F32)
            opt.step()
        sd = opt.state_dict()["state"]
        h.update(b"".join(p.data.tobytes() for p in ps))
        h.update(repr([(i, k, np.asarray(v).tobytes()) for i in sorted(sd) for k, v in sorted(sd[i].items())]).encode())
print(h.hexdigest())
"""


@pytest.mark.parametrize("what", ["quantize", "adam"])
def test_int8_codes_equal_on_every_isa_variant(tmp_path, what):
    runs = runs_on_each_isa(_SCRIPT, tmp_path, lambda isa: [what])  # the search and at least one arithmetic encoder
    digests = {isa: out[0] for isa, out in runs.items()}
    assert len(set(digests.values())) == 1, digests


def test_quantize_equals_the_search_on_this_isa():
    """In process (the fastest ISA the machine has): codes of values under a scale that is not a power of two, where
    y = x * (1 / scale) is not x / scale, against the NumPy reference of the same rounding."""
    import reference_lowp as L
    from fastopt import _lowp
    rng = np.random.default_rng(5)
    for signed in (True, False):
        code = L.dynamic_map(signed)
        x = rng.uniform(-1, 1, 256 * 200).astype(np.float32) * np.float32(3.7)
        if not signed:
            x = np.abs(x)
        x[::256] = np.float32(3.7)
        q, absmax = _lowp.quantize(x, signed)
        rq, rabs = L.quantize_blockwise(x, code)
        assert np.array_equal(absmax, rabs)
        assert np.array_equal(q, rq), int(np.sum(q != rq))
