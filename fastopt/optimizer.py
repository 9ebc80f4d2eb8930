"""``Optimizer``: torch.optim's model (param_groups, defaults, state, state_dict) over NumPy parameters."""
from __future__ import annotations

import functools
import inspect
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any

import numpy as np

from . import _kernels as K
from . import _validate as V
from ._memory import copy_aligned
from ._plan import immutable
from .parameter import Parameter

__all__ = ["Optimizer", "RemovableHandle"]

_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same types (tuples element by element): what need not be replaced in a group."""
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _snapshot_value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, (list, tuple)):
        return type(v)(_snapshot_value(x) for x in v)
    if isinstance(v, dict):
        return {k: _snapshot_value(x) for k, x in v.items()}
    return v


def snapshot_state(pstate: dict[str, Any]) -> dict[str, Any]:
    """A parameter's state with every array copied (also inside lists, tuples and dicts): ``state_dict()``'s
    snapshot. Python numbers and strings are immutable and shared."""
    return {k: _snapshot_value(v) for k, v in pstate.items()}


def normalize_group(group: dict[str, Any], normalized: dict[str, Any],
                    undo: list[tuple[dict[str, Any], str, Any]] | None = None) -> None:
    """Write the checked, normalised option values into ``group`` where they differ in type or value from what is
    there (a NumPy scalar, a 1-element array, a list for a pair); ``undo`` (if given) collects ``(group, key, old
    value)`` for each replacement. An accepted value keeps its identity when it is already plain, so the
    repeated-step cache (which compares tuples by identity) is not invalidated."""
    for key, value in normalized.items():
        old = group.get(key, _MISSING)
        if not _same(old, value):
            if undo is not None:
                undo.append((group, key, old))
            group[key] = value

# Group keys that torch.optim stores but fastopt has no use for; a torch state_dict carrying them loads as
# long as they hold the value that means "nothing special" (any other value would change behaviour).
_TORCH_ONLY_KEYS = {"foreach": (None, False, True), "capturable": (False,), "differentiable": (False,),
                    "fused": (None, False)}


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: OrderedDict) -> None:
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _wrap_step(step: Callable) -> Callable:
    """Run step pre/post hooks around a subclass's ``step`` and record that a step ran (for schedulers)."""

    @functools.wraps(step)
    def wrapper(self: "Optimizer", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            outer = self._replaced_options is None
            undo: list[tuple[dict[str, Any], str, Any]] = []
            if outer:  # option values this step's checks normalise are put back if the step fails
                self._replaced_options = undo
            try:
                if self._step_pre_hooks or self._step_post_hooks or self._in_step:
                    out = _hooked_step(self, step, args, kwargs)
                else:
                    out = step(self, *args, **kwargs)  # no hooks: nothing to run around it
                    self._opt_called = True
            except BaseException:
                if outer:
                    for group, key, old in reversed(undo):
                        group[key] = old
                raise
            finally:
                if outer:
                    self._replaced_options = None
            return out

    wrapper._fastopt_wrapped = True  # type: ignore[attr-defined]
    return wrapper


def _hooked_step(self: "Optimizer", step: Callable, args: tuple, kwargs: dict) -> Any:
    """The body of a wrapped ``step``: pre-hooks, the step, post-hooks (once, even if a subclass calls super)."""
    if self._in_step:  # a subclass step calling super().step(): hooks run once
        return step(self, *args, **kwargs)
    self._in_step = True
    try:
        if self._step_pre_hooks:
            args, kwargs = _run_pre_hooks(self, self._step_pre_hooks, args, kwargs)
        out = step(self, *args, **kwargs)
        self._opt_called = True
        if self._step_post_hooks:
            for hook in list(self._step_post_hooks.values()):
                hook(self, args, kwargs)
        return out
    finally:
        self._in_step = False


def _run_pre_hooks(opt: Any, hooks: OrderedDict, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Run step pre-hooks as torch does: each ``hook(opt, args, kwargs)`` returns None or new ``(args, kwargs)``."""
    for hook in list(hooks.values()):
        res = hook(opt, args, kwargs)
        if res is not None:
            if not (isinstance(res, tuple) and len(res) == 2):
                raise RuntimeError(f"a step pre-hook must return None or (args, kwargs), got {res!r}")
            args, kwargs = res
    return args, kwargs


def _locked(method: Callable) -> Callable:
    """Run ``method`` holding the optimizer's lock (see ``Optimizer``: calls from several threads are serialised)."""

    @functools.wraps(method)
    def wrapper(self: "Optimizer", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class Optimizer:
    r"""Base class of every fastopt optimizer; the same model as ``torch.optim.Optimizer``.

    Args:
        params (iterable): Parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups
            (``{'params': [...], 'lr': 1e-3}``); a group's missing options come from ``defaults``.
        defaults (dict): default values of the optimization options.

    Attributes:
        param_groups (list[dict]): one dict per group: ``'params'`` (list of Parameters) and the options.
        state (defaultdict[Parameter, dict]): per-parameter state (NumPy arrays and step counts).
        defaults (dict): the default options.

    Thread safety:
        Each optimizer holds a reentrant lock (``fastopt._kernels.OptimizerLock``, with ``threading.RLock``'s
        semantics; the repeated step takes it from C) that ``step``, ``zero_grad``, ``add_param_group``,
        ``state_dict`` and ``load_state_dict`` take for their whole call, so calls from several threads on one
        optimizer run one at a time, in some order, and each sees and leaves a consistent state. A kernel keeps a
        reference to every array it reads or writes until it returns, so a gradient replaced or set to None by
        another thread during a step is never freed under it (the step uses the arrays it found when it started;
        a parameter whose gradient is None when the step reads it is skipped, as in torch). Assigning ``.grad``
        or editing ``param_groups`` directly takes no lock: do it between steps when the order matters.

    Example:
        A subclass passes its default options to ``__init__`` and defines ``step``:

        >>> class PlainSGD(fastopt.Optimizer):
        ...     def __init__(self, params, lr=0.1):
        ...         super().__init__(params, dict(lr=lr))
        ...     def step(self, closure=None):
        ...         for group in self.param_groups:
        ...             for p in group["params"]:
        ...                 if p.grad is not None:
        ...                     p.data -= group["lr"] * p.grad
        >>> w = fastopt.Parameter(np.array([1.0, 2.0]))
        >>> opt = PlainSGD([w], lr=0.5)
        >>> w.grad = np.array([1.0, -1.0])
        >>> opt.step()
        >>> w.data
        array([0.5, 2.5])
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self._lock = K.OptimizerLock()
        self._in_step = False
        self._replaced_options: list[tuple[dict[str, Any], str, Any]] | None = None  # during a step: undo list
        self.defaults = dict(defaults)
        self._checked_defaults = dict(defaults)  # with a spec: checked by the constructor (Spec.options_from)
        self._step_pre_hooks: OrderedDict = OrderedDict()
        self._step_post_hooks: OrderedDict = OrderedDict()
        self._state_dict_pre_hooks: OrderedDict = OrderedDict()
        self._state_dict_post_hooks: OrderedDict = OrderedDict()
        self._load_state_dict_pre_hooks: OrderedDict = OrderedDict()
        self._load_state_dict_post_hooks: OrderedDict = OrderedDict()
        self._opt_called = False
        self._derived_names: set[int] = set()   # indices of the groups whose param_names came from Parameter.name
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError("params argument given to the optimizer should be an iterable of Parameters or "
                            f"dicts, but got {type(params).__module__}.{type(params).__name__}")
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of parameters in sets will change between runs. Please use a list instead.")
        if isinstance(params, dict):
            # torch refuses a dict too (it iterates over the keys); say what to pass instead
            if "params" in params:
                raise TypeError("params should be an iterable of Parameters or of param-group dicts, but got a "
                                "single param-group dict; wrap it in a list: [{'params': ..., ...}]")
            if params and all(isinstance(v, Parameter) for v in params.values()):
                raise TypeError("params should be an iterable of Parameters or of param-group dicts, but got a dict "
                                "of Parameters; for named parameters pass its items: optimizer(params.items(), ...)")
            raise TypeError("params should be an iterable of Parameters or of param-group dicts, but got a dict")
        self.state: defaultdict[Parameter, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("_spec")
        if spec is not None:  # torch's explicit signature stays on the class; its defaults must be the spec's
            for name, param in inspect.signature(cls.__init__).parameters.items():
                if name in spec.defaults and param.default is not inspect.Parameter.empty:
                    if param.default != spec.defaults[name] or type(param.default) is not type(spec.defaults[name]):
                        raise TypeError(f"{cls.__name__}.__init__ has {name}={param.default!r}, its spec "
                                        f"{spec.defaults[name]!r}")
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_fastopt_wrapped", False):
            setattr(cls, "step", _wrap_step(step))  # (mypy refuses assigning to a method; same effect)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)  # a lock cannot be copied or pickled; the copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = K.OptimizerLock()
        self._replaced_options = None  # (a pickle made mid-step, or before this attribute existed)

    def __repr__(self) -> str:
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k not in ("params", "param_names")):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # ---- groups ------------------------------------------------------------------------------------------
    _spec: Any = None  # a subclass's fastopt._spec.Spec: its options, declared once

    def _check_group(self, group: dict[str, Any]) -> None:
        """Check a group's options (ranges, types), raising ValueError/TypeError like torch: the spec's one check
        (``Spec.check``), skipped when every option is the very immutable object the constructor checked
        (``Spec.options_from``), so constructing an optimizer checks its options once.

        An accepted value that is not already in its plain form (a NumPy scalar or a 1-element array such as
        ``np.float32(0.1)`` set by a user or a scheduler, a list for a pair) is replaced in the group by the plain
        Python value it stands for (``_normalize``), so ``param_groups`` and ``state_dict()`` hold Python
        floats/ints/bools and the repeated-step cache sees an unchanged group."""
        spec = self._spec
        if spec is None:
            return
        checked = self._checked_defaults
        for name in spec.names:
            if name not in group or group[name] is not checked.get(name, _MISSING) or not immutable(group[name]):
                self._normalize(group, spec.check(group))
                return

    def _normalize(self, group: dict[str, Any], values: dict[str, Any]) -> None:
        """Write a group's checked, normalised option values into it (``normalize_group``), so the rest of the call
        reads plain values. Inside ``step`` each replaced value is remembered and put back if the step raises
        (a rejected step leaves every group exactly as it was, the very objects); outside a step (the
        constructor, ``add_param_group`` and ``load_state_dict`` check a dict of their own) it simply stays."""
        undo = getattr(self, "_replaced_options", None)  # (None also before Optimizer.__init__ ran)
        normalize_group(group, values, undo)

    @_locked
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (a dict with ``'params'`` and optional options) to ``param_groups``.

        The given dict is not modified: the group stored is a copy with the defaults filled in.
        Raises TypeError for a non-dict, a set, or a non-Parameter; ValueError for an empty group, a
        parameter already in another group, or a missing required option.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of parameters in sets will change between runs. Please use a list instead.")
        elif isinstance(params, np.ndarray):
            raise TypeError("optimizer can only optimize Parameters, but the group's params is a numpy.ndarray "
                            "(wrap it: fastopt.Parameter(array))")
        else:
            params = list(params)
        names = []
        tensors = []
        for item in params:
            if isinstance(item, tuple):
                if len(item) != 2 or not isinstance(item[0], str):
                    raise TypeError(f"named parameters must be (str, Parameter) pairs, got {item!r}")
                names.append(item[0])
                tensors.append(item[1])
            else:
                tensors.append(item)
        if names and len(names) != len(tensors):
            raise ValueError("all optimizer params should be with/without names. Some param names are missing")
        derived = False
        if not names:
            # one naming mechanism: Parameter(x, name=...) names (fastopt.tree makes them) stand for (name, param)
            # pairs when every param of the group has one and they are distinct within the group
            given: list[Any] = [getattr(p, "name", None) for p in tensors]
            if given and all(isinstance(n, str) for n in given) and len(set(given)) == len(given):
                names, derived = list(given), True
        for p in tensors:
            if not isinstance(p, Parameter):
                hint = " (wrap it: fastopt.Parameter(array))" if isinstance(p, np.ndarray) else ""
                raise TypeError("optimizer can only optimize Parameters, but one of the params is "
                                f"{type(p).__module__}.{type(p).__name__}{hint}")
        if len(tensors) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if len(set(map(id, tensors))) != len(tensors):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        group["params"] = tensors
        if names:
            group["param_names"] = names
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._check_group_at(len(self.param_groups), group)
        seen: set[int] = set()
        for oi, other in enumerate(self.param_groups):
            seen.update(id(p) for p in other["params"])
            # torch's rule for (name, param) pairs: all groups with them or none; names taken from
            # Parameter.name are not held to it (a group of unnamed params may sit beside them)
            explicit_other = "param_names" in other and oi not in self._derived_names
            explicit_group = bool(names) and not derived
            if (explicit_group and "param_names" not in other) or (explicit_other and not names):
                txt = "with names" if "param_names" in group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {txt} to the optimizer")
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        if derived:
            self._derived_names.add(len(self.param_groups))
        self.param_groups.append(group)
        self._groups_changed()

    def _check_group_at(self, gi: int, group: dict[str, Any]) -> None:
        """``_check_group``, with the group's place in front of any error: ``param_groups[1]: Invalid ...``."""
        try:
            self._check_group(group)
        except (ValueError, TypeError) as e:
            raise type(e)(f"param_groups[{gi}]: {e}") from None

    def _groups_with_grads(self) -> Iterable[tuple[int, dict[str, Any], list[tuple[int, Parameter, Any]]]]:
        """Each group after its options are checked (errors name the group), with its (index, Parameter, grad)
        triples for the parameters that have a gradient: the first pass of every ``step``, which validates before
        anything is written. Each ``.grad`` is read once, here: the step uses that array even if another thread
        assigns a new one meanwhile."""
        for gi, group in enumerate(self.param_groups):
            self._check_group_at(gi, group)
            yield gi, group, [(j, p, g) for j, p in enumerate(group["params"]) if (g := p.grad) is not None]

    def _checked_groups(self) -> Iterable[tuple[int, dict[str, Any], list[tuple[int, Parameter, np.ndarray,
                                                                                 np.ndarray, Any]]]]:
        """``_groups_with_grads`` with each parameter's data and gradient checked (``V.param_data``, ``V.grad``):
        ``(gi, group, [(j, p, data, grad, state or None)])``, the first pass of a dense optimizer's ``step``."""
        for gi, group, with_grads in self._groups_with_grads():
            checked = []
            for j, p, g in with_grads:
                data = V.param_data(p, gi, j)
                checked.append((j, p, data, V.grad(g, gi, j, data), self.state.get(p)))
            yield gi, group, checked

    def _groups_changed(self) -> None:
        """Called when groups are added or replaced; subclasses drop caches here."""

    # ---- gradients ---------------------------------------------------------------------------------------
    @_locked
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to None (default, as torch), or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                elif isinstance(p.grad, np.ndarray) and p.grad.flags.writeable:
                    p.grad.fill(0)
                else:
                    p.grad = np.zeros_like(p.data)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` (re-evaluating the loss) runs first, its loss is returned."""
        raise NotImplementedError

    # ---- hooks -------------------------------------------------------------------------------------------
    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(optimizer, args, kwargs) -> None | (args, kwargs)`` runs before each ``step``."""
        return self._register(self._step_pre_hooks, hook)

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(optimizer, args, kwargs) -> None`` runs after each ``step``."""
        return self._register(self._step_post_hooks, hook)

    def register_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer) -> None`` runs before ``state_dict()`` builds its result."""
        return self._register(self._state_dict_pre_hooks, hook, prepend)

    def register_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer, state_dict) -> None | dict`` may edit or replace ``state_dict()``'s result."""
        return self._register(self._state_dict_post_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer, state_dict) -> None | dict`` may edit or replace what ``load_state_dict`` loads."""
        return self._register(self._load_state_dict_pre_hooks, hook, prepend)

    def register_load_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer) -> None`` runs after ``load_state_dict`` succeeded."""
        return self._register(self._load_state_dict_post_hooks, hook, prepend)

    @staticmethod
    def _register(hooks: OrderedDict, hook: Callable, prepend: bool = False) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    # ---- state dict --------------------------------------------------------------------------------------
    def _state_spec(self, group: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(array keys, scalar step keys) a parameter's state holds under ``group``'s options."""
        return (), ()

    @_locked
    def state_dict(self, copy: bool = True) -> dict[str, Any]:
        """The optimizer's state in torch's layout.

        ``{'state': {index: {key: value}}, 'param_groups': [{option: value, 'params': [indices]}]}``, with
        parameters numbered in group order.

        Args:
            copy (bool, optional): True (default): a snapshot: every state array (and every array in a list, such
                as LBFGS's history) is a copy, so a kept state dict stays what it was while training goes on. It
                costs one copy of the optimizer state (for Adam, two arrays the size of the parameters; the
                time of a memcpy of that many bytes). False: the live state arrays themselves, as torch returns
                them: no copy, for writing a very large state straight to disk (``fastopt.save(opt.state_dict(
                copy=False), path)``), but the arrays change with every later ``step()`` and writing into them
                writes into the optimizer (default: True).
        """
        if not isinstance(copy, (bool, np.bool_)):
            raise TypeError(f"state_dict: copy must be a bool, got {copy!r}")
        for hook in list(self._state_dict_pre_hooks.values()):
            hook(self)
        index: dict[int, int] = {}
        groups = []
        start = 0
        for group in self.param_groups:
            ids = list(range(start, start + len(group["params"])))
            index.update((id(p), i) for p, i in zip(group["params"], ids))
            start += len(ids)
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = ids
            groups.append(packed)
        state = {index[id(p)]: (snapshot_state(s) if copy else dict(s)) for p, s in self.state.items()
                 if id(p) in index and s}
        return self._state_dict_posthooked({"state": state, "param_groups": groups})

    def _state_dict_posthooked(self, out: dict[str, Any]) -> dict[str, Any]:
        """``out`` after the state-dict post-hooks (a hook may return a replacement)."""
        for hook in list(self._state_dict_post_hooks.values()):
            res = hook(self, out)
            if res is not None:
                out = res
        return out

    @_locked
    def _hooked_state_dict(self, state_dict: Any) -> tuple[dict[str, Any], Any, Any]:
        """The first part of every ``load_state_dict``: run the pre-hooks, then check the outer layout (a dict with
        'state' and 'param_groups', one saved group per live group). Returns (state_dict, groups, state)."""
        for hook in list(self._load_state_dict_pre_hooks.values()):
            res = hook(self, state_dict)
            if res is not None:
                state_dict = res
        if not isinstance(state_dict, Mapping):
            raise TypeError("state_dict must be a mapping (a dict with 'state' and 'param_groups', as state_dict() "
                            f"returns), got {type(state_dict).__name__}")
        missing = [k for k in ("state", "param_groups") if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict must be a dict with 'state' and 'param_groups'; it lacks {missing} "
                             f"(it has {sorted(map(str, state_dict))})")
        state_dict = dict(state_dict)
        groups, saved = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or not isinstance(saved, dict):
            raise TypeError("state_dict['param_groups'] must be a list and state_dict['state'] a dict")
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups "
                             f"({len(groups)} saved, {len(self.param_groups)} here)")
        for gi, (live, g) in enumerate(zip(self.param_groups, groups)):
            if not isinstance(g, dict) or "params" not in g:
                raise ValueError(f"param_groups[{gi}] of the loaded state dict has no 'params'")
            if len(g["params"]) != len(live["params"]):
                raise ValueError(f"loaded state dict contains a parameter group ({gi}) that doesn't match the "
                                 f"size of optimizer's group ({len(g['params'])} saved, "
                                 f"{len(live['params'])} here)")
        return state_dict, groups, saved

    @_locked
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state produced by ``state_dict()`` (or a torch optimizer's, converted with ``np.asarray``).

        Everything is checked first — group count and sizes, option values, state keys, every array's shape and
        dtype against its live parameter (no silent cast) — and arrays are copied; on any error nothing changes.

        Parameters are matched by name within each group when both this optimizer (given ``(name, Parameter)``
        pairs) and the saved groups carry ``'param_names'``: a missing or unknown name is a ValueError.
        Otherwise they are matched by position, as in torch.
        """
        state_dict, saved_groups, saved_state = self._hooked_state_dict(state_dict)
        new_groups = []
        id_map: dict[Any, tuple[int, int, Parameter]] = {}
        for gi, (live, saved) in enumerate(zip(self.param_groups, saved_groups)):
            group = {}
            for key, value in saved.items():
                if key in ("params", "param_names"):
                    continue
                if key in _TORCH_ONLY_KEYS and key not in self.defaults:
                    if not any(value is ok or value == ok for ok in _TORCH_ONLY_KEYS[key]):
                        raise ValueError(f"param_groups[{gi}]: option {key}={value!r} is not supported by fastopt")
                    continue
                group[key] = value
            for key in self.defaults:
                if key not in group:
                    raise ValueError(f"param_groups[{gi}] of the loaded state dict lacks option '{key}'")
            group["params"] = live["params"]
            if "param_names" in live:
                group["param_names"] = live["param_names"]
            self._check_group_at(gi, group)
            new_groups.append(group)
            for sid, j in zip(saved["params"], self._saved_order(gi, live, saved)):
                id_map[sid] = (gi, j, live["params"][j])
        new_state: defaultdict[Parameter, dict[str, Any]] = defaultdict(dict)
        for sid, pstate in saved_state.items():
            if sid not in id_map:
                raise ValueError(f"loaded state refers to parameter {sid!r}, which no group lists")
            gi, j, p = id_map[sid]
            new_state[p] = self._load_param_state(pstate, new_groups[gi], p, gi, j)
        # everything checked: commit
        self.param_groups = new_groups
        self.state = new_state
        self._groups_changed()
        for hook in list(self._load_state_dict_post_hooks.values()):
            hook(self)

    @staticmethod
    def _saved_order(gi: int, live: dict[str, Any], saved: dict[str, Any]) -> list[int]:
        """For each saved parameter of group ``gi``, the index of the live parameter it belongs to.

        By name when both the live group and the saved group carry ``'param_names'`` (the optimizer was given
        ``(name, Parameter)`` pairs), so a checkpoint loads even if the parameters were listed in another order;
        otherwise by position, as torch does.
        """
        n = len(live["params"])
        if "param_names" not in live or "param_names" not in saved:
            return list(range(n))
        names = saved["param_names"]
        if not isinstance(names, (list, tuple)) or not all(isinstance(x, str) for x in names):
            raise TypeError(f"param_groups[{gi}]['param_names'] of the loaded state dict must be a list of str")
        if len(names) != len(saved["params"]):
            raise ValueError(f"param_groups[{gi}] of the loaded state dict has {len(saved['params'])} params but "
                             f"{len(names)} param_names")
        if len(set(names)) != len(names):
            dup = sorted({x for x in names if names.count(x) > 1})
            raise ValueError(f"param_groups[{gi}] of the loaded state dict repeats parameter names {dup}")
        if len(set(live["param_names"])) != n:
            raise ValueError(f"param_groups[{gi}] has repeated parameter names; cannot match saved state by name")
        where = {name: j for j, name in enumerate(live["param_names"])}
        unknown = [x for x in names if x not in where]
        missing = [x for x in live["param_names"] if x not in set(names)]
        if unknown or missing:
            raise ValueError(f"param_groups[{gi}]: the loaded state dict's parameter names do not match this "
                             f"group's: unknown {unknown}, missing {missing}")
        return [where[x] for x in names]

    def _load_param_state(self, pstate: Any, group: dict[str, Any], p: Parameter, gi: int, j: int) -> dict:
        if not isinstance(pstate, dict):
            raise TypeError(f"{V.where(gi, j)}: saved state must be a dict, got {type(pstate).__name__}")
        arrays, steps = self._state_spec(group)
        if not pstate:
            return {}
        expected = set(arrays) | set(steps)
        extra = set(pstate) - expected
        missing = expected - set(pstate)
        if extra or missing:
            raise ValueError(f"{V.where(gi, j)}: saved state has keys {sorted(pstate)}, expected "
                             f"{sorted(expected)} for this group's options")
        data = p.data
        out: dict[str, Any] = {}
        for key in steps:
            out[key] = V.step_count(pstate[key], gi, j, f"state '{key}'")
        for key in arrays:
            value = pstate[key]
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{V.where(gi, j)}: saved state '{key}' must be a numpy.ndarray, "
                                f"got {type(value).__name__}")
            if value.shape != data.shape or value.dtype != data.dtype:
                raise ValueError(f"{V.where(gi, j)}: saved state '{key}' is {value.dtype}{list(value.shape)}, "
                                 f"the parameter is {data.dtype}{list(data.shape)}")
            out[key] = copy_aligned(value, data)
        return out
