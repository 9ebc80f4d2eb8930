# The repeated step of an optimizer that runs Python between its kernel calls (included by _kernels.pyx after
# StepPlan and StepPlans, whose checks it reuses): Prodigy's two passes with the d estimate between them.

cimport cython


@cython.auto_pickle(False)  # holds tables of live arrays: never pickled (Prodigy's __getstate__ drops it)
cdef class PassPlan:
    """The repeated step of an optimizer whose step is several kernel calls per table with Python between them
    (Prodigy: a reduction, the d estimate, the update), with every per-tensor check in C.

    Made after a full step validated every group, with one ``StepPlan`` per group (each group one table; the
    plans' option keys may be empty: the group dicts are checked here). ``run`` confirms, before anything is
    written, that the optimizer still has the same ``param_groups`` list holding the same group dicts with the
    same keys and the very same values as the last step left them (the values that step wrote, such as Prodigy's
    d, included), then binds every plan (each checks, in C, its group's parameters, ``.data`` arrays, state dicts
    and state arrays, and that each gradient passes its table's checks; see ``StepPlan``) and checks every
    gradient against what any group's table writes. Only then does it call ``passes(items)`` with the bound
    tables; if that returns True the step counts advance by one (as the full path's). Any failed check returns
    False with nothing changed, and the full path runs (and names the problem).

    Args:
        plans: one ``StepPlan`` per group, in group order, made with ``has_step=True``.
        groups: the optimizer's ``param_groups`` list (the same object must be passed to ``run``).
        items: per group, the tuple ``passes`` receives for it (Prodigy: group, table, hyper block, partials);
            each plan's table must be its item's.
        pre_hooks, post_hooks: the optimizer's hook dicts, kept with the plans (the caller runs the hooks).
    """
    cdef readonly StepPlans plans
    # repeated steps run (what the fast-path tests assert by)
    cdef readonly int64_t runs
    cdef list _groups
    cdef list _items
    cdef list _gkeys  # per group: its keys and its values, in order, after the last step
    cdef list _gvals

    def __init__(self, list plans, list groups, list items, object pre_hooks, object post_hooks):
        cdef StepPlan p
        if len(plans) != len(groups) or len(items) != len(groups):
            raise ValueError(f"got {len(plans)} plans and {len(items)} items for {len(groups)} groups")
        for p in plans:
            if not p.has_step:
                raise ValueError("PassPlan's plans must count steps")
        self.plans = StepPlans(plans, pre_hooks, post_hooks)
        self._groups, self._items, self.runs = groups, list(items), 0
        self._snapshot()

    cdef int _snapshot(self) except -1:
        self._gkeys = [list(<dict>g) for g in self._groups]
        self._gvals = [list((<dict>g).values()) for g in self._groups]
        return 0

    cdef bint _same_groups(self, list groups):
        """Every group dict holds the keys and the very values it held after the last step."""
        cdef Py_ssize_t gi, pos, j
        cdef PyObject *key
        cdef PyObject *val
        cdef list keys, vals
        if groups is not self._groups or len(groups) != len(self._gkeys):
            return False
        for gi in range(len(groups)):
            g = <object>PyList_GET_ITEM(groups, gi)
            keys = <list>PyList_GET_ITEM(self._gkeys, gi)
            vals = <list>PyList_GET_ITEM(self._gvals, gi)
            if type(g) is not dict or len(<dict>g) != len(keys):
                return False
            pos = j = 0
            while PyDict_Next(<dict>g, &pos, &key, &val):
                if key != PyList_GET_ITEM(keys, j) or val != PyList_GET_ITEM(vals, j):
                    return False
                j += 1
        return True

    cdef int _release(self, Py_ssize_t n) except -1:
        """Unbind the first n plans (their tables drop the gradients)."""
        cdef Py_ssize_t g
        for g in range(n):
            (<StepPlan>self.plans.plans[g])._unbind()
        return 0

    cdef int _bind_all(self, list groups, dict state) except -1:
        """Bind every plan, each gradient also checked against every table's written bytes: 1, or 0 unbound."""
        cdef Py_ssize_t g, n = len(self.plans.plans)
        cdef int64_t i
        cdef StepPlan p
        for g in range(n):
            p = <StepPlan>self.plans.plans[g]
            if not p._bind(<dict>PyList_GET_ITEM(groups, g), state):
                self._release(g)
                return 0
            if n == 1:  # the table checked its own
                continue
            for i in range(p.table.n_tensors):
                if _hit(self.plans.written, self.plans.n_written, <cnp.ndarray>p._grad(i)) >= 0:
                    self._release(g + 1)
                    return 0
        return 1

    cdef int _count_steps(self) except -1:
        """Each tensor's state 'step' one past the count its plan's bind read."""
        cdef Py_ssize_t g
        cdef int64_t i
        cdef StepPlan p
        for g in range(len(self.plans.plans)):
            p = <StepPlan>self.plans.plans[g]
            for i in range(p.table.n_tensors):
                (<dict>PyList_GET_ITEM(p._states, i))["step"] = p._steps[i] + 1
        return 0

    def run(self, list groups, object state, object passes) -> bool:
        """The repeated step (see the class docstring): True if it ran, False with nothing changed."""
        if not isinstance(state, dict) or not self._same_groups(groups):
            return False
        if not self._bind_all(groups, <dict>state):
            return False
        try:
            if passes(self._items):
                self._count_steps()
        finally:
            self._release(len(self.plans.plans))
        self._snapshot()
        self.runs += 1
        return True
