"""fastopt.io: exact round trips, refusals, and clear errors for foreign/truncated/corrupted files."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from fastopt.io import CheckpointError, load, save


def assert_identical(a, b, path="obj"):
    """Same types all the way down, arrays with the same dtype/shape/order and bytes, floats bit-equal."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), path
        for (ka, va), kb in zip(a.items(), b.keys()):
            assert type(ka) is type(kb), f"{path}: key {ka!r}"
            assert_identical(va, b[kb], f"{path}[{ka!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.dtype.str == b.dtype.str and a.shape == b.shape, path
        assert a.flags.f_contiguous == b.flags.f_contiguous or a.ndim < 2 or not a.flags.f_contiguous
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), path
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), path
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, complex):
        assert_identical(a.real, b.real, path)
        assert_identical(a.imag, b.imag, path)
    else:
        assert a == b, path


def sample():
    rng = np.random.default_rng(1)
    weird_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF800000000BEEF))[0]
    return {
        "state": {
            0: {"step": np.float32(12.0), "exp_avg": rng.standard_normal((3, 4)).astype(np.float32),
                "exp_avg_sq": rng.random(7)},
            3: {"step": 5, "momentum_buffer": None},
        },
        "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                          "amsgrad": False, "foreach": None, "params": [0, 3], "name": "w"}],
        "0": "a str key that looks like an int key",
        0: "an int key",
        "floats": [float("inf"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308, weird_nan, 0.1],
        "ints": [0, -1, 2 ** 70, -(2 ** 63)],
        "complex": (1 + 2j, complex(float("nan"), -0.0)),
        "nested": [[], (), {}, [()], ({},)],
        "scalars": [np.int8(-3), np.uint64(2 ** 64 - 1), np.float16(0.5), np.complex64(1 - 1j),
                    np.bool_(True), np.float64(0.25), np.longdouble(1) / 3],
        "arrays": [np.zeros((0, 3), np.float64), np.array(2.5), np.arange(6, dtype=">i4").reshape(2, 3),
                   np.asfortranarray(rng.random((3, 2))), rng.random(10)[::3], np.array([True, False]),
                   np.array(["ab", "cde"]), np.array([b"x", b"yz"]), np.arange(4, dtype=np.uint16),
                   (rng.random(3) + 1j).astype(np.complex128), np.array([np.nan, -np.inf], np.float32)],
        "text": "ünïcødé ✓",
        "flags": [True, False, None],
    }


def test_round_trip_is_exact(tmp_path):
    obj = sample()
    path = tmp_path / "ckpt.npz"
    save(obj, path)
    back = load(path)
    assert_identical(obj, back)
    assert back["arrays"][3].flags.f_contiguous
    assert all(a.flags.writeable for a in back["arrays"])
    assert os.listdir(tmp_path) == ["ckpt.npz"]          # no temporary left behind


def test_name_used_as_given_and_file_objects(tmp_path):
    path = tmp_path / "checkpoint.bin"
    save({"x": 1}, str(path))
    assert path.exists() and not (tmp_path / "checkpoint.bin.npz").exists()
    buf = io.BytesIO()
    save(sample(), buf)
    buf.seek(0)
    assert_identical(sample(), load(buf))


def test_file_is_a_plain_npz_without_pickle(tmp_path):
    path = tmp_path / "c.npz"
    save(sample(), path)
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(z["structure"].tobytes())
        assert header["format"] == "fastopt-checkpoint" and header["version"] == 1
        assert all(z[k].dtype != object for k in z.files)


@pytest.mark.parametrize("bad,where", [
    ({"a": {1, 2}}, r"obj\['a'\]"),
    ({"a": [1, object()]}, r"obj\['a'\]\[1\]"),
    ({1.5: 2}, "dict keys must be int or str"),
    ({True: 2}, "dict keys must be int or str"),
    ({"arr": np.array([1, "x"], dtype=object)}, "dtype object"),
    ({"f": lambda: 0}, "function"),
    ({"r": np.zeros(2, dtype=[("a", "f4")])}, "cannot be saved"),
])
def test_unsupported_objects_are_refused_and_nothing_is_written(tmp_path, bad, where):
    path = tmp_path / "c.npz"
    save({"old": 1}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=where):
        save(bad, path)
    assert path.read_bytes() == before                    # the previous checkpoint survives
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _structure(header):
    return _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))


GOOD = {"format": "fastopt-checkpoint", "version": 1, "n_arrays": 1, "root": {"$array": 0}}


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_bytes(pickle.dumps({"a": 1})), "not a zip"),
    (lambda p: p.write_text("hello"), "not a zip"),
    (lambda p: p.write_bytes(b""), "not a zip"),
    (lambda p: p.write_bytes(_npy(np.arange(3))), "not a zip"),
    (lambda p: np.savez(open(p, "wb"), x=np.arange(3)), "no 'structure' entry"),
    (lambda p: _zip(p, {"readme.txt": b"hi"}), "no 'structure' entry"),
    (lambda p: _zip(p, {"structure.npy": _npy(np.arange(3.0))}), "bad 'structure' entry"),
    (lambda p: _zip(p, {"structure.npy": _npy(np.frombuffer(b"{not json", np.uint8))}), "corrupted structure"),
    (lambda p: _zip(p, {"structure.npy": _structure({"format": "other"})}), "unknown format"),
    (lambda p: _zip(p, {"structure.npy": _structure({**GOOD, "version": 99})}), "version 99"),
    (lambda p: _zip(p, {"structure.npy": _structure(GOOD)}), "missing arrays"),
    (lambda p: _zip(p, {"structure.npy": _structure(GOOD), "a0.npy": _npy(np.arange(2)),
                        "a1.npy": _npy(np.arange(2))}), "unexpected members"),
    (lambda p: _zip(p, {"structure.npy": _structure(GOOD),
                        "a0.npy": _npy(np.array([{"x": 1}], dtype=object), allow_pickle=True)}),
     "not a plain array"),
    (lambda p: _zip(p, {"structure.npy": _structure({**GOOD, "root": {"$array": 5}}),
                        "a0.npy": _npy(np.arange(2))}), "does not exist"),
    (lambda p: _zip(p, {"structure.npy": _structure({**GOOD, "root": [{"$array": 0}, {"$array": 0}]}),
                        "a0.npy": _npy(np.arange(2))}), "referenced twice"),
    (lambda p: _zip(p, {"structure.npy": _structure({**GOOD, "root": {"$eval": "1"}}),
                        "a0.npy": _npy(np.arange(2))}), "unknown entry"),
    (lambda p: _zip(p, {"structure.npy": _structure({**GOOD, "n_arrays": 0, "root": {"$dict": [[1.5, 1]]}})}),
     "bad dict key"),
])
def test_foreign_files_give_clear_errors(tmp_path, make, match):
    path = tmp_path / "foreign.npz"
    make(path)
    with pytest.raises(CheckpointError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_files(tmp_path):
    path = tmp_path / "c.npz"
    save(sample(), path)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    for n in sorted({1, 2, 10, 100, len(data) // 3, len(data) // 2, len(data) - 22, len(data) - 1}):
        cut.write_bytes(data[:n])
        with pytest.raises(CheckpointError) as info:
            load(cut)
        assert str(cut) in str(info.value)


def test_corrupted_bytes_never_pass_silently_or_crash(tmp_path):
    """Flip single bytes all over the file: load either raises CheckpointError or (for bytes zip
    does not check, such as timestamps) returns exactly the saved object."""
    obj = sample()
    path = tmp_path / "c.npz"
    save(obj, path)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.npz"
    errors = 0
    for pos in rng.choice(len(data), size=400, replace=False):
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            back = load(bad)
        except CheckpointError as e:
            assert str(bad) in str(e)
            errors += 1
        else:
            assert_identical(obj, back)
    assert errors > 300


def test_crc_detects_a_flipped_bit_in_array_data(tmp_path):
    arr = np.arange(1000, dtype=np.float64)
    path = tmp_path / "c.npz"
    save({"a": arr}, path)
    data = bytearray(path.read_bytes())
    pos = data.find(arr[500:501].tobytes())
    data[pos] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load(path)


def _real_optimizers():
    fo = pytest.importorskip("fastopt")
    if not hasattr(fo, "Adam"):
        pytest.skip("fastopt's optimizers are not built in this tree")
    return fo


@pytest.mark.parametrize("name,kwargs", [("Adam", {"lr": 1e-2, "amsgrad": True}),
                                         ("SGD", {"lr": 1e-2, "momentum": 0.9, "nesterov": True})])
def test_optimizer_state_round_trip_continues_bit_identically(tmp_path, name, kwargs):
    fo = _real_optimizers()
    from fastopt import lr_scheduler

    rng = np.random.default_rng(3)
    init = [rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal(7)]
    grads = [[rng.standard_normal(a.shape).astype(a.dtype) for a in init] for _ in range(12)]

    def run(params, opt, steps):
        for g in steps:
            for p, gi in zip(params, g):
                p.grad = gi.copy()
            opt.step()

    def build():
        params = [fo.Parameter(a.copy()) for a in init]
        opt = getattr(fo, name)([{"params": [params[0]]}, {"params": [params[1]], "lr": 3e-3}], **kwargs)
        sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        return params, opt, sched

    ref_params, ref_opt, ref_sched = build()
    for i in range(12):
        run(ref_params, ref_opt, grads[i:i + 1])
        ref_sched.step()

    params, opt, sched = build()
    for i in range(6):
        run(params, opt, grads[i:i + 1])
        sched.step()
    path = tmp_path / "mid.npz"
    save({"params": [p.data for p in params], "optimizer": opt.state_dict(),
          "scheduler": sched.state_dict() }, path)

    ckpt = load(path)
    params2, opt2, sched2 = build()
    for p, a in zip(params2, ckpt["params"]):
        p.data[...] = a
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    assert_identical(opt.state_dict()["param_groups"], opt2.state_dict()["param_groups"])
    for i in range(6, 12):
        run(params2, opt2, grads[i:i + 1])
        sched2.step()
    for p, q in zip(ref_params, params2):
        assert p.data.tobytes() == q.data.tobytes()
