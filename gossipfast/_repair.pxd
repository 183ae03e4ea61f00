# Typed declarations that Cython applies to _repair.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._hyparview cimport HyParView


cdef class Repair:
    cdef public HyParView hv
    cdef public bint armed
    cdef public Py_ssize_t backoff
    cdef public bint changed
    cdef public Py_ssize_t refusals
    cdef public bint stuck
    cdef public double empty_since
    cdef public Py_ssize_t graveyard_max
    cdef public bint reconnect_armed
    cdef public dict heard
    cdef Py_ssize_t heard_max

    cpdef linked(self)

    cpdef lost(self, object now)

    cpdef refused(self, object now)

    @cython.locals(h=dict)
    cpdef hear(self, object peer)

    @cython.locals(hv=HyParView)
    cpdef arm(self, object now)

    @cython.locals(hv=HyParView, stuck=bint)
    cpdef run(self, object now)

    @cython.locals(hv=HyParView, h=dict, keys=list)
    cpdef join_heard(self)

    @cython.locals(hv=HyParView, targets=list, failed=list, h=dict, keys=list)
    cpdef rejoin(self, object now)

    @cython.locals(g=dict, keys=list)
    cpdef bury(self, object peer, object now)

    @cython.locals(g=dict)
    cpdef alive(self, object peer)

    @cython.locals(hv=HyParView)
    cpdef arm_reconnect(self, object now)

    @cython.locals(hv=HyParView, g=dict, keys=list, nodes=list)
    cpdef reconnect(self, object now)
