# Typed declarations that Cython applies to _requests.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._plumtree cimport Plumtree


cdef object OrderedDict


cdef class _Budget:
    cdef public Py_ssize_t missing
    cdef public Py_ssize_t asked
    cdef public double grants
    cdef public double grant_at
    cdef public double resends
    cdef public double resend_at


cpdef _forget(object a)


cdef class Requests:
    cdef public Plumtree pt
    cdef public double ttl
    cdef public dict budgets
    cdef public Py_ssize_t peer_missing_max
    cdef public double graft_rate
    cdef public double answer_rate
    cdef public double answer_burst
    cdef public Py_ssize_t cap
    cdef public object requested
    cdef public object answers

    @cython.locals(b=_Budget)
    cpdef _Budget budget(self, str peer)

    @cython.locals(b=_Budget, t=double)
    cpdef bint grant(self, str peer, double now) except -1

    @cython.locals(b=_Budget, t=double, now=double)
    cpdef _Budget answer_tokens(self, str peer)

    @cython.locals(ans=object, req=object)
    cpdef remember(self, object o, object s, str peer, double now)

    @cython.locals(a=object, b=_Budget)
    cpdef grafted(self, object o, object s, str peer, double now)

    @cython.locals(a=object)
    cpdef bint take_answer(self, object o, object s, str peer) except -1

    @cython.locals(ans=object, req=object, b=_Budget, limit=double)
    cpdef expire(self, double now)
