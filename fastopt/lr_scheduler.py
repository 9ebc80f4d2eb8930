r"""Learning-rate schedulers with the names, arguments, defaults and sequences of
``torch.optim.lr_scheduler``, written in plain Python for fastopt optimizers.

Every scheduler changes ``group['lr']`` (and, for :class:`CyclicLR` and :class:`OneCycleLR`,
``group['momentum']`` or ``group['betas'][0]``) of the optimizer's parameter groups in place.
Schedulers that torch writes in "chainable" form (the new rate is computed from the current
``group['lr']``) are written the same way here, in the same order of floating-point operations,
so that the sequences agree with torch bit for bit and several schedulers can be chained.

Usage::

    opt = fastopt.SGD(params, lr=0.1, momentum=0.9)
    sched = fastopt.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for epoch in range(100):
        train_one_epoch(opt)          # calls opt.step()
        sched.step()                  # after opt.step(), as in torch

Where this module differs from torch on purpose (each is documented at the class concerned):

* ``state_dict()`` returns plain data only (dicts, lists, tuples, numbers, strings, None) that
  :func:`fastopt.save` can store without pickle; ``MultiStepLR.milestones`` is saved as a plain
  ``dict``.
* ``load_state_dict()`` also writes the restored learning rates (and cycled momenta) back into the
  optimizer's groups, so that a resumed run continues with exactly the same sequence whatever the
  order in which the optimizer and the scheduler were restored.
* :class:`SequentialLR` restarts the scheduler that takes over at a milestone correctly for every
  scheduler type (torch's restart is wrong for :class:`MultiplicativeLR` and fails or double-steps
  for nested :class:`SequentialLR` / :class:`ChainedScheduler`), and ``SequentialLR(...,
  last_epoch=N)`` fast-forwards to epoch ``N + 1`` instead of restarting from epoch 0.
* The "``lr_scheduler.step()`` before ``optimizer.step()``" warning is given once per scheduler
  (composites warn once, not once per child) and is based on whether ``optimizer.step()`` was
  *called*; the optimizer's ``step`` is not monkey-patched.
* Every argument is checked at construction, before anything is written to the optimizer's
  groups: counts (``step_size``, ``T_max``, ``total_iters``, ``patience``, ...) must be integral
  and at least 1 (0 where 0 means "none"), factors and rates finite and in range (``gamma > 0``,
  ``0 < factor <= 1`` for :class:`ConstantLR`, momenta in [0, 1], rates >= 0), ``milestones``
  non-decreasing. torch accepts several of these and fails later (``StepLR(step_size=0)`` divides
  by zero at the first step) or silently corrupts the rate (``gamma=-0.5``, ``gamma=nan``).
  NumPy scalars and 0-d arrays are accepted wherever a number is.
* ``step(epoch)`` is deprecated as in torch (a ``UserWarning``) and uses the closed form; the
  closed form of :class:`MultiplicativeLR` is the product of the factors, and :class:`SWALR`,
  which has none, refuses an ``epoch``.
"""

from __future__ import annotations

import copy
import math
import numbers
import types
import warnings
from bisect import bisect_right
from collections import Counter
from typing import Any, Callable, Iterable, Literal, Sequence, SupportsFloat

__all__ = [
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "ChainedScheduler",
    "SequentialLR",
    "ReduceLROnPlateau",
    "CyclicLR",
    "OneCycleLR",
    "CosineAnnealingWarmRestarts",
    "SWALR",
]

EPOCH_DEPRECATION_WARNING = (
    "The epoch argument of `scheduler.step(epoch)` is deprecated (as in torch): call "
    "`scheduler.step()` once per epoch instead. While it is accepted, the closed form of the "
    "schedule is used to set the learning rate for the given epoch."
)

_ORDER_WARNING = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
    "Call `optimizer.step()` before `lr_scheduler.step()`; otherwise the first value of the "
    "learning rate schedule is skipped."
)

_OVERRIDE_WARNING = (
    "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
    "initialization and was not called before `lr_scheduler.step()`. Please make sure to call "
    "`optimizer.step()` before `lr_scheduler.step()`."
)

_GET_LR_WARNING = (
    "To get the last learning rate computed by the scheduler, please use `get_last_lr()`."
)

# Attributes never saved by state_dict(): the optimizer and flags that only live inside step().
_TRANSIENT = frozenset({"optimizer", "_get_lr_called_within_step", "_is_initial"})


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _check_optimizer(optimizer: Any) -> None:
    """Raise TypeError unless ``optimizer`` looks like a fastopt/torch optimizer."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise TypeError(
            f"{type(optimizer).__name__} is not an Optimizer "
            "(expected an object with a `param_groups` list of dicts)"
        )
    if not hasattr(optimizer, "defaults"):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer (it has no `defaults`)")


def _check_last_epoch(last_epoch: Any) -> None:
    if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or last_epoch < -1:
        raise ValueError(f"last_epoch must be an int >= -1, but got {last_epoch!r}")


def _format_param(name: str, optimizer: Any, param: Any) -> list:
    """One value per param group: a scalar is repeated, a list/tuple must match in length."""
    n = len(optimizer.param_groups)
    if isinstance(param, (list, tuple)):
        if len(param) != n:
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(param)} values, param_groups has {n}."
            )
        return list(param)
    return [param] * n


def _group_values(optimizer: Any, key: str) -> list:
    return [group[key] for group in optimizer.param_groups]


def _note_step_called(optimizer: Any, args: Any, kwargs: Any) -> None:
    """Step pre-hook: remembers that ``optimizer.step()`` was called (module level, so that it
    holds no reference to any scheduler and the optimizer stays copyable)."""
    optimizer._lr_sched_step_called = True
    return None


def _track_step_calls(optimizer: Any) -> None:
    """Register :func:`_note_step_called` once per optimizer, if it offers step pre-hooks."""
    register = getattr(optimizer, "register_step_pre_hook", None)
    if register is None or getattr(optimizer, "_lr_sched_step_tracked", False):
        return
    register(_note_step_called)
    optimizer._lr_sched_step_tracked = True


def _optimizer_stepped(optimizer: Any) -> bool:
    return bool(getattr(optimizer, "_opt_called", False)
                or getattr(optimizer, "_lr_sched_step_called", False))


def _warn_if_not_stepped(optimizer: Any, stacklevel: int) -> None:
    if _optimizer_stepped(optimizer):
        return
    if "step" in vars(optimizer):
        warnings.warn(_OVERRIDE_WARNING, UserWarning, stacklevel=stacklevel + 1)
    else:
        warnings.warn(_ORDER_WARNING, UserWarning, stacklevel=stacklevel + 1)


def _plain(value: Any) -> Any:
    """Deep copy of ``value`` with dict subclasses (Counter) turned into plain dicts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return copy.deepcopy(value)


def _check_state_dict(state_dict: Any) -> None:
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict must be a dict, but got {type(state_dict).__name__}")



# --------------------------------------------------------------------------------------------
# argument checks: every constructor runs these before it writes anything (to itself or to the
# optimizer's groups), so a rejected scheduler leaves the optimizer exactly as it was
# --------------------------------------------------------------------------------------------
def _scalar(owner: str, name: str, value: Any) -> Any:
    """``value`` as a Python scalar: Python and NumPy scalars and 0-d / one-element arrays are
    accepted (a schedule computed with NumPy), anything else is a TypeError naming ``name``."""
    if hasattr(value, "ndim") and hasattr(value, "item") and getattr(value, "size", 1) == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, but got {value!r} "
                        f"of type {type(value).__name__}")
    return value


def _real(owner: str, name: str, value: Any, low: float | None = None,
          high: float | None = None, *, low_open: bool = False, high_open: bool = False) -> float:
    """A finite real in the given range, as a Python float; ValueError naming ``name`` if not."""
    x = float(_scalar(owner, name, value))
    ok = math.isfinite(x)
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if not ok:
        if low is not None and high is not None:
            where = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            where = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            where = f" {'<' if high_open else '<='} {high:g}"
        else:
            where = ""
        raise ValueError(f"{owner}: {name} must be a finite number{where}, but got {value!r}")
    return x


def _reals(owner: str, name: str, optimizer: Any, value: Any, low: float | None = None,
           high: float | None = None, *, low_open: bool = False) -> list:
    """One checked float per param group (a scalar is repeated, a list must match in length)."""
    values = _format_param(name, optimizer, value)
    listed = isinstance(value, (list, tuple))
    return [_real(owner, f"{name}[{i}]" if listed else name, v, low, high, low_open=low_open)
            for i, v in enumerate(values)]


def _count(owner: str, name: str, value: Any, minimum: int) -> int:
    """An integral number >= ``minimum`` (2 and 2.0 and np.int64(2) alike), as a Python int."""
    x = _scalar(owner, name, value)
    if isinstance(x, float) and not x.is_integer():
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, but got {value!r}")
    if x < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, but got {value!r}")
    return int(x)


def _check_resume(optimizer: Any, last_epoch: Any) -> None:
    """The checks of :class:`LRScheduler`'s constructor, runnable before a subclass writes."""
    _check_optimizer(optimizer)
    _check_last_epoch(last_epoch)
    if last_epoch != -1:
        for i, group in enumerate(optimizer.param_groups):
            if "initial_lr" not in group:
                raise KeyError(
                    f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                    "a scheduler with last_epoch >= 0; load the optimizer's state_dict first, "
                    "or resume the scheduler with load_state_dict() instead"
                )


# --------------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------------
class LRScheduler:
    r"""Base class of the learning-rate schedulers.

    A subclass defines :meth:`get_lr`, the rate of every parameter group for epoch
    ``self.last_epoch`` (it may read the current ``group['lr']``: "chainable" form), and, where a
    closed form :math:`\eta_t = f(t, \eta_0)` exists, ``_get_closed_form_lr``. Construction stores
    ``group['initial_lr']`` (:math:`\eta_0`, kept if already present) and makes the first step to
    epoch 0.

    Args:
        optimizer (Optimizer): the optimizer whose ``param_groups`` are scheduled.
        last_epoch (int, optional): index of the last epoch; ``-1`` starts a new schedule, any
            other value requires ``'initial_lr'`` in every group (default: -1).

    Raises:
        TypeError: ``optimizer`` has no ``param_groups`` list of dicts.
        KeyError: ``last_epoch != -1`` and a group has no ``'initial_lr'``.

    Example:
        A subclass halving the rate each epoch, in chainable form:

        >>> class Halve(fastopt.lr_scheduler.LRScheduler):
        ...     def get_lr(self):
        ...         if self.last_epoch == 0:
        ...             return [group["lr"] for group in self.optimizer.param_groups]
        ...         return [group["lr"] / 2 for group in self.optimizer.param_groups]
        >>> opt = fastopt.SGD([fastopt.Parameter(np.zeros(2))], lr=0.8)
        >>> sched = Halve(opt)
        >>> for epoch in range(3):
        ...     opt.step()  # the training steps of one epoch
        ...     sched.step()
        ...     print(sched.get_last_lr())
        [0.4]
        [0.2]
        [0.1]
    """

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        _check_resume(optimizer, last_epoch)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        _track_step_calls(optimizer)
        self._initial_step()

    # -- stepping ------------------------------------------------------------------------------
    def _initial_step(self) -> None:
        """Make the step to epoch ``last_epoch + 1`` done at construction (no warnings)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self._advance()
        finally:
            self._is_initial = False

    def _start_fresh(self) -> None:
        """Restart at epoch 0 from the current ``group['lr']``, as construction does."""
        self.last_epoch = -1
        self._initial_step()

    def _restart_at_milestone(self) -> None:
        """Jump to this scheduler's epoch 0 when a :class:`SequentialLR` hands over to it.

        Closed-form schedulers set :math:`f(0, \\eta_0)` as torch does (bit-identical sequences);
        the others override this."""
        if hasattr(self, "_get_closed_form_lr"):
            self.last_epoch = 0
            self._step_count = 1
            self._set_lrs(self._get_closed_form_lr())
        else:
            self._set_lrs(self.base_lrs)
            self._start_fresh()

    def step(self, epoch: int | None = None) -> None:
        r"""Advance the schedule by one epoch and write the new rates into the optimizer.

        Call it after ``optimizer.step()``; the first call warns (``UserWarning``) if
        ``optimizer.step()`` was never called, because the first rate of the schedule would then
        never be used. A step skipped on purpose by the optimizer still counts as called.

        Args:
            epoch (int, optional): deprecated, as in torch: sets ``last_epoch = epoch`` and uses the
                closed form of the schedule; gives a ``UserWarning`` (default: None).
        """
        if self._step_count == 1:
            _warn_if_not_stepped(self.optimizer, stacklevel=2)
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._advance(epoch)

    def _advance(self, epoch: int | None = None) -> None:
        """One step without warnings (composite schedulers step their children with this)."""
        self._step_count += 1
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if epoch is not None and hasattr(self, "_get_closed_form_lr"):
            self._set_lrs(self._get_closed_form_lr())
        else:
            self._set_lrs(self._lrs_in_step())

    def _lrs_in_step(self) -> list:
        """The rates :meth:`get_lr` gives for ``last_epoch``, called as :meth:`step` calls it (so it does not warn)."""
        self._get_lr_called_within_step = True
        try:
            return self.get_lr()
        finally:
            self._get_lr_called_within_step = False

    def _set_lrs(self, values: Iterable) -> None:
        values = list(values)
        groups = self.optimizer.param_groups
        if len(values) != len(groups):
            raise ValueError(
                f"{type(self).__name__} computed {len(values)} learning rates for "
                f"{len(groups)} param groups (was a group added after the scheduler was created?)"
            )
        for group, lr in zip(groups, values):
            group["lr"] = lr
        self._last_lr = _group_values(self.optimizer, "lr")

    def get_lr(self) -> list:
        r"""Rates for epoch ``last_epoch``; used inside :meth:`step`. To read the current rates use
        :meth:`get_last_lr` (calling this from outside ``step()`` warns, as in torch)."""
        self._warn_get_lr()
        return self._compute_lr()

    def _compute_lr(self) -> list:
        """The built-in schedulers' :meth:`get_lr` without its warning (a user's subclass overrides get_lr)."""
        raise NotImplementedError

    def _warn_get_lr(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn(_GET_LR_WARNING, UserWarning, stacklevel=3)

    def get_last_lr(self) -> list:
        r"""The rates set by the last step, one per parameter group (a new list each call)."""
        return list(self._last_lr)

    # -- state ---------------------------------------------------------------------------------
    def _state_items(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in _TRANSIENT}

    def state_dict(self) -> dict[str, Any]:
        r"""The scheduler's state as plain data: every attribute except the optimizer (and
        callables, see the subclasses). Safe for :func:`fastopt.save`; a copy, so later steps do
        not change it."""
        return {k: _plain(v) for k, v in self._state_items().items()}

    def _load_state(self, state_dict: dict) -> None:
        """Restore attributes only (no write to the optimizer)."""
        self.__dict__.update({k: _plain(v) for k, v in state_dict.items() if k not in _TRANSIENT})

    def _check_load(self, state_dict: Any) -> None:
        _check_state_dict(state_dict)
        last = state_dict.get("_last_lr")
        n = len(self.optimizer.param_groups)
        if last is not None and len(last) != n:
            raise ValueError(
                f"state_dict has {len(last)} learning rates but the optimizer has {n} param groups"
            )

    def _restore_optimizer(self) -> None:
        """Write the restored rates back into the optimizer's groups."""
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        r"""Restore the state returned by :meth:`state_dict` (or by torch's scheduler of the same
        class) and write the restored ``get_last_lr()`` into the optimizer's groups.

        Unlike torch, the optimizer's groups are updated too, so that the next
        ``optimizer.step()`` uses the rate the saved run would have used even when the optimizer's
        own state was restored before the scheduler was constructed (construction rewrites
        ``group['lr']``). The argument is not modified.

        Args:
            state_dict (dict): a scheduler state.
        """
        self._check_load(state_dict)
        self._load_state(state_dict)
        self._restore_optimizer()


class _LambdaMixin(LRScheduler):
    """The constructor and state_dict handling shared by LambdaLR and MultiplicativeLR (listed before
    LRScheduler in their bases, so the method resolution order is the one a plain mixin would give)."""

    lr_lambdas: list

    def __init__(self, optimizer: Any, lr_lambda: Callable[[int], float] | list,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self._set_lambdas(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def _set_lambdas(self, optimizer: Any, lr_lambda: Any) -> None:
        if not isinstance(lr_lambda, (list, tuple)):
            self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        else:
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(
                    f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}"
                )
            self.lr_lambdas = list(lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")

    def state_dict(self) -> dict[str, Any]:
        state = {k: _plain(v) for k, v in self._state_items().items() if k != "lr_lambdas"}
        saved: list[Any] = []     # per lambda: None (a function) or its attributes as plain data
        for fn in self.lr_lambdas:
            if isinstance(fn, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
                saved.append(None)
            else:
                saved.append(_plain(dict(getattr(fn, "__dict__", {}))) or None)
        state["lr_lambdas"] = saved
        return state

    def _load_state(self, state_dict: dict) -> None:
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", None)
        if saved is not None and len(saved) != len(self.lr_lambdas):
            raise ValueError(
                f"state_dict has {len(saved)} lr_lambdas entries, expected {len(self.lr_lambdas)}"
            )
        LRScheduler._load_state(self, state)
        for fn, attrs in zip(self.lr_lambdas, saved or []):
            if attrs is not None:
                fn.__dict__.update(_plain(attrs))


# --------------------------------------------------------------------------------------------
# simple schedules
# --------------------------------------------------------------------------------------------
class LambdaLR(_LambdaMixin, LRScheduler):
    r"""Sets each group's rate to its initial rate times a function of the epoch.

    .. math::
        \eta_t = \eta_0 \, \lambda(t)

    Args:
        optimizer (Optimizer): wrapped optimizer.
        lr_lambda (callable or list of callables): :math:`\lambda(t)`, one function for all groups
            or one per group.
        last_epoch (int, optional): index of the last epoch (default: -1).

    ``state_dict()`` leaves the functions out, as torch does: a plain function or lambda is saved
    as ``None``; for a callable *object* only its ``__dict__`` is saved (so its attributes must be
    plain data to be written by :func:`fastopt.save`), and ``load_state_dict`` updates the
    ``__dict__`` of the callables given at construction.

    Example:
        >>> sched = LambdaLR(opt, lr_lambda=lambda epoch: 0.95 ** epoch)
    """

    def _compute_lr(self) -> list:
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]

    def _restart_at_milestone(self) -> None:
        # get_lr is already a closed form: epoch 0 is eta_0 * lambda(0), as in torch.
        self.last_epoch = 0
        self._step_count = 1
        self._set_lrs(self._lrs_in_step())


class MultiplicativeLR(_LambdaMixin, LRScheduler):
    r"""Multiplies each group's rate by a function of the epoch at every step.

    .. math::
        \eta_0 = \eta_{\text{initial}}, \qquad \eta_t = \eta_{t-1}\,\lambda(t) \quad (t \ge 1)

    Args:
        optimizer (Optimizer): wrapped optimizer.
        lr_lambda (callable or list of callables): :math:`\lambda(t)`, one function for all groups
            or one per group.
        last_epoch (int, optional): index of the last epoch (default: -1).

    ``state_dict()`` leaves the functions out as :class:`LambdaLR` does (callable objects: only
    their ``__dict__``). Differences from torch: ``step(epoch)`` uses the closed form
    :math:`\eta_0\prod_{k=1}^{t}\lambda(k)` (torch multiplies the current rate by
    :math:`\lambda(t)` once), and inside :class:`SequentialLR` the scheduler restarts from
    :math:`\eta_0` at its milestone (torch continues from the previous scheduler's rate times
    :math:`\lambda(0)`).

    Example:
        >>> sched = MultiplicativeLR(opt, lr_lambda=lambda epoch: 0.95)
    """

    def _compute_lr(self) -> list:
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * fn(self.last_epoch)
                for fn, group in zip(self.lr_lambdas, self.optimizer.param_groups)]

    def _get_closed_form_lr(self) -> list:
        out = []
        for fn, base_lr in zip(self.lr_lambdas, self.base_lrs):
            lr = base_lr
            for k in range(1, self.last_epoch + 1):
                lr = lr * fn(k)
            out.append(lr)
        return out

    def _restart_at_milestone(self) -> None:
        self._set_lrs(self.base_lrs)
        self._start_fresh()


class StepLR(LRScheduler):
    r"""Decays each group's rate by ``gamma`` every ``step_size`` epochs.

    .. math::
        \eta_t = \eta_0\,\gamma^{\lfloor t / s \rfloor}

    (computed in chainable form, :math:`\eta_t = \gamma\,\eta_{t-1}` when :math:`s \mid t`).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        step_size (int): period :math:`s` of the decay.
        gamma (float, optional): multiplicative factor :math:`\gamma` (default: 0.1).
        last_epoch (int, optional): index of the last epoch (default: -1).

    Example:
        >>> sched = StepLR(opt, step_size=30, gamma=0.1)
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size = _count("StepLR", "step_size", step_size, 1)
        self.gamma = _real("StepLR", "gamma", gamma, 0.0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    r"""Decays each group's rate by ``gamma`` at every milestone.

    .. math::
        \eta_t = \eta_0\,\gamma^{\#\{m \in M : m \le t\}}

    (chainable form: :math:`\eta_t = \gamma^{c(t)}\eta_{t-1}`, :math:`c(t)` = how many times
    :math:`t` appears in the milestones :math:`M`).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        milestones (iterable of int): epochs :math:`M` (repeats count several times).
        gamma (float, optional): multiplicative factor :math:`\gamma` (default: 0.1).
        last_epoch (int, optional): index of the last epoch (default: -1).

    ``state_dict()['milestones']`` is a plain ``dict`` {epoch: count} (torch saves a ``Counter``).

    Example:
        >>> sched = MultiStepLR(opt, milestones=[30, 80], gamma=0.1)
    """

    def __init__(self, optimizer: Any, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise TypeError(f"MultiStepLR: milestones must be an iterable of ints, but got {milestones!r}")
        marks = [_count("MultiStepLR", "milestones[]", m, 0) for m in milestones]
        if marks != sorted(marks):
            raise ValueError(f"MultiStepLR: milestones must be non-decreasing, but got {list(milestones)}")
        gamma = _real("MultiStepLR", "gamma", gamma, 0.0, low_open=True)
        self.milestones = Counter(marks)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list:
        if self.last_epoch not in self.milestones:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch)
                for base_lr in self.base_lrs]

    def _load_state(self, state_dict: dict) -> None:
        super()._load_state(state_dict)
        self.milestones = Counter(self.milestones)


class ConstantLR(LRScheduler):
    r"""Multiplies each group's rate by a constant factor until ``total_iters`` epochs.

    .. math::
        \eta_t = \begin{cases} f\,\eta_0 & t < T \\ \eta_0 & t \ge T \end{cases}

    (chainable form: :math:`\eta_0 f` at :math:`t=0`, :math:`\eta_{t-1}/f` at :math:`t=T`).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        factor (float, optional): :math:`f \in [0, 1]` (default: 1/3).
        total_iters (int, optional): :math:`T` (default: 5).
        last_epoch (int, optional): index of the last epoch (default: -1).

    Example:
        >>> sched = ConstantLR(opt, factor=0.5, total_iters=4)
    """

    def __init__(self, optimizer: Any, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        factor = float(_scalar("ConstantLR", "factor", factor))
        if not 0 <= factor <= 1.0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        if factor == 0:
            raise ValueError("ConstantLR: factor must be > 0 (the rate is divided by it at "
                             "total_iters), but got 0")
        self.factor = factor
        self.total_iters = _count("ConstantLR", "total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list:
        if self.last_epoch == 0:
            scale = self.factor
        elif self.last_epoch == self.total_iters:
            scale = 1.0 / self.factor
        else:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * scale for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        return [base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    r"""Changes each group's rate linearly from ``start_factor`` to ``end_factor`` times the
    initial rate over ``total_iters`` epochs, then keeps it.

    .. math::
        \eta_t = \eta_0\left(f_s + (f_e - f_s)\,\frac{\min(t, T)}{T}\right)

    (chainable form: :math:`\eta_t = \eta_{t-1}\bigl(1 + \frac{f_e - f_s}{T f_s + (t-1)(f_e - f_s)}\bigr)`
    for :math:`1 \le t \le T`).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        start_factor (float, optional): :math:`f_s \in (0, 1]` (default: 1/3).
        end_factor (float, optional): :math:`f_e \in [0, 1]` (default: 1.0).
        total_iters (int, optional): :math:`T` (default: 5).
        last_epoch (int, optional): index of the last epoch (default: -1).

    Example:
        >>> warmup = LinearLR(opt, start_factor=0.01, total_iters=10)
    """

    def __init__(self, optimizer: Any, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        start_factor = float(_scalar("LinearLR", "start_factor", start_factor))
        end_factor = float(_scalar("LinearLR", "end_factor", end_factor))
        if not 0 < start_factor <= 1.0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or equal to 1."
            )
        if not 0 <= end_factor <= 1.0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = _count("LinearLR", "total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list:
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        return [
            group["lr"] * (1.0 + (self.end_factor - self.start_factor)
                           / (self.total_iters * self.start_factor
                              + (self.last_epoch - 1) * (self.end_factor - self.start_factor)))
            for group in self.optimizer.param_groups
        ]

    def _get_closed_form_lr(self) -> list:
        return [
            base_lr * (self.start_factor + (self.end_factor - self.start_factor)
                       * min(self.total_iters, self.last_epoch) / self.total_iters)
            for base_lr in self.base_lrs
        ]


class ExponentialLR(LRScheduler):
    r"""Decays each group's rate by ``gamma`` every epoch.

    .. math::
        \eta_t = \eta_0\,\gamma^{t} \qquad (\text{chainable: } \eta_t = \gamma\,\eta_{t-1})

    Args:
        optimizer (Optimizer): wrapped optimizer.
        gamma (float): multiplicative factor :math:`\gamma`.
        last_epoch (int, optional): index of the last epoch (default: -1).

    Example:
        >>> sched = ExponentialLR(opt, gamma=0.95)
    """

    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = _real("ExponentialLR", "gamma", gamma, 0.0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list:
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    r"""Decays each group's rate polynomially to zero over ``total_iters`` epochs.

    .. math::
        \eta_t = \eta_0\left(1 - \frac{\min(t, T)}{T}\right)^{p}

    (chainable form: :math:`\eta_t = \eta_{t-1}\bigl(\frac{1 - t/T}{1 - (t-1)/T}\bigr)^{p}` for
    :math:`1 \le t \le T`).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        total_iters (int, optional): :math:`T` (default: 5).
        power (float, optional): :math:`p` (default: 1.0).
        last_epoch (int, optional): index of the last epoch (default: -1).

    Example:
        >>> sched = PolynomialLR(opt, total_iters=100, power=2.0)
    """

    def __init__(self, optimizer: Any, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1) -> None:
        self.total_iters = _count("PolynomialLR", "total_iters", total_iters, 1)
        self.power = _real("PolynomialLR", "power", power, 0.0)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list:
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        decay_factor = ((1.0 - self.last_epoch / self.total_iters)
                        / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return [group["lr"] * decay_factor for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        return [base_lr * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters)
                ** self.power for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Anneals each group's rate along a cosine from its initial rate to ``eta_min``.

    .. math::
        \eta_t = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})\left(1 + \cos\frac{\pi t}{T_{\max}}\right)

    computed, as in torch, in the chainable form

    .. math::
        \eta_t = \eta_{\min} + (\eta_{t-1} - \eta_{\min})
                 \frac{1 + \cos(\pi t / T_{\max})}{1 + \cos(\pi (t-1) / T_{\max})}

    (with :math:`\eta_t = \eta_{t-1} + \tfrac12(\eta_0 - \eta_{\min})(1 - \cos(\pi/T_{\max}))`
    when :math:`(t - 1 - T_{\max}) \bmod 2T_{\max} = 0`), so that after :math:`T_{\max}` the rate
    rises again (a cosine, not a restart; see :class:`CosineAnnealingWarmRestarts`).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        T_max (int): half period :math:`T_{\max}`.
        eta_min (float, optional): minimum rate :math:`\eta_{\min}` (default: 0.0).
        last_epoch (int, optional): index of the last epoch (default: -1).

    Example:
        >>> sched = CosineAnnealingLR(opt, T_max=100, eta_min=1e-5)
    """

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max = _count("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = _real("CosineAnnealingLR", "eta_min", eta_min, 0.0)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list:
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        if self._step_count == 1 and self.last_epoch > 0:
            return [self.eta_min + (base_lr - self.eta_min)
                    * (1 + math.cos(self.last_epoch * math.pi / self.T_max)) / 2
                    for base_lr in self.base_lrs]
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        return [(1 + math.cos(math.pi * self.last_epoch / self.T_max))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
                * (group["lr"] - self.eta_min) + self.eta_min
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


# --------------------------------------------------------------------------------------------
# composites
# --------------------------------------------------------------------------------------------
def _check_children(owner: str, optimizer: Any, schedulers: Sequence) -> None:
    if len(schedulers) < 1:
        raise ValueError(f"{owner} expects at least one scheduler, but got no scheduler.")
    for i, s in enumerate(schedulers):
        if not isinstance(s, LRScheduler):
            raise TypeError(f"{owner}: schedulers[{i}] is a {type(s).__name__}, not an LRScheduler")
        if isinstance(s, ReduceLROnPlateau):
            raise ValueError(
                f"{owner} does not support `ReduceLROnPlateau` scheduler as it requires "
                "additional kwargs to be specified when calling `step`, but got one at index "
                f"{i} in the given schedulers sequence."
            )
        if s.optimizer is not optimizer:
            raise ValueError(
                f"{owner} expects all schedulers to belong to the same optimizer, but got "
                f"scheduler {type(s).__name__} at index {i} with a different optimizer."
            )


class ChainedScheduler(LRScheduler):
    r"""Steps several schedulers at once; their chainable factors multiply.

    .. math::
        \eta_t = S_k(\cdots S_2(S_1(\eta_{t-1})))

    Args:
        schedulers (sequence of LRScheduler): schedulers of one optimizer, stepped in order.
        optimizer (Optimizer, optional): their optimizer (default: None, meaning
            ``schedulers[0].optimizer``).

    ``state_dict()`` holds the children's state dicts under ``'_schedulers'``. Difference from
    torch: a ChainedScheduler can be a child of :class:`SequentialLR` (torch raises
    NotImplementedError at the milestone); at its milestone every child restarts at epoch 0 from
    the groups' ``initial_lr``.

    Example:
        >>> sched = ChainedScheduler([ConstantLR(opt, 0.1, total_iters=2), ExponentialLR(opt, 0.9)])
    """

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Any | None = None) -> None:
        if len(schedulers) < 1:
            raise ValueError(
                "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler."
            )
        optimizer = optimizer if optimizer is not None else getattr(schedulers[0], "optimizer", None)
        _check_optimizer(optimizer)
        _check_children("ChainedScheduler", optimizer, schedulers)
        self._schedulers = list(schedulers)
        self.optimizer = optimizer
        self._step_count = 1
        self._last_lr = _group_values(optimizer, "lr")

    def step(self) -> None:  # type: ignore[override]
        r"""Step every child in order (warns once if ``optimizer.step()`` was never called)."""
        if self._step_count == 1:
            _warn_if_not_stepped(self.optimizer, stacklevel=2)
        self._advance()

    def _advance(self, epoch: int | None = None) -> None:
        self._step_count += 1
        for s in self._schedulers:
            s._advance()
        self._last_lr = _group_values(self.optimizer, "lr")

    def _start_fresh(self) -> None:
        for s in self._schedulers:
            s._start_fresh()
        self._step_count = 1
        self._last_lr = _group_values(self.optimizer, "lr")

    def _restart_at_milestone(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._start_fresh()

    def state_dict(self) -> dict[str, Any]:
        state = {k: _plain(v) for k, v in self._state_items().items() if k != "_schedulers"}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def _check_load(self, state_dict: Any) -> None:
        LRScheduler._check_load(self, state_dict)
        children = state_dict.get("_schedulers")
        if not isinstance(children, list) or len(children) != len(self._schedulers):
            raise ValueError(
                f"state_dict['_schedulers'] must be a list of {len(self._schedulers)} state dicts"
            )
        for s, sd in zip(self._schedulers, children):
            s._check_load(sd)

    def _load_state(self, state_dict: dict) -> None:
        state = dict(state_dict)
        children = state.pop("_schedulers")
        LRScheduler._load_state(self, state)
        for s, sd in zip(self._schedulers, children):
            s._load_state(sd)

    def _restore_optimizer(self) -> None:
        for s in self._schedulers:
            s._restore_optimizer()
        super()._restore_optimizer()


class SequentialLR(LRScheduler):
    r"""Runs one scheduler after another, switching at the milestones.

    Scheduler :math:`i` is active for :math:`m_{i-1} \le t < m_i` (:math:`m_{-1} = 0`,
    :math:`m_{n} = \infty`); at :math:`t = m_{i-1}` it restarts at its own epoch 0:

    .. math::
        \eta_t = S_i\bigl(t - m_{i-1}\bigr)

    Args:
        optimizer (Optimizer): wrapped optimizer.
        schedulers (list of LRScheduler): the schedulers, all of ``optimizer``.
        milestones (list of int): non-decreasing epochs :math:`m_0 \le m_1 \le \dots`, one fewer
            than the schedulers.
        last_epoch (int, optional): ``-1`` starts at epoch 0; ``N >= 0`` replays the schedule from
            the groups' ``initial_lr`` up to epoch ``N + 1`` (default: -1).

    Differences from torch, which are bugs there (pytorch issues #162591, #196243, #67957/#132745
    and the MultiplicativeLR restart):

    * At a milestone every kind of scheduler restarts correctly. Closed-form schedulers restart
      at :math:`f(0, \eta_0)` exactly as torch does (identical values); :class:`MultiplicativeLR`
      restarts from its :math:`\eta_0` (torch continues from the previous rate times
      :math:`\lambda(0)`); a nested SequentialLR or ChainedScheduler restarts at its own epoch 0
      (torch double-steps the first or raises NotImplementedError for the second).
    * Construction does not advance nested composite schedulers (torch steps a nested
      SequentialLR once too often when wrapping it).
    * ``last_epoch = N`` replays the schedule so that the rate is the one at epoch ``N + 1``
      (torch restarts the first scheduler at epoch 0 whatever ``N`` is).
    * ``milestones`` must be non-decreasing non-negative ints (torch silently misbehaves otherwise).
    * ``load_state_dict`` rewrites the optimizer's rate (and momentum for a cycling child) with
      those of the active child, so that a run resumed at, after or just before a milestone
      continues with exactly the same sequence.

    Example:
        >>> warmup = LinearLR(opt, start_factor=0.1, total_iters=5)
        >>> decay = CosineAnnealingLR(opt, T_max=95)
        >>> sched = SequentialLR(opt, [warmup, decay], milestones=[5])
    """

    def __init__(self, optimizer: Any, schedulers: list[LRScheduler], milestones: list[int],
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        _check_last_epoch(last_epoch)
        _check_children("SequentialLR", optimizer, schedulers)
        milestones = list(milestones)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than "
                f"the number of milestone points, but got number of schedulers {len(schedulers)} "
                f"and the number of milestones to be equal to {len(milestones)}"
            )
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, int) or m < 0:
                raise ValueError(f"milestones must be non-negative ints, but got {milestones}")
        if any(a > b for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"milestones must be non-decreasing, but got {milestones}")
        for i, group in enumerate(optimizer.param_groups):
            if "initial_lr" not in group:
                raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}]")
        self._schedulers = list(schedulers)
        self._milestones = milestones
        self.optimizer = optimizer
        _track_step_calls(optimizer)
        self._start_from_initial_lr()
        for _ in range(last_epoch + 1):
            self._advance()

    def _start_from_initial_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._start_fresh()

    def _start_fresh(self) -> None:
        self._restart_first(lambda s: s._start_fresh())

    def _restart_at_milestone(self) -> None:
        self._restart_first(lambda s: s._restart_at_milestone())

    def _restart_first(self, how: Callable[[LRScheduler], None]) -> None:
        """Back to epoch 0: restart the first scheduler with ``how`` (its _start_fresh or _restart_at_milestone)."""
        self.last_epoch = 0
        self._step_count = 1
        active = self._schedulers[bisect_right(self._milestones, 0)]
        how(active)
        self._last_lr = active.get_last_lr()

    def step(self) -> None:  # type: ignore[override]
        r"""Advance one epoch: restart the next scheduler at a milestone, else step the active one
        (warns once if ``optimizer.step()`` was never called)."""
        if self._step_count == 1:
            _warn_if_not_stepped(self.optimizer, stacklevel=2)
        self._advance()

    def _advance(self, epoch: int | None = None) -> None:
        self._step_count += 1
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        active = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            active._restart_at_milestone()
        else:
            active._advance()
        self._last_lr = active.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        state = {k: _plain(v) for k, v in self._state_items().items() if k != "_schedulers"}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    _check_load = ChainedScheduler._check_load
    _load_state = ChainedScheduler._load_state

    def _restore_optimizer(self) -> None:
        self._schedulers[bisect_right(self._milestones, self.last_epoch)]._restore_optimizer()
        LRScheduler._restore_optimizer(self)


# --------------------------------------------------------------------------------------------
# ReduceLROnPlateau
# --------------------------------------------------------------------------------------------
class ReduceLROnPlateau(LRScheduler):
    r"""Reduces each group's rate by ``factor`` when a metric has stopped improving.

    With :math:`b` the best metric so far, a new value :math:`a` improves on it when (mode
    ``'min'``) :math:`a < b(1 - \theta)` (``'rel'``) or :math:`a < b - \theta` (``'abs'``), and
    symmetrically for ``'max'``. After more than ``patience`` epochs without improvement,

    .. math::
        \eta \leftarrow \max(f\,\eta,\ \eta_{\min}) \quad\text{if the change exceeds } \varepsilon,

    then ``cooldown`` epochs pass before bad epochs are counted again.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        mode (str, optional): ``'min'`` or ``'max'`` (default: ``'min'``).
        factor (float, optional): :math:`f < 1` (default: 0.1).
        patience (int, optional): bad epochs tolerated (default: 10).
        threshold (float, optional): :math:`\theta` (default: 1e-4).
        threshold_mode (str, optional): ``'rel'`` or ``'abs'`` (default: ``'rel'``).
        cooldown (int, optional): epochs to wait after a reduction (default: 0).
        min_lr (float or list of float, optional): :math:`\eta_{\min}`, one or one per group
            (default: 0).
        eps (float, optional): smallest change :math:`\varepsilon` applied (default: 1e-8).

    No "step order" warning is given (as in torch). ``step(metrics, epoch)`` with an epoch is
    deprecated (``UserWarning``) and only sets ``last_epoch``.

    Example:
        >>> sched = ReduceLROnPlateau(opt, mode='min', patience=5)
        >>> sched.step(validation_loss)
    """

    def __init__(self, optimizer: Any, mode: Literal["min", "max"] = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4,
                 threshold_mode: Literal["rel", "abs"] = "rel", cooldown: int = 0,
                 min_lr: list[float] | float = 0, eps: float = 1e-8) -> None:
        owner = "ReduceLROnPlateau"
        factor = _real(owner, "factor", factor)
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if factor < 0:
            raise ValueError(f"{owner}: factor must be in [0, 1), but got {factor}")
        _check_optimizer(optimizer)
        if isinstance(min_lr, (list, tuple)) and len(min_lr) != len(optimizer.param_groups):
            raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
        min_lrs = _reals(owner, "min_lr", optimizer, min_lr, 0.0)
        patience = _count(owner, "patience", patience, 0)
        cooldown = _count(owner, "cooldown", cooldown, 0)
        eps = _real(owner, "eps", eps, 0.0)
        threshold = _real(owner, "threshold", threshold, 0.0)
        if mode not in {"min", "max"}:
            raise ValueError("mode " + str(mode) + " is unknown!")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError("threshold mode " + str(threshold_mode) + " is unknown!")
        self.factor = factor
        self.optimizer = optimizer
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lrs[0]
        self.min_lrs = min_lrs
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _group_values(optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        r"""Record one value of the monitored metric and reduce the rates if it has plateaued.

        Args:
            metrics (float): the metric (anything ``float()`` accepts).
            epoch (int, optional): deprecated; sets ``last_epoch`` (default: None).
        """
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = _group_values(self.optimizer, "lr")

    def _reduce_lr(self, epoch: int) -> None:
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The number of param groups in the `optimizer` "
                    f"({len(self.optimizer.param_groups)}) differs from when `ReduceLROnPlateau` "
                    f"was initialized ({len(self.min_lrs)}), usually due to a new param group "
                    "being added to the optimizer. Please modify the `min_lrs` field to match "
                    "the length of the `optimizer` param groups."
                )
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for i, group in enumerate(self.optimizer.param_groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in {"min", "max"}:
            raise ValueError("mode " + str(mode) + " is unknown!")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError("threshold mode " + str(threshold_mode) + " is unknown!")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def get_lr(self) -> list:
        raise NotImplementedError("ReduceLROnPlateau has no get_lr(); use get_last_lr()")

    def _check_load(self, state_dict: Any) -> None:
        super()._check_load(state_dict)
        mode = state_dict.get("mode", self.mode)
        tmode = state_dict.get("threshold_mode", self.threshold_mode)
        if mode not in {"min", "max"} or tmode not in {"rel", "abs"}:
            raise ValueError(f"state_dict has an unknown mode {mode!r} or threshold_mode {tmode!r}")

    def _load_state(self, state_dict: dict) -> None:
        super()._load_state(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold,
                             threshold_mode=self.threshold_mode)


# --------------------------------------------------------------------------------------------
# cyclic schedules
# --------------------------------------------------------------------------------------------
def _set_momentum(group: dict, use_beta1: bool, value: float) -> None:
    if use_beta1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


def _get_momentum(group: dict, use_beta1: bool) -> float:
    return group["betas"][0] if use_beta1 else group["momentum"]


class _MomentumCycler:
    """Momentum bookkeeping shared by CyclicLR and OneCycleLR."""

    cycle_momentum: bool
    use_beta1: bool

    def _init_momentum(self, optimizer: Any, base_momentum: Any, max_momentum: Any,
                       last_epoch: int) -> tuple[list, list]:
        if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
            raise ValueError(
                "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
            )
        self.use_beta1 = "betas" in optimizer.defaults
        base_momentums = _format_param("base_momentum", optimizer, base_momentum)
        max_momentums = _format_param("max_momentum", optimizer, max_momentum)
        if last_epoch == -1:
            for m_mom, b_mom, group in zip(max_momentums, base_momentums, optimizer.param_groups):
                _set_momentum(group, self.use_beta1, m_mom)
                group["max_momentum"] = m_mom
                group["base_momentum"] = b_mom
        return base_momentums, max_momentums

    def _restore_optimizer(self) -> None:
        LRScheduler._restore_optimizer(self)  # type: ignore[arg-type]
        if self.cycle_momentum:
            # get_lr() is a closed form in last_epoch that sets the momenta as a side effect;
            # the rates it returns equal the restored _last_lr and are not used.
            self._lrs_in_step()  # type: ignore[attr-defined]

    def _restart_at_milestone(self) -> None:
        # get_lr is a closed form of last_epoch (as in torch).
        self.last_epoch = 0
        self._step_count = 1
        self._set_lrs(self._lrs_in_step())  # type: ignore[attr-defined]


class CyclicLR(_MomentumCycler, LRScheduler):
    r"""Cycles each group's rate between ``base_lr`` and ``max_lr`` (cyclical learning rates,
    Smith 2017), and the momentum (or Adam's :math:`\beta_1`) inversely between ``max_momentum``
    and ``base_momentum``. Step it after every batch.

    With :math:`S = S_{up} + S_{down}`, :math:`c = \lfloor 1 + t/S \rfloor`,
    :math:`x = 1 + t/S - c` and :math:`r = S_{up}/S`:

    .. math::
        \begin{aligned}
        h &= \begin{cases} x / r & x \le r \\ (x - 1)/(r - 1) & x > r \end{cases}\\
        \eta_t &= \eta_{base} + (\eta_{max} - \eta_{base})\,h\,\sigma(u), \qquad
        \mu_t = \mu_{max} - (\mu_{max} - \mu_{base})\,h\,\sigma(u)
        \end{aligned}

    where :math:`u = c` (``scale_mode='cycle'``) or :math:`u = t` (``'iterations'``) and
    :math:`\sigma` is 1 (``'triangular'``), :math:`2^{1-u}` (``'triangular2'``),
    :math:`\gamma^{u}` (``'exp_range'``) or ``scale_fn``.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        base_lr (float or list): :math:`\eta_{base}`, lower bound, also the initial rate.
        max_lr (float or list): :math:`\eta_{max}`, upper amplitude.
        step_size_up (int, optional): :math:`S_{up}`, steps in the rising half (default: 2000).
        step_size_down (int, optional): :math:`S_{down}` (default: None, meaning ``step_size_up``).
        mode (str, optional): ``'triangular'``, ``'triangular2'`` or ``'exp_range'``; ignored when
            ``scale_fn`` is given (default: ``'triangular'``).
        gamma (float, optional): :math:`\gamma` of ``'exp_range'`` (default: 1.0).
        scale_fn (callable, optional): custom :math:`\sigma(u)`, overriding ``mode`` (default: None).
        scale_mode (str, optional): ``'cycle'`` or ``'iterations'``, used with ``scale_fn``
            (default: ``'cycle'``).
        cycle_momentum (bool, optional): cycle ``'momentum'`` or ``betas[0]`` (default: True).
        base_momentum (float or list, optional): :math:`\mu_{base}` (default: 0.8).
        max_momentum (float or list, optional): :math:`\mu_{max}` (default: 0.9).
        last_epoch (int, optional): index of the last batch (default: -1).

    ``state_dict()`` leaves ``scale_fn`` out as torch does (a callable object's ``__dict__`` is
    saved). Difference from torch: ``load_state_dict`` also restores the cycled momentum in the
    optimizer's groups.

    Example:
        >>> sched = CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=500)
    """

    def __init__(self, optimizer: Any, base_lr: float | list[float], max_lr: float | list[float],
                 step_size_up: int = 2000, step_size_down: int | None = None,
                 mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
                 gamma: float = 1.0, scale_fn: Callable[[float], float] | None = None,
                 scale_mode: Literal["cycle", "iterations"] = "cycle",
                 cycle_momentum: bool = True, base_momentum: float | list[float] = 0.8,
                 max_momentum: float | list[float] = 0.9, last_epoch: int = -1) -> None:
        owner = "CyclicLR"
        _check_resume(optimizer, last_epoch)
        base_lrs = _reals(owner, "base_lr", optimizer, base_lr, 0.0)
        max_lrs = _reals(owner, "max_lr", optimizer, max_lr, 0.0)
        # step_size_up = 0 divides by zero in get_lr; step_size_down = 0 is a sawtooth
        up = _real(owner, "step_size_up", step_size_up, 0.0, low_open=True)
        down = _real(owner, "step_size_down", step_size_down, 0.0) if step_size_down is not None else up
        gamma = _real(owner, "gamma", gamma, 0.0, low_open=True)
        if cycle_momentum:
            _reals(owner, "base_momentum", optimizer, base_momentum, 0.0, 1.0)
            _reals(owner, "max_momentum", optimizer, max_momentum, 0.0, 1.0)
        if mode not in ["triangular", "triangular2", "exp_range"] and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn should be callable, but got {type(scale_fn).__name__}")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        if cycle_momentum and "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
            raise ValueError(
                "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
            )
        self.optimizer = optimizer
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
        self.max_lrs = max_lrs
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.base_momentums, self.max_momentums = self._init_momentum(
                optimizer, base_momentum, max_momentum, last_epoch)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        if self._scale_fn_custom is not None:
            return
        if self.mode == "triangular":
            self.scale_mode = "cycle"
        elif self.mode == "triangular2":
            self.scale_mode = "cycle"
        elif self.mode == "exp_range":
            self.scale_mode = "iterations"

    def scale_fn(self, x: float) -> float:
        r"""The scale :math:`\sigma(x)` of the current mode (or ``scale_fn``)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def _compute_lr(self) -> list:
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        u = cycle if self.scale_mode == "cycle" else self.last_epoch
        lrs = []
        for base_lr, max_lr in zip(self.base_lrs, self.max_lrs):
            base_height = (max_lr - base_lr) * scale_factor
            lrs.append(base_lr + base_height * self.scale_fn(u))
        if self.cycle_momentum:
            for group, b_mom, m_mom in zip(self.optimizer.param_groups, self.base_momentums,
                                           self.max_momentums):
                base_height = (m_mom - b_mom) * scale_factor
                _set_momentum(group, self.use_beta1, m_mom - base_height * self.scale_fn(u))
        return lrs

    def state_dict(self) -> dict[str, Any]:
        state = {k: _plain(v) for k, v in self._state_items().items() if k != "_scale_fn_custom"}
        fn = self._scale_fn_custom
        state["_scale_fn_custom"] = None
        if fn is not None and not isinstance(fn, (types.FunctionType, types.BuiltinFunctionType,
                                                  types.MethodType)):
            state["_scale_fn_custom"] = _plain(dict(getattr(fn, "__dict__", {})))
        return state

    def _load_state(self, state_dict: dict) -> None:
        state = dict(state_dict)
        fn_state = state.pop("_scale_fn_custom", None)
        state.pop("_scale_fn_ref", None)
        LRScheduler._load_state(self, state)
        if fn_state is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(_plain(fn_state))
        self._init_scale_fn()


class OneCycleLR(_MomentumCycler, LRScheduler):
    r"""The 1cycle policy (Smith & Topin 2017): the rate rises from ``max_lr/div_factor`` to
    ``max_lr`` then anneals to ``max_lr/(div_factor*final_div_factor)``, while the momentum (or
    :math:`\beta_1`) moves the opposite way. Step it after every batch, ``total_steps`` times.

    Each phase :math:`k` runs from step :math:`s_{k-1}` to :math:`s_k` and anneals from
    :math:`a_k` to :math:`b_k` with :math:`p = (t - s_{k-1})/(s_k - s_{k-1})`:

    .. math::
        \eta_t = b_k + \tfrac12 (a_k - b_k)(1 + \cos \pi p) \quad(\text{'cos'}),\qquad
        \eta_t = a_k + (b_k - a_k)\,p \quad(\text{'linear'})

    Two phases: :math:`\eta_0 \to \eta_{max}` until :math:`s_0 = \rho T - 1`, then
    :math:`\eta_{max} \to \eta_{min}` until :math:`T - 1` (:math:`\rho` = ``pct_start``,
    :math:`T` = ``total_steps``). With ``three_phase``: up until :math:`\rho T - 1`, down to
    :math:`\eta_0` until :math:`2\rho T - 2`, then to :math:`\eta_{min}` until :math:`T - 1`.
    :math:`\eta_0 = \eta_{max}/d`, :math:`\eta_{min} = \eta_0/d_f`.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        max_lr (float or list): :math:`\eta_{max}` per group.
        total_steps (int, optional): :math:`T` (default: None, then ``epochs * steps_per_epoch``).
        epochs (int, optional): epochs, with ``steps_per_epoch`` (default: None).
        steps_per_epoch (int, optional): steps per epoch (default: None).
        pct_start (float, optional): :math:`\rho`, fraction of the cycle spent rising (default: 0.3).
        anneal_strategy (str, optional): ``'cos'`` or ``'linear'`` (default: ``'cos'``).
        cycle_momentum (bool, optional): cycle ``'momentum'`` or ``betas[0]`` (default: True).
        base_momentum (float or list, optional): lowest momentum (default: 0.85).
        max_momentum (float or list, optional): highest momentum (default: 0.95).
        div_factor (float, optional): :math:`d` (default: 25.0).
        final_div_factor (float, optional): :math:`d_f` (default: 1e4).
        three_phase (bool, optional): use three phases (default: False).
        last_epoch (int, optional): index of the last batch (default: -1).

    Stepping past ``total_steps`` raises ValueError (as in torch). Difference from torch:
    ``load_state_dict`` also restores the cycled momentum in the optimizer's groups.

    Example:
        >>> sched = OneCycleLR(opt, max_lr=0.1, total_steps=1000)
    """

    def __init__(self, optimizer: Any, max_lr: float | list[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: Literal["cos", "linear"] = "cos",
                 cycle_momentum: bool = True, base_momentum: float | list[float] = 0.85,
                 max_momentum: float | list[float] = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        owner = "OneCycleLR"
        _check_resume(optimizer, last_epoch)
        if total_steps is not None:
            if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) \
                    or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            total = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, numbers.Integral) \
                    or steps_per_epoch <= 0:
                raise ValueError(
                    f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}"
                )
            total = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if isinstance(pct_start, bool) or not isinstance(pct_start, numbers.Real) \
                or not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        pct_start = float(pct_start)
        _reals(owner, "max_lr", optimizer, max_lr, 0.0)
        div_factor = _real(owner, "div_factor", div_factor, 0.0, low_open=True)
        final_div_factor = _real(owner, "final_div_factor", final_div_factor, 0.0, low_open=True)
        if cycle_momentum:
            _reals(owner, "base_momentum", optimizer, base_momentum, 0.0, 1.0)
            _reals(owner, "max_momentum", optimizer, max_momentum, 0.0, 1.0)
        # the first phase runs from step 0 to pct_start * total_steps - 1: when that is 0 the
        # first get_lr() divides by zero (torch raises ZeroDivisionError there)
        if float(pct_start * total) - 1 == 0:
            raise ValueError(
                f"{owner}: pct_start * total_steps = {pct_start} * {total} = 1 gives the warm-up "
                "phase zero length; use more steps or another pct_start")
        self.total_steps: int = total
        self._schedule_phases: list[dict[str, Any]]     # end_step and the group keys each phase goes between
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        if cycle_momentum and "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
            raise ValueError(
                "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
            )
        max_lrs = _format_param("max_lr", optimizer, max_lr)
        self.optimizer = optimizer
        if three_phase:
            self._schedule_phases = [
                {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr",
                 "end_lr": "max_lr", "start_momentum": "max_momentum",
                 "end_momentum": "base_momentum"},
                {"end_step": float(2 * pct_start * self.total_steps) - 2, "start_lr": "max_lr",
                 "end_lr": "initial_lr", "start_momentum": "base_momentum",
                 "end_momentum": "max_momentum"},
                {"end_step": self.total_steps - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"},
            ]
        else:
            self._schedule_phases = [
                {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr",
                 "end_lr": "max_lr", "start_momentum": "max_momentum",
                 "end_momentum": "base_momentum"},
                {"end_step": self.total_steps - 1, "start_lr": "max_lr", "end_lr": "min_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
            ]
        self._anneal_func_type: str = anneal_strategy
        if last_epoch == -1:
            for idx, group in enumerate(optimizer.param_groups):
                group["initial_lr"] = max_lrs[idx] / div_factor
                group["max_lr"] = max_lrs[idx]
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self._init_momentum(optimizer, base_momentum, max_momentum, last_epoch)
        super().__init__(optimizer, last_epoch)

    def _anneal_func(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _compute_lr(self) -> list:
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(
                f"Tried to step {step_num} times. The specified number of total steps is "
                f"{self.total_steps}"
            )
        lrs = []
        last = len(self._schedule_phases) - 1
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step_num <= end_step or i == last:
                    pct = (step_num - start_step) / (end_step - start_step)
                    lr = self._anneal_func(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        mom = self._anneal_func(group[phase["start_momentum"]],
                                                group[phase["end_momentum"]], pct)
                    break
                start_step = phase["end_step"]
            lrs.append(lr)
            if self.cycle_momentum:
                _set_momentum(group, self.use_beta1, mom)
        return lrs

    def _advance(self, epoch: int | None = None) -> None:
        # Refuse a step past the end before anything (counters, rates) changes.
        target = self.last_epoch + 1 if epoch is None else epoch
        if target > self.total_steps:
            raise ValueError(
                f"Tried to step {target} times. The specified number of total steps is "
                f"{self.total_steps}"
            )
        super()._advance(epoch)

    def _check_load(self, state_dict: Any) -> None:
        super()._check_load(state_dict)
        if state_dict.get("_anneal_func_type", self._anneal_func_type) not in ("cos", "linear"):
            raise ValueError(f"Unknown _anneal_func_type: {state_dict['_anneal_func_type']!r}")


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017).

    .. math::
        \eta_t = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})\left(1 + \cos\frac{\pi T_{cur}}{T_i}\right)

    :math:`T_{cur}` counts epochs (possibly fractional) since the last restart; a restart happens
    when :math:`T_{cur} \ge T_i`, and then :math:`T_{i+1} = T_{mult}\,T_i`, :math:`T_0` given.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        T_0 (int): epochs until the first restart.
        T_mult (int, optional): growth factor of the period (default: 1).
        eta_min (float, optional): minimum rate (default: 0.0).
        last_epoch (int, optional): index of the last epoch (default: -1).

    ``step(epoch)`` with a (fractional) epoch is supported and not deprecated, as in torch.
    Difference from torch: the first ``step()`` gives the "step order" warning when
    ``optimizer.step()`` was never called (torch never warns for this scheduler).

    Example:
        >>> sched = CosineAnnealingWarmRestarts(opt, T_0=10, T_mult=2)
        >>> for epoch in range(20):
        ...     for i, batch in enumerate(batches):
        ...         train(batch); opt.step()
        ...         sched.step(epoch + i / len(batches))
    """

    def __init__(self, optimizer: Any, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if isinstance(T_0, bool) or not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if isinstance(T_mult, bool) or not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if isinstance(eta_min, bool) or not isinstance(eta_min, numbers.Real):
            raise ValueError(
                f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}"
            )
        eta_min = _real("CosineAnnealingWarmRestarts", "eta_min", eta_min, 0.0)
        self.T_0: int = T_0
        self.T_i: int = T_0
        self.T_mult: int = T_mult
        self.eta_min: float = eta_min
        self.T_cur: float = last_epoch     # fractional after step(epoch) with a float epoch
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list:
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base_lr in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        r"""Advance by one epoch, or jump to ``epoch`` (a float is allowed: fraction of an epoch).

        Args:
            epoch (float, optional): epoch to set, ``>= 0`` (default: None).
        """
        if epoch is not None and epoch < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        if self._step_count == 1:
            _warn_if_not_stepped(self.optimizer, stacklevel=2)
        self._advance(epoch)

    def _advance(self, epoch: float | None = None) -> None:
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._step_count += 1
        self._set_lrs(self._lrs_in_step())

    def _start_fresh(self) -> None:
        self.last_epoch = -1
        self.T_cur = -1
        self.T_i = self.T_0
        self._initial_step()

    def _restart_at_milestone(self) -> None:
        # Closed form at epoch 0 (torch's _update_lr(0) sets last_epoch = 0 and T_cur stays;
        # restarting the cycle is the documented meaning of a milestone).
        self._set_lrs(self.base_lrs)
        self._start_fresh()


class SWALR(LRScheduler):
    r"""Anneals each group's rate to a fixed SWA rate, then keeps it (for stochastic weight
    averaging, Izmailov et al. 2018).

    With :math:`A` = ``anneal_epochs``, :math:`s` the number of steps since construction and
    :math:`\alpha(\tau) = \tau` (``'linear'``) or :math:`\tfrac12(1 - \cos \pi\tau)` (``'cos'``):

    .. math::
        \eta_s = \alpha_s\,\eta_{swa} + (1 - \alpha_s)\,\eta_{start}, \qquad
        \alpha_s = \alpha\bigl(\min(1, s / \max(1, A))\bigr)

    where :math:`\eta_{start}` is the rate the optimizer had when the scheduler was created,
    recovered at every step from the current rate (chainable form, as in torch).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        swa_lr (float or list): :math:`\eta_{swa}`, one or one per group (stored as
            ``group['swa_lr']``).
        anneal_epochs (int, optional): :math:`A \ge 0` (default: 10).
        anneal_strategy (str, optional): ``'cos'`` or ``'linear'`` (default: ``'cos'``).
        last_epoch (int, optional): index of the last epoch (default: -1).

    Difference from torch: ``step(epoch)`` raises ValueError (the schedule counts steps and has
    no closed form in the epoch; torch ignores the value).

    Example:
        >>> swa_sched = SWALR(opt, swa_lr=0.05, anneal_epochs=5, anneal_strategy='linear')
    """

    def __init__(self, optimizer: Any, swa_lr: float | list[float], anneal_epochs: int = 10,
                 anneal_strategy: Literal["cos", "linear"] = "cos", last_epoch: int = -1) -> None:
        _check_resume(optimizer, last_epoch)
        swa_lrs = _reals("SWALR", "swa_lr", optimizer, swa_lr, 0.0)
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        if isinstance(anneal_epochs, bool) or not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        for lr, group in zip(swa_lrs, optimizer.param_groups):
            group["swa_lr"] = lr
        self._anneal_strategy = anneal_strategy
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    def anneal_func(self, t: float) -> float:
        r""":math:`\alpha(\tau)` of the chosen strategy."""
        if self._anneal_strategy == "cos":
            return self._cosine_anneal(t)
        return self._linear_anneal(t)

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _compute_lr(self) -> list:
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        prev_lrs = [self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha)
                    for group in self.optimizer.param_groups]
        t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(t)
        return [group["swa_lr"] * alpha + lr * (1 - alpha)
                for group, lr in zip(self.optimizer.param_groups, prev_lrs)]

    def step(self, epoch: int | None = None) -> None:
        r"""Advance by one step (``epoch`` is refused: this schedule has no closed form).

        Args:
            epoch: must be None (default: None).
        """
        if epoch is not None:
            raise ValueError(
                "SWALR.step() does not take an epoch: the schedule counts steps and has no "
                "closed form; call step() once per epoch"
            )
        if self._step_count == 1:
            _warn_if_not_stepped(self.optimizer, stacklevel=2)
        self._advance()

    def _restart_at_milestone(self) -> None:
        # Anneal from the rate the optimizer has now (what torch does at a milestone).
        self._start_fresh()

    def _check_load(self, state_dict: Any) -> None:
        super()._check_load(state_dict)
        if state_dict.get("_anneal_strategy", self._anneal_strategy) not in ("cos", "linear"):
            raise ValueError(f"Unknown _anneal_strategy: {state_dict['_anneal_strategy']!r}")
