# Typed declarations that Cython applies to _peers.py (pure-Python mode, augmenting .pxd).
import cython


cdef Py_ssize_t _TRIES


@cython.locals(r=double, i=Py_ssize_t)
cdef Py_ssize_t _below(object rng, Py_ssize_t n) except -1


cdef class PeerSet:
    cdef Py_ssize_t _capacity
    cdef dict _index
    cdef list _items

    @cython.locals(n=Py_ssize_t)
    cpdef bint add(self, object peer) except -1

    @cython.locals(i=Py_ssize_t, items=list)
    cpdef bint discard(self, object peer) except -1

    cpdef clear(self)

    cpdef bint is_full(self)

    @cython.locals(items=list, n=Py_ssize_t, candidates=list)
    cpdef object random(self, object rng, object exclude=*)

    @cython.locals(out=list, m=Py_ssize_t, j=Py_ssize_t, r=Py_ssize_t)
    cpdef list sample(self, object rng, Py_ssize_t k, object exclude=*)

    cpdef object pop_random(self, object rng, object exclude=*)

    cpdef list to_list(self)


cdef class EagerLazy:
    cdef readonly PeerSet eager
    cdef readonly PeerSet lazy

    cpdef add(self, object peer)

    cpdef remove(self, object peer)

    cpdef bint to_lazy(self, object peer) except -1

    cpdef bint to_eager(self, object peer) except -1

    cpdef bint is_eager(self, object peer) except -1
