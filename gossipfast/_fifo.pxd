# Typed declarations that Cython applies to _fifo.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._cache cimport DedupCache


cdef Py_ssize_t _HOLD_MAX
cdef double _HOLD


cdef class FifoDelivery:
    cdef public object timers
    cdef public object on_gap
    cdef public DedupCache dedup
    cdef public dict next_seq
    cdef public Py_ssize_t cap
    cdef public Py_ssize_t next_seq_max
    cdef public dict held
    cdef public Py_ssize_t skipped

    @cython.locals(nxt=object, held=dict)
    cpdef Py_ssize_t deliver(self, list out, object o, object s, object h, bytes payload, double now) except -1

    @cython.locals(dedup=DedupCache, held=dict)
    cpdef forget_next_seqs(self)

    @cython.locals(held=dict, nxt=object, n=Py_ssize_t)
    cpdef Py_ssize_t release(self, list out, object o) except -1

    @cython.locals(held=dict, nxt=object)
    cpdef Py_ssize_t pass_lost(self, list out, object o) except -1

    @cython.locals(held=dict)
    cpdef Py_ssize_t skip_gap(self, list out, object o, double now) except -1
