# Typed declarations that Cython applies to _announce.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._plumtree cimport Plumtree


cdef object IHave


cdef class _Lazy:
    cdef public list runs
    cdef public Py_ssize_t ids
    cdef public dict at
    cdef public Py_ssize_t last
    cdef public unsigned long long lo
    cdef public long long ls
    cdef public Py_ssize_t lh


cdef class IHaveQueues:
    cdef public Plumtree pt
    cdef public object timers
    cdef public object t_flush
    cdef public double interval
    cdef public Py_ssize_t batch
    cdef public dict queues
    cdef public bint armed

    @cython.locals(
        a=_Lazy,
        runs=list,
        i=Py_ssize_t,
        j=object,
        oc=cython.ulonglong,
        sc=cython.longlong,
        hc=Py_ssize_t,
    )
    cpdef announce(self, str peer, object o, object s, object h, double now)

    @cython.locals(q=dict, a=_Lazy, pt=Plumtree)
    cpdef flush(self)

    cpdef timer_flush(self, tuple item, double now)
