# cython: language_level=3, boundscheck=False, wraparound=False
"""The boundary between Python and the C kernels.

``TensorTable`` checks every buffer of one parameter group (dtype, C-contiguity, alignment, equal sizes,
writeability, no overlap between a written buffer and any other buffer) and builds the C pointer table with
its fixed work items; it keeps a reference to every array it points into. ``Kernel`` (one per row of the C kernel
table, in ``KERNELS``) packs a hyper-parameter block by field name, releases the GIL, runs the kernel and turns its
status into an exception: one generic call for every elementwise kernel. ``find_overlap`` is the one overlap check
(sorted byte extents, exact test where they meet) every caller uses, and ``StepPlan`` runs a group's repeated step
in one call. These checks are the last guard: the messages users normally see come earlier, from ``fastopt._validate``.
No algorithm lives here.
"""
import os

cimport numpy as cnp
from libc.stdint cimport int64_t, uintptr_t
from libc.stdlib cimport free, malloc, qsort

import numpy as np

cnp.import_array()

cdef int _n_threads = 1
cdef int64_t _GIL_FREE_MIN = 4096  # elements from which a kernel call releases the GIL

PARALLEL_MIN = FO_PARALLEL_MIN


def have_openmp() -> bool:
    """True if the extension was built with OpenMP (otherwise every kernel runs on one thread).

    Example:
        >>> isinstance(fastopt.have_openmp(), bool)
        True
    """
    return fo_have_openmp() != 0


def set_num_threads(int n) -> None:
    """Set how many threads fastopt's kernels may use (at least 1). Results do not depend on it.

    Example:
        >>> old = fastopt.get_num_threads()
        >>> fastopt.set_num_threads(2)
        >>> fastopt.get_num_threads()
        2
        >>> fastopt.set_num_threads(old)
    """
    global _n_threads
    if n < 1:
        raise ValueError(f"number of threads must be at least 1, got {n}")
    _n_threads = n


def get_num_threads() -> int:
    """How many threads fastopt's kernels may use.

    Example:
        >>> fastopt.get_num_threads() >= 1
        True
    """
    return _n_threads


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, fo_max_threads())


_n_threads = _default_threads()


ctypedef struct _interval:
    uintptr_t lo
    uintptr_t hi
    int64_t tensor
    int64_t buf


cdef int _cmp_interval(const void *a, const void *b) noexcept nogil:
    cdef uintptr_t x = (<const _interval *>a).lo
    cdef uintptr_t y = (<const _interval *>b).lo
    return -1 if x < y else (1 if x > y else 0)


ctypedef struct _extent:
    uintptr_t lo
    uintptr_t hi
    int64_t index
    int written


cdef int _cmp_extent(const void *a, const void *b) noexcept nogil:
    cdef uintptr_t x = (<const _extent *>a).lo
    cdef uintptr_t y = (<const _extent *>b).lo
    return -1 if x < y else (1 if x > y else 0)


cdef bint _extent_of(cnp.ndarray a, uintptr_t *lo, uintptr_t *hi):
    """The bytes [lo, hi) that ``a``'s elements span, whatever its strides; False for an empty array."""
    cdef int nd = cnp.PyArray_NDIM(a), k
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef Py_ssize_t low = 0, high = 0, step
    if cnp.PyArray_SIZE(a) == 0:
        return False
    for k in range(nd):
        step = (dims[k] - 1) * strides[k]
        if step < 0:
            low += step
        else:
            high += step
    lo[0] = <uintptr_t>cnp.PyArray_DATA(a) + <uintptr_t>low
    hi[0] = <uintptr_t>cnp.PyArray_DATA(a) + <uintptr_t>high + <uintptr_t>cnp.PyArray_ITEMSIZE(a)
    return True


cdef bint _overlaps_itself(cnp.ndarray a):
    """Whether two elements of ``a`` share bytes (a zero stride, or strides that interleave). Sufficient test first:
    with the axes sorted by |stride|, each stride clears the span of the smaller ones; exact count otherwise."""
    cdef int nd = cnp.PyArray_NDIM(a), k
    cdef Py_ssize_t span = cnp.PyArray_ITEMSIZE(a), st
    if cnp.PyArray_SIZE(a) <= 1:
        return False
    axes = sorted((abs(<Py_ssize_t>cnp.PyArray_STRIDES(a)[k]), <Py_ssize_t>cnp.PyArray_DIMS(a)[k])
                  for k in range(nd) if cnp.PyArray_DIMS(a)[k] > 1)
    for st, dim in axes:
        if st < span:
            break
        span += (dim - 1) * st
    else:
        return False
    offsets = np.zeros((), np.int64)
    for k in range(nd):
        offsets = np.add.outer(offsets, np.arange(cnp.PyArray_DIMS(a)[k], dtype=np.int64) * cnp.PyArray_STRIDES(a)[k])
    offsets = np.unique(offsets.ravel())
    return offsets.size != a.size or bool(np.any(np.diff(offsets) < cnp.PyArray_ITEMSIZE(a)))


def find_overlap(list arrays, list written):
    """The one overlap check: the first conflict among ``arrays`` (ndarrays of any dtype and strides; None entries
    are skipped), or None. ``written[i]`` says the caller writes array i. A conflict is a written array whose
    elements overlap each other (returned as ``(i, i)``), or two arrays sharing a byte where at least one is
    written (``(i, j)``, i before j in the list). The byte extents are sorted (O(n log n)) and the exact test
    (``np.shares_memory``) runs only where two extents intersect.
    """
    cdef int64_t n = len(arrays), m = 0, i, j, k
    cdef _extent *ext
    cdef uintptr_t *reach
    cdef uintptr_t lo, hi
    cdef cnp.ndarray a
    if len(written) != n:
        raise ValueError(f"got {n} arrays but {len(written)} written flags")
    if n == 0:
        return None
    ext = <_extent *>malloc(n * sizeof(_extent))
    reach = <uintptr_t *>malloc(n * sizeof(uintptr_t))
    if ext == NULL or reach == NULL:
        free(ext)
        free(reach)
        raise MemoryError()
    try:
        for i in range(n):
            arr = arrays[i]
            if arr is None:
                continue
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"array {i} must be a numpy.ndarray, got {type(arr).__name__}")
            a = <cnp.ndarray>arr
            if not _extent_of(a, &lo, &hi):
                continue
            if written[i] and not (cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_IS_F_CONTIGUOUS(a)) \
                    and _overlaps_itself(a):
                return (i, i)
            ext[m].lo = lo
            ext[m].hi = hi
            ext[m].index = i
            ext[m].written = 1 if written[i] else 0
            m += 1
        qsort(ext, m, sizeof(_extent), _cmp_extent)
        best = None
        for j in range(m):
            reach[j] = ext[j].hi if j == 0 or ext[j].hi > reach[j - 1] else reach[j - 1]
            k = j - 1
            while k >= 0 and reach[k] > ext[j].lo:  # reach[k]: the furthest end among extents 0..k
                if ext[k].hi > ext[j].lo and (ext[k].written or ext[j].written):
                    x, y = sorted((ext[k].index, ext[j].index))
                    if (best is None or (y, x) < (best[1], best[0])) and np.shares_memory(arrays[x], arrays[y]):
                        best = (x, y)
                k -= 1
        return best
    finally:
        free(ext)
        free(reach)


cdef class TensorTable:
    """C pointer table over ``rows``: one row per tensor, ``n_bufs`` arrays (or None) per row.

    Args:
        rows: list of lists of C-contiguous arrays of one dtype; row i, position k is buffer k of tensor i.
            Position 0 is the parameter; all arrays of a row have its size.
        names: name of each buffer position, for messages.
        readonly: positions that the kernel only reads (the gradient); every other array must be writeable.
        n_scalars: per-tensor float64 values the kernel reads (``self.scalars``, shape (n_tensors, n_scalars)).
        dtypes: optional, per position: the dtype its arrays must have (None: the parameter's, the default for
            every position). Mixed-dtype tables are the low-precision kernels' (uint8 codes, uint16 bfloat16 bits).
        lengths: optional, per position: 0 (the default) for the parameter's element count, ``-B`` for one element
            per block of B (ceil(size / B): a per-block absmax), ``k > 0`` for exactly k elements (a code map).
    """
    cdef fo_tensor_list lst
    cdef void **bufs
    cdef int64_t *sizes
    cdef fo_work *work
    cdef _interval *written
    cdef int64_t n_written
    cdef list _rows
    cdef tuple _names
    cdef tuple _readonly
    cdef tuple _dtypes
    cdef tuple _lengths
    cdef readonly object scalars
    cdef readonly int type_num
    cdef readonly int64_t n_tensors
    cdef readonly int64_t total

    def __cinit__(self, list rows, tuple names, tuple readonly, int n_scalars, tuple dtypes=None,
                  tuple lengths=None):
        cdef int64_t n = len(rows), nb = len(names), i, k, w
        cdef cnp.ndarray a
        self.bufs = NULL
        self.sizes = NULL
        self.work = NULL
        self.written = NULL
        if len(readonly) != nb:
            raise ValueError(f"got {nb} buffer names but {len(readonly)} read-only flags")
        if (dtypes is not None and len(dtypes) != nb) or (lengths is not None and len(lengths) != nb):
            raise ValueError(f"got {nb} buffer names but dtypes/lengths of another length")
        self._dtypes = tuple(None if d is None else np.dtype(d).num for d in dtypes) if dtypes is not None else None
        self._lengths = tuple(int(x) for x in lengths) if lengths is not None else None
        self._rows = [list(r) for r in rows]  # our own lists: what keeps the arrays alive cannot change under us
        rows = self._rows
        self._names = names
        self._readonly = readonly
        self.n_tensors = n
        self.type_num = -1
        self.total = 0
        self.scalars = np.zeros((n, max(n_scalars, 1)), dtype=np.float64)
        self.bufs = <void **>malloc(max(n * nb, 1) * sizeof(void *))
        self.sizes = <int64_t *>malloc(max(n, 1) * sizeof(int64_t))
        self.written = <_interval *>malloc(max(n * nb, 1) * sizeof(_interval))
        if self.bufs == NULL or self.sizes == NULL or self.written == NULL:
            raise MemoryError()
        self.n_written = 0
        for i in range(n):
            row = rows[i]
            if len(row) != nb:
                raise ValueError(f"tensor {i}: expected {nb} buffers, got {len(row)}")
            first = row[0]
            if not isinstance(first, np.ndarray):
                raise TypeError(f"tensor {i}: '{names[0]}' must be a numpy.ndarray")
            if self.type_num < 0:
                self.type_num = cnp.PyArray_TYPE(<cnp.ndarray>first)
                if self.type_num != cnp.NPY_FLOAT32 and self.type_num != cnp.NPY_FLOAT64:
                    raise TypeError(f"tensor {i}: dtype must be float32 or float64, got {first.dtype}")
            self.sizes[i] = cnp.PyArray_SIZE(<cnp.ndarray>first)
            self.total += self.sizes[i]
            for k in range(nb):
                arr = row[k]
                if arr is None:
                    self.bufs[i * nb + k] = NULL
                    continue
                self.bufs[i * nb + k] = self._check(arr, i, k)
                if not readonly[k]:
                    self._add_written(<cnp.ndarray>arr, i, k)
        self._check_overlaps()
        self.lst.n_work = fo_count_work(self.sizes, n, FO_CHUNK)
        self.work = <fo_work *>malloc(max(self.lst.n_work, 1) * sizeof(fo_work))
        if self.work == NULL:
            raise MemoryError()
        fo_plan_work(self.sizes, n, FO_CHUNK, self.work)
        self.lst.n_tensors = n
        self.lst.n_bufs = nb
        self.lst.n_scalars = self.scalars.shape[1]
        self.lst.bufs = self.bufs
        self.lst.sizes = self.sizes
        self.lst.scalars = <const double *>cnp.PyArray_DATA(<cnp.ndarray>self.scalars)
        self.lst.work = self.work
        self.lst.total = self.total
        self.lst.n_threads = 1

    def __dealloc__(self):
        free(self.bufs)
        free(self.sizes)
        free(self.work)
        free(self.written)

    cdef void *_check(self, object arr, int64_t i, int64_t k) except NULL:
        cdef cnp.ndarray a
        where = f"tensor {i}: '{self._names[k]}'"
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{where} must be a numpy.ndarray, got {type(arr).__name__}")
        a = <cnp.ndarray>arr
        cdef int want_type = self.type_num
        cdef int64_t want_size = self.sizes[i], rule = 0
        if self._dtypes is not None and self._dtypes[k] is not None:
            want_type = self._dtypes[k]
        if self._lengths is not None:
            rule = self._lengths[k]
            if rule < 0:
                want_size = (self.sizes[i] + (-rule) - 1) // (-rule)
            elif rule > 0:
                want_size = rule
        if cnp.PyArray_TYPE(a) != want_type:
            raise TypeError(f"{where} has dtype {a.dtype}, expected {np.dtype(want_type)}")
        if cnp.PyArray_SIZE(a) != want_size:
            raise ValueError(f"{where} has {a.size} elements, expected {want_size}")
        if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)):
            raise ValueError(f"{where} must be C-contiguous and aligned")
        if not self._readonly[k] and not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError(f"{where} is read-only")
        if want_size == 0:
            return <void *>1  # never dereferenced: the kernel skips empty tensors
        return cnp.PyArray_DATA(a)

    cdef int _add_written(self, cnp.ndarray a, int64_t i, int64_t k) except -1:
        cdef uintptr_t lo = <uintptr_t>cnp.PyArray_DATA(a)
        if cnp.PyArray_NBYTES(a) == 0:
            return 0
        self.written[self.n_written].lo = lo
        self.written[self.n_written].hi = lo + <uintptr_t>cnp.PyArray_NBYTES(a)
        self.written[self.n_written].tensor = i
        self.written[self.n_written].buf = k
        self.n_written += 1
        return 0

    cdef int _check_overlaps(self) except -1:
        """No two written buffers overlap, and no read-only buffer overlaps a written one."""
        cdef int64_t j, i, k, nb = len(self._names)
        qsort(self.written, self.n_written, sizeof(_interval), _cmp_interval)
        for j in range(1, self.n_written):
            if self.written[j].lo < self.written[j - 1].hi:
                raise ValueError(self._overlap_msg(j - 1, self.written[j].tensor, self.written[j].buf))
        for i in range(self.n_tensors):
            for k in range(nb):
                if self._readonly[k] and self._rows[i][k] is not None:
                    self._check_readonly(<cnp.ndarray>self._rows[i][k], i, k)
        return 0

    cdef int _check_readonly(self, cnp.ndarray a, int64_t i, int64_t k) except -1:
        cdef uintptr_t lo = <uintptr_t>cnp.PyArray_DATA(a)
        cdef uintptr_t hi = lo + <uintptr_t>cnp.PyArray_NBYTES(a)
        cdef int64_t a_ = 0, b_ = self.n_written, m
        if hi == lo:
            return 0
        # the last written interval starting below hi is the only candidate for overlap
        while a_ < b_:
            m = (a_ + b_) // 2
            if self.written[m].lo < hi:
                a_ = m + 1
            else:
                b_ = m
        if a_ > 0 and self.written[a_ - 1].hi > lo:
            raise ValueError(self._overlap_msg(a_ - 1, i, k))
        return 0

    def _overlap_msg(self, int64_t j, int64_t i, int64_t k):
        return (f"tensor {i}: '{self._names[k]}' shares memory with tensor {self.written[j].tensor}: "
                f"'{self._names[self.written[j].buf]}'; buffers a kernel writes must not overlap any other")

    def set_grads(self, list grads, int64_t k=1) -> int:
        """Swap the read-only buffer k of every tensor for ``grads[i]`` after checking each.

        Returns -1 on success, or the index of the first array that fails the checks (nothing is changed then).
        """
        cdef int64_t i, n = self.n_tensors, nb = len(self._names)
        cdef cnp.ndarray a
        cdef uintptr_t lo, hi
        if not 0 <= k < nb or not self._readonly[k]:
            raise IndexError(f"buffer {k} is not a read-only position of this table")
        if len(grads) != n:
            raise ValueError(f"got {len(grads)} arrays for {n} tensors")
        for i in range(n):
            g = grads[i]
            if type(g) is not np.ndarray:
                return i
            a = <cnp.ndarray>g
            if (cnp.PyArray_TYPE(a) != self.type_num or cnp.PyArray_SIZE(a) != self.sizes[i]
                    or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)):
                return i
            try:
                self._check_readonly(a, i, k)
            except ValueError:
                return i
        for i in range(n):
            a = <cnp.ndarray>grads[i]
            self._rows[i][k] = a
            self.bufs[i * nb + k] = cnp.PyArray_DATA(a) if self.sizes[i] > 0 else <void *>1
        return -1

    cdef bint _same_buffer(self, object arr, int64_t i, int64_t k, cnp.ndarray data):
        """``arr`` still has the dtype, size, shape (``data``'s), layout and, if written, the address and
        writeability it had when the table was built (arrays can be reshaped or made read-only in place)."""
        cdef cnp.ndarray a = <cnp.ndarray>arr
        cdef int nd = cnp.PyArray_NDIM(a), j
        if (cnp.PyArray_TYPE(a) != self.type_num or cnp.PyArray_SIZE(a) != self.sizes[i]
                or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)
                or nd != cnp.PyArray_NDIM(data)):
            return False
        for j in range(nd):
            if cnp.PyArray_DIMS(a)[j] != cnp.PyArray_DIMS(data)[j]:
                return False
        if not self._readonly[k]:
            if not cnp.PyArray_ISWRITEABLE(a):
                return False
            if self.sizes[i] > 0 and cnp.PyArray_DATA(a) != self.bufs[i * len(self._names) + k]:
                return False
        return True

    cpdef object rebind(self, list params, object state, bint has_step):
        """Fast path of a repeated step: check that ``params`` (objects with ``.data`` and ``.grad``) and their
        ``state[p]`` dicts still hold exactly the arrays this table was built from, unchanged in dtype, shape,
        layout and writeability, that every gradient passes the checks of ``set_grads``, and (``has_step``)
        that every ``state[p]['step']`` is a non-negative int. Then point the table at the gradients and return
        ``(states, steps, grads)``; return None, changing nothing, if anything differs (the caller takes the full path).
        """
        cdef int64_t i, k, n = self.n_tensors, nb = len(self._names)
        cdef cnp.ndarray d
        cdef dict sd, st
        cdef list row
        if len(params) != n or not isinstance(state, dict):
            return None
        sd = <dict>state  # a defaultdict: plain lookups below never insert
        states = []
        steps = []
        grads = []
        for i in range(n):
            p = params[i]
            row = <list>self._rows[i]
            data = p.data
            if data is not row[0]:
                return None
            d = <cnp.ndarray>data
            if not self._same_buffer(data, i, 0, d):
                return None
            g = p.grad
            if type(g) is not np.ndarray or not self._same_buffer(g, i, 1, d):
                return None
            s = sd.get(p)
            if type(s) is not dict:
                return None
            st = <dict>s
            for k in range(2, nb):
                buf = row[k]
                if buf is None:
                    continue
                if st.get(self._names[k]) is not buf or not self._same_buffer(buf, i, k, d):
                    return None
            if has_step:
                s = st.get("step")
                if type(s) is not int or s < 0:
                    return None
                steps.append(s)
            states.append(st)
            grads.append(g)
        try:
            for i in range(n):
                self._check_readonly(<cnp.ndarray>grads[i], i, 1)
        except ValueError:
            return None
        for i in range(n):
            d = <cnp.ndarray>grads[i]
            row = self._rows[i]
            row[1] = d
            self.bufs[i * nb + 1] = cnp.PyArray_DATA(d) if self.sizes[i] > 0 else <void *>1
        return states, steps, grads

    cpdef release(self, int64_t k=1):
        """Drop the references held at position k (the gradients) once a step is done; the pointers become NULL,
        so a kernel run before the next ``set_grads``/``rebind`` fails its check instead of reading freed memory."""
        cdef int64_t i, nb = len(self._names)
        if not 0 <= k < nb or not self._readonly[k]:
            raise IndexError(f"buffer {k} is not a read-only position of this table")
        for i in range(self.n_tensors):
            self._rows[i][k] = None
            self.bufs[i * nb + k] = NULL


cdef object _MISSING = object()


cdef class StepPlan:
    """The repeated step of one group, in one call (``FusedOptimizer``'s fast path).

    Built after a full step validated the group; holds its table (params, state buffers), the group's options
    as they were then (values and types; tuples by identity), the packed hyper block and how to get the per-tensor
    scalars. ``bind`` confirms that the group and its arrays are unchanged and that every gradient is the array
    validated last time or passes the same checks (identity, shape, dtype, flags, no overlap with what the table
    writes); ``run`` then advances the step counts, fills the scalars and runs the kernel without the GIL. Either
    returns False and changes nothing visible when the full path must run instead. ``step`` is both, for a
    single group.

    Args:
        table: the group's ``TensorTable`` (its gradients released).
        kernel: the table kernel.
        hyper: its packed hyper-parameter block.
        params: the group's parameters.
        options: the group's option values and their keys (the group must still hold equal values of equal types).
        has_step: whether each parameter's state counts steps.
        at_step: ``at_step(t)`` giving every scalar for step count t (used when the group's tensors share a count),
            or None.
        fill: ``fill(scalars, steps)`` writing the scalars for per-tensor counts (the general case), or None if the
            scalars do not change between steps (the caller filled them once).
    """
    cdef TensorTable table
    cdef Kernel kernel
    cdef bytes hyper
    cdef list params
    cdef tuple keys
    cdef tuple values
    cdef tuple types
    cdef bint has_step
    cdef object at_step
    cdef object fill
    cdef list states
    cdef list steps
    cdef readonly list grads

    def __init__(self, TensorTable table, Kernel kernel, bytes hyper, list params, tuple keys, tuple values,
                 bint has_step, object at_step, object fill):
        self.table, self.kernel, self.hyper = table, kernel, hyper
        self.params, self.keys, self.values = list(params), keys, values
        self.types = tuple(type(v) for v in values)
        self.has_step, self.at_step, self.fill = has_step, at_step, fill
        self.states = self.steps = self.grads = None

    cdef bint _same_options(self, dict group):
        cdef Py_ssize_t i, n = len(self.keys)
        cdef list ps
        g = group.get("params")
        if type(g) is not list:
            return False
        ps = <list>g
        if len(ps) != len(self.params):
            return False
        for i in range(len(ps)):
            if ps[i] is not self.params[i]:
                return False
        for i in range(n):
            v = group.get(self.keys[i], _MISSING)
            w = self.values[i]
            if v is w:
                continue
            if type(v) is not self.types[i] or type(v) is tuple or not (v == w):
                return False
        return True

    cpdef bint bind(self, dict group, object state):
        """Check the group and its arrays (see the class docstring) and point the table at the gradients."""
        if not self._same_options(group):
            return False
        got = self.table.rebind(self.params, state, self.has_step)
        if got is None:
            return False
        self.states, self.steps, self.grads = got
        return True

    cpdef bint run(self) except -1:
        """Advance the step counts, fill the scalars, run the kernel (without the GIL), drop the gradients."""
        cdef Py_ssize_t i, n = len(self.states)
        cdef dict st
        cdef int64_t t0, k
        cdef bint same = True
        cdef list steps = self.steps
        if self.has_step:
            for i in range(n):
                t = <object>steps[i] + 1
                steps[i] = t
                st = <dict>self.states[i]
                st["step"] = t
            for i in range(1, n):
                if steps[i] != steps[0]:
                    same = False
                    break
            if same and n > 0 and self.at_step is not None:
                fill_columns(<cnp.ndarray>self.table.scalars, self.at_step(steps[0]))
            elif self.fill is not None:
                self.fill(self.table.scalars, steps)
        try:
            self.kernel._run(self.table, self.hyper)
        finally:
            self.table.release(1)
            self.states = self.steps = self.grads = None
        return True

    def step(self, dict group, object state) -> bool:
        """``bind`` then ``run``: the whole repeated step of a one-group optimizer in one call."""
        if not self.bind(group, state):
            return False
        return self.run()


cpdef fill_columns(cnp.ndarray scalars, tuple values):
    """Set column k of ``scalars`` (a writeable C-contiguous float64 2-D array, e.g. ``TensorTable.scalars``)
    to ``values[k]`` in every row: the per-step scalars of a group whose tensors share a step count, without
    NumPy's indexing overhead (which dominates a tiny model's step)."""
    cdef int64_t i, k, rows, cols, nv = len(values)
    cdef double *d
    cdef double v
    if (cnp.PyArray_TYPE(scalars) != cnp.NPY_FLOAT64 or cnp.PyArray_NDIM(scalars) != 2
            or not cnp.PyArray_IS_C_CONTIGUOUS(scalars) or not cnp.PyArray_ISWRITEABLE(scalars)):
        raise ValueError("scalars must be a writeable C-contiguous 2-D float64 array")
    rows = cnp.PyArray_DIMS(scalars)[0]
    cols = cnp.PyArray_DIMS(scalars)[1]
    if nv > cols:
        raise ValueError(f"got {nv} values for {cols} columns")
    d = <double *>cnp.PyArray_DATA(scalars)
    for k in range(nv):
        v = values[k]
        for i in range(rows):
            d[i * cols + k] = v


cdef _raise(int rc, str kernel):
    if rc == FO_ERR_NULL:
        raise RuntimeError(f"{kernel}: a required buffer is missing")
    if rc == FO_ERR_LAYOUT:
        raise RuntimeError(f"{kernel}: malformed tensor table")
    raise RuntimeError(f"{kernel}: kernel failed with status {rc}")


cdef class Kernel:
    """One row of the C kernel table (``fo_kernels`` in csrc/kernel_table.c, generated from ``FO_KERNELS``).

    ``fields`` are the names of its hyper-parameter struct's fields in the struct's order; ``pack`` builds that
    struct from a mapping by name, and calling the kernel runs it over a ``TensorTable`` with such a block. This is
    the one generic call every optimizer, Muon, SparseAdam, SWA and the benchmark probe go through.
    """
    cdef const fo_kernel_info *info
    cdef readonly str name
    cdef readonly tuple fields
    cdef readonly tuple kinds
    cdef readonly int64_t n_bufs
    cdef readonly int64_t n_scalars
    cdef readonly Py_ssize_t hyper_size

    def __repr__(self):
        return f"<fastopt kernel {self.name}{self.fields}>"

    def pack(self, values) -> bytes:
        """The kernel's hyper-parameter struct, its fields filled by name from ``values`` (a mapping with exactly
        these keys): doubles from real numbers, ints from bools or ints. ValueError/TypeError otherwise."""
        cdef bytearray buf
        cdef char *base
        cdef const fo_field *f
        cdef int64_t k
        if len(values) != len(self.fields) or any(name not in values for name in self.fields):
            missing = [n for n in self.fields if n not in values]
            extra = sorted(str(n) for n in values if n not in self.fields)
            raise ValueError(f"kernel {self.name}: hyper-parameters must be exactly {self.fields}; "
                             f"missing {missing}, unknown {extra}")
        buf = bytearray(self.hyper_size)
        base = buf
        for k in range(self.info.n_fields):
            f = &self.info.fields[k]
            v = values[self.fields[k]]
            if f.kind == FO_FIELD_DOUBLE:
                (<double *>(base + f.offset))[0] = <double>float(v)
            else:
                if not isinstance(v, (bool, int, np.bool_, np.integer)):
                    raise TypeError(f"kernel {self.name}: field '{self.fields[k]}' takes a bool or an int, "
                                    f"got {type(v).__name__}")
                (<int *>(base + f.offset))[0] = <int>int(v)
        return bytes(buf)

    def __call__(self, TensorTable t, bytes hyper) -> None:
        """Run the kernel over ``t`` with the block ``hyper`` (from ``pack``), without the GIL. The table keeps a
        reference to every array it points into, and ``hyper`` is held by this call, for the whole run."""
        self._run(t, hyper)

    cdef int _run(self, TensorTable t, bytes hyper) except -1:
        cdef int rc
        cdef const char *h
        cdef fo_kernel_fn fn
        if len(hyper) != self.hyper_size:
            raise ValueError(f"kernel {self.name}: hyper block of {len(hyper)} bytes, expected {self.hyper_size}")
        if t.type_num == cnp.NPY_FLOAT32:
            fn = self.info.f32
        elif t.type_num == cnp.NPY_FLOAT64 or t.n_tensors == 0:
            fn = self.info.f64
        else:
            raise TypeError(f"kernel {self.name}: table dtype must be float32 or float64")
        h = hyper
        t.lst.n_threads = _n_threads
        if t.total < _GIL_FREE_MIN:  # a few microseconds at most: releasing the GIL would cost a good part of it
            rc = fn(&t.lst, <const void *>h)
        else:
            with nogil:
                rc = fn(&t.lst, <const void *>h)
        if rc == FO_ERR_ARG:
            raise ValueError(f"{self.name}: the kernel rejected its hyper-parameters")
        if rc != FO_OK:
            _raise(rc, self.name)
        return 0


cdef Kernel _kernel_row(int64_t i):
    cdef Kernel k = Kernel.__new__(Kernel)
    cdef const fo_kernel_info *info = &fo_kernels[i]
    k.info = info
    k.name = info.name.decode()
    k.fields = tuple(info.fields[j].name.decode() for j in range(info.n_fields))
    k.kinds = tuple("double" if info.fields[j].kind == FO_FIELD_DOUBLE else "int" for j in range(info.n_fields))
    k.n_bufs = info.n_bufs
    k.n_scalars = info.n_scalars
    k.hyper_size = info.hyper_size
    return k


KERNELS = {k.name: k for k in (_kernel_row(i) for i in range(fo_n_kernels))}
"""Every kernel of the C table, by name."""

AVG_SWA = FO_AVG_SWA
AVG_LERP = FO_AVG_LERP
AVG_EMA = FO_AVG_EMA


def probe(TensorTable t, int n_state, double scale=1.0) -> None:
    """Run the same-traffic probe over ``t``: buffers param (INOUT), grad (IN), then ``n_state`` INOUT buffers;
    each written element b becomes ``b + scale * grad``. Threads and work items as the optimizer kernels."""
    KERNELS["probe"](t, KERNELS["probe"].pack({"n_state": n_state, "scale": scale}))


def isa() -> str:
    """The instruction set the kernels use on this CPU: 'avx512', 'avx2' or 'baseline'."""
    return ("baseline", "avx2", "avx512")[fo_isa()]


include "_lbfgs.pxi"
include "_clip.pxi"
include "_adafactor.pxi"
include "_lowp.pxi"

