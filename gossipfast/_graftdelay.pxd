# Typed declarations that Cython applies to _graftdelay.py (pure-Python mode, augmenting .pxd).
import cython


cdef double _MAX_FACTOR
cdef double _SHRINK
cdef double _LAG
cdef Py_ssize_t _RECENT_MAX
cdef object OrderedDict


cdef class GraftDelay:
    cdef public double floor
    cdef public double value
    cdef public double cap
    cdef public double shrink_at
    cdef public double grow_at
    cdef public object recent
    cdef public Py_ssize_t early

    @cython.locals(recent=object)
    cpdef grafted(self, tuple key, Py_ssize_t how)

    @cython.locals(how=Py_ssize_t)
    cpdef Py_ssize_t early_graft(self, tuple key, double now) except -1

    @cython.locals(lag=double)
    cpdef lagged(self, double since, double now)

    @cython.locals(d=double)
    cpdef on_time(self, double now)

    cpdef grow(self, double d, double now)
