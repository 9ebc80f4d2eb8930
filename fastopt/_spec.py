"""An algorithm declared once: its options, state buffers and per-tensor scalars (``Spec``).

Everything the rest of the library needs about an algorithm is derived from its spec:

- the defaults (``Spec.defaults``) and the constructor's options (``Spec.options``),
- one group check (``Spec.check``), used by the constructor, ``add_param_group``, ``step`` (when a group changed),
  ``load_state_dict`` and the functional form,
- the kernel's hyper-parameter block, packed **by field name** in the C struct's order (``Spec.hyper``); which C
  field each option feeds is declared here, and the set of fields is checked against the C kernel table when the
  module is imported, so a misspelt, missing or extra field fails at import instead of passing silently,
- the state buffers present under a group's options (``Spec.active``), checked against the kernel's buffer count,
- the per-tensor scalars (``Spec.fill``), whose count comes from the C table.

A class keeps torch's explicit ``__init__`` signature and docstring; its signature's defaults are checked against
the spec's when the class is defined (``FusedOptimizer.__init_subclass__``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _kernels as K
from . import _validate as V

__all__ = ["Option", "Buffer", "Spec", "flag"]


class Option:
    """One option: ``name``, ``default``, ``check(value)`` (raises ValueError/TypeError with torch's message, and
    returns the accepted value as a plain Python value: NumPy scalars and 1-element arrays unwrapped) and the C
    field(s) it feeds: a field name, a tuple of names for a pair such as ``betas`` (one field per entry), or None
    for an option only Python reads (a scalar's input, an initial value). ``normalize`` turns the checked value into
    the one stored in ``defaults`` and the groups (``tuple`` for ``betas``)."""

    __slots__ = ("name", "default", "check", "fields", "normalize")

    def __init__(self, name: str, default: Any, check: Callable[[Any], Any], fields: str | tuple[str, ...] | None,
                 normalize: Callable[[Any], Any] | None = None) -> None:
        self.name, self.default, self.check, self.normalize = name, default, check, normalize
        self.fields = (fields,) if isinstance(fields, str) else tuple(fields or ())


def flag(name: str, default: bool = False, field: str | None = "") -> Option:
    """A bool option checked with ``V.flag``; it feeds the C field of the same name unless ``field`` says otherwise
    (None: Python only)."""
    return Option(name, default, lambda v: V.flag(name, v), name if field == "" else field)


class Buffer:
    """A state buffer (torch's state key), present when ``when(group)`` is true (always if ``when`` is None)."""

    __slots__ = ("name", "when")

    def __init__(self, name: str, when: Callable[[Mapping[str, Any]], Any] | None = None) -> None:
        self.name, self.when = name, when


class Spec:
    """The declaration of one algorithm (see the module docstring).

    Args:
        kernel: name of its row in the C kernel table (``fastopt._kernels.KERNELS``), or None for an algorithm whose
            step is not one table kernel (its options are still declared and checked here).
        options: its options, in torch's signature order (the order of ``defaults`` and of every group dict).
        buffers: its state buffers, in the kernel's buffer order after param and grad.
        at_step: ``at_step(options)`` returns ``f(t)``, the tuple of per-tensor scalars at step count t (computed in
            double, as torch does), for scalars that depend on the step only.
        fill: ``fill(options, scalars, steps, fresh)`` writes the per-tensor scalars (an (n_tensors, n_scalars)
            float64 array; ``steps`` are the step counts after this step, ``fresh`` marks new state), for scalars
            that depend on more than the step (SGD's new-buffer flag). Scalars that need neither are constant.
        check_order: option names in the order their checks run (torch's constructor order) if not ``options``'.
        check_group: an extra check over the whole group, after the options' own (e.g. SGD's Nesterov rule).
        kernel_scalars: the scalars depend on the step only and the C kernel computes them from its hyper block
            (``fo_<kernel>_step_scalars``, ``Kernel.step_scalars``): ``at_step`` is derived from it, and the repeated
            step computes them without Python.
    """

    def __init__(self, kernel: str | None, options: Sequence[Option], buffers: Sequence[Buffer] = (),
                 at_step: Callable[[Mapping[str, Any]], Callable[[int], tuple]] | None = None,
                 fill: Callable[..., None] | None = None, check_order: Sequence[str] | None = None,
                 check_group: Callable[[Mapping[str, Any]], None] | None = None, kernel_scalars: bool = False) -> None:
        self.options = tuple(options)
        self.names = tuple(o.name for o in self.options)
        self.defaults = {o.name: o.default for o in self.options}
        by_name = {o.name: o for o in self.options}
        order = tuple(check_order) if check_order is not None else self.names
        if sorted(order) != sorted(self.names):
            raise RuntimeError(f"spec check_order {order} must list the options {self.names}")
        self._checks = tuple((n, by_name[n].check) for n in order)
        self._check_group = check_group
        self.buffers = tuple(b.name for b in buffers)
        self._when = tuple(b.when for b in buffers)
        self.kernel_scalars = kernel_scalars
        if kernel_scalars:
            if at_step is not None or fill is not None:
                raise RuntimeError("a spec with kernel_scalars takes no at_step or fill")
            at_step = self._kernel_at_step
        self.at_step = at_step
        self._fill = fill
        self.kernel = K.KERNELS[kernel] if kernel is not None else None
        self._feeds: tuple[tuple[str, tuple[str, ...]], ...] = tuple((o.name, o.fields) for o in self.options
                                                                     if o.fields)
        if self.kernel is not None:
            self._verify()
        if kernel_scalars and not self.table_kernel.has_step_scalars:
            raise RuntimeError(f"kernel '{self.table_kernel.name}' has no C step scalars (fastopt.h: FO_STEP_SCALARS)")

    def _verify(self) -> None:
        """The spec and the C kernel table agree: every C field is fed by exactly one option, and the buffers fill
        the kernel's positions after param and grad. Raised at import (the spec is built when its module loads)."""
        k = self.table_kernel
        fed = [f for _, fields in self._feeds for f in fields]
        if sorted(fed) != sorted(k.fields):
            raise RuntimeError(f"the spec of kernel '{k.name}' feeds C fields {sorted(fed)}, but fo_{k.name}_hyper "
                               f"has {sorted(k.fields)} (csrc/fastopt.h): fix one of them")
        if 2 + len(self.buffers) != k.n_bufs:
            raise RuntimeError(f"the spec of kernel '{k.name}' declares buffers {self.buffers}, but the kernel "
                               f"reads {k.n_bufs} buffers per tensor (param, grad and {k.n_bufs - 2} state)")

    def _kernel_at_step(self, options: Mapping[str, Any]) -> Callable[[int], tuple]:
        """``at_step`` of a spec with ``kernel_scalars``: the C kernel's scalars for these options' hyper block."""
        scalars, hyper = self.table_kernel.step_scalars, self.hyper(options)
        return lambda t: scalars(hyper, t)

    @property
    def table_kernel(self) -> K.Kernel:
        """The kernel's row of the C table; only for a spec declared with one (RuntimeError otherwise)."""
        if self.kernel is None:
            raise RuntimeError("this spec has no table kernel (declared with kernel=None)")
        return self.kernel

    @property
    def n_scalars(self) -> int:
        return self.kernel.n_scalars if self.kernel is not None else 0

    @property
    def buffer_names(self) -> tuple[str, ...]:
        """The kernel's buffer names: param, grad, then the state buffers."""
        return ("param", "grad") + self.buffers

    def with_defaults(self, **defaults: Any) -> "Spec":
        """The same algorithm with other defaults (AdamW: Adam with weight_decay 1e-2, decoupled)."""
        new = object.__new__(Spec)
        new.__dict__.update(self.__dict__)
        unknown = set(defaults) - set(self.names)
        if unknown:
            raise RuntimeError(f"with_defaults: unknown options {sorted(unknown)}")
        new.defaults = {n: defaults.get(n, v) for n, v in self.defaults.items()}
        return new

    def check(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The one check of a group's (or a functional call's) options: each option's validator in torch's order,
        then the whole-group check (on the normalised values). Raises ValueError/TypeError with torch's messages;
        changes nothing. Returns the normalised options: each value as its validator returns it (a NumPy scalar or
        a 1-element array becomes a Python float/int/bool, a pair a tuple), then ``Option.normalize``d."""
        out: dict[str, Any] = {}
        for name, check in self._checks:
            out[name] = check(options[name])
        for o in self.options:
            if o.normalize is not None:
                out[o.name] = o.normalize(out[o.name])
        if self._check_group is not None:
            self._check_group(out)
        return out

    def options_from(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """A constructor's options: the spec's options found in ``given`` (the constructor's ``locals()``), the
        rest from the defaults; checked and normalised (``Spec.check``)."""
        return self.check({n: given[n] if n in given else self.defaults[n] for n in self.names})

    def hyper(self, options: Mapping[str, Any]) -> bytes:
        """The kernel's hyper-parameter block for these (checked) options, packed by field name."""
        values: dict[str, Any] = {}
        for name, fields in self._feeds:
            v = options[name]
            if len(fields) == 1:
                values[fields[0]] = v
            else:
                for f, x in zip(fields, v):
                    values[f] = x
        return self.table_kernel.pack(values)

    def fill(self, options: Mapping[str, Any], scalars: np.ndarray, steps: list[int], fresh: list[bool]) -> None:
        """Write the per-tensor scalars for these options, step counts (after this step) and new-state flags."""
        if self._fill is not None:
            self._fill(options, scalars, steps, fresh)
            return
        if self.at_step is None:
            return
        at = self.at_step(options)
        if steps and steps.count(steps[0]) == len(steps):  # the usual case: one step count for the whole group
            K.fill_columns(scalars, at(steps[0]))
            return
        done: dict[int, tuple] = {}
        for i, t in enumerate(steps):
            row = done.get(t)
            if row is None:
                row = done[t] = at(t)
            scalars[i, :len(row)] = row

    def active(self, options: Mapping[str, Any]) -> tuple[bool, ...]:
        """Which state buffers these options use."""
        return tuple(True if w is None else bool(w(options)) for w in self._when)
