# Typed declarations that Cython applies to _cache.py (pure-Python mode, augmenting .pxd).
import cython


cdef unsigned long long _MAX_SEQ
cdef unsigned long long _HOT_MASK
cdef Py_ssize_t _MAX_SOURCES


cdef class _Origin:
    cdef object origin
    cdef unsigned long long key
    cdef unsigned long long high
    cdef double seen
    cdef long long holes
    cdef bytearray bits
    cdef _Origin prev
    cdef _Origin next


@cython.locals(st=_Origin)
cdef _Origin _new_origin(
    object origin, unsigned long long key, unsigned long long high, bytearray bits, double now
)


@cython.locals(pos=cython.ulonglong, z=cython.ulonglong, v=cython.uint)
cdef unsigned long long _zeros(
    unsigned char *p, unsigned long long mask, unsigned long long lo, unsigned long long count
) noexcept


@cython.locals(pos=cython.ulonglong, b=cython.uchar)
cdef void _fill(
    unsigned char *p,
    unsigned long long mask,
    unsigned long long lo,
    unsigned long long count,
    bint value,
) noexcept


cdef class SourceBudgets:
    cdef dict _buckets
    cdef Py_ssize_t _burst
    cdef double _rate

    @cython.locals(b=list, tokens=double)
    cpdef bint take(self, object source, double now) except -1

    cdef _prune(self, double now)


cdef class DedupCache:
    cdef list _hot
    cdef dict _map
    cdef unsigned long long _mask
    cdef unsigned long long _window
    cdef Py_ssize_t _max_origins
    cdef Py_ssize_t _ring_bytes
    cdef bytes _ones
    cdef _Origin _root
    cdef double _idle
    cdef Py_ssize_t _half
    cdef SourceBudgets _budgets
    cdef public double now
    cdef public object source
    cdef public Py_ssize_t stale
    cdef public Py_ssize_t refused
    cdef public Py_ssize_t throttled
    cdef public Py_ssize_t rings
    cdef public bint dropped

    @cython.locals(root=_Origin, first=_Origin, prev=_Origin, nxt=_Origin)
    cdef void _touch(self, _Origin st) noexcept

    @cython.locals(st=_Origin)
    cdef _Origin _find(self, object origin, unsigned long long o)

    @cython.locals(root=_Origin, old=_Origin, prev=_Origin)
    cdef bint _evict_idle(self) except -1

    @cython.locals(n=Py_ssize_t)
    cdef bint _admit(self, bint budget) except -1

    cdef void _grow(self, _Origin st) except *

    cdef void _shrink(self, _Origin st) noexcept

    @cython.locals(n=Py_ssize_t, root=_Origin, st=_Origin)
    cpdef Py_ssize_t compact(self) except -1

    @cython.locals(root=_Origin, first=_Origin, st=_Origin)
    cdef bint _create(
        self, object origin, unsigned long long o, unsigned long long high, bint fill, bint budget
    ) except -1

    @cython.locals(
        o=cython.ulonglong,
        s=cython.ulonglong,
        h=cython.ulonglong,
        d=cython.ulonglong,
        pos=cython.ulonglong,
        mask=cython.ulonglong,
        lo=cython.ulonglong,
        b=cython.uchar,
        p="unsigned char *",
        st=_Origin,
        root=_Origin,
        found=_Origin,
    )
    cpdef bint check_and_insert(self, object origin, object seq) except -1

    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, new=Py_ssize_t)
    cpdef Py_ssize_t check_and_insert_many(self, list ids) except -1

    @cython.locals(
        o=cython.ulonglong,
        s=cython.ulonglong,
        h=cython.ulonglong,
        pos=cython.ulonglong,
        p="unsigned char *",
        st=_Origin,
    )
    cpdef bint contains(self, object origin, object seq) except -1

    @cython.locals(
        o=cython.ulonglong,
        s=cython.ulonglong,
        e=cython.ulonglong,
        h=cython.ulonglong,
        pos=cython.ulonglong,
        mask=cython.ulonglong,
        p="unsigned char *",
        st=_Origin,
    )
    cpdef unsigned long long first_missing(
        self, object origin, object first, object last
    ) except? 0xFFFFFFFFFFFFFFFF

    @cython.locals(o=cython.ulonglong, st=_Origin)
    cpdef unsigned long long highest(self, object origin) except? 0xFFFFFFFFFFFFFFFF

    @cython.locals(
        o=cython.ulonglong,
        hi=cython.ulonglong,
        h=cython.ulonglong,
        lo=cython.ulonglong,
        top=cython.ulonglong,
        mask=cython.ulonglong,
        st=_Origin,
    )
    cpdef advance(self, object origin, object high)

    @cython.locals(
        out=list,
        o=cython.ulonglong,
        hi=cython.ulonglong,
        h=cython.ulonglong,
        lo=cython.ulonglong,
        top=cython.ulonglong,
        count=cython.ulonglong,
        n=cython.ulonglong,
        x=cython.ulonglong,
        pos=cython.ulonglong,
        mask=cython.ulonglong,
        got=Py_ssize_t,
        p="unsigned char *",
        st=_Origin,
    )
    cpdef list missing(self, object origin, object high, Py_ssize_t limit)

    @cython.locals(out=list, root=_Origin, st=_Origin)
    cpdef list digest(self, double since=*)


# Entries hold only C numbers and one exact ``bytes``, so Cython leaves the type out of
# the cyclic GC (no tp_traverse): a full collection does not walk every stored payload.
# Decorators such as ``@cython.no_gc`` on a class in an augmenting .pxd are ignored, so
# the field types are what does it (tests/unit/test_cache.py checks the compiled type).
cdef class _Stored:
    cdef unsigned long long origin
    cdef long long seq
    cdef Py_ssize_t hops
    cdef bytes payload
    cdef Py_ssize_t size
    cdef double time


cdef Py_ssize_t _COMPACT_MIN
cdef long long _GAP_MAX


cdef class _Seqs:
    cdef list slots
    cdef long long base
    cdef Py_ssize_t head
    cdef dict extra
    cdef Py_ssize_t count

    @cython.locals(i=cython.longlong, e=_Stored)
    cdef _Stored find(self, long long seq)

    @cython.locals(slots=list, n=Py_ssize_t, i=cython.longlong)
    cdef add(self, long long seq, _Stored e)

    @cython.locals(slots=list, n=Py_ssize_t, i=cython.longlong, h=Py_ssize_t)
    cdef remove(self, long long seq, _Stored e)


cdef class PayloadStore:
    cdef dict _by_origin
    cdef _Seqs _last
    cdef unsigned long long _last_o
    cdef list _fifo
    cdef Py_ssize_t _head
    cdef Py_ssize_t _count
    cdef Py_ssize_t _max_messages
    cdef Py_ssize_t _max_bytes
    cdef double _max_age
    cdef readonly Py_ssize_t nbytes

    @cython.locals(q=_Seqs)
    cdef _Seqs _seqs(self, object origin, unsigned long long o)

    @cython.locals(fifo=list, e=_Stored, q=_Seqs)
    cdef _drop_oldest(self)

    @cython.locals(
        o=cython.ulonglong, q=_Seqs, size=Py_ssize_t, dropped=Py_ssize_t, e=_Stored
    )
    cpdef put(self, object origin, object seq, object hops, object payload, double now)

    @cython.locals(o=cython.ulonglong, s=cython.longlong, q=_Seqs, e=_Stored)
    cpdef object get(self, object origin, object seq)

    @cython.locals(cutoff=double, dropped=Py_ssize_t, fifo=list, e=_Stored)
    cpdef Py_ssize_t expire(self, double now) except -1
