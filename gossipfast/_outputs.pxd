# Typed declarations that Cython applies to _outputs.py (pure-Python mode, augmenting .pxd).
import cython


cdef class Outputs:
    cdef public dict outbox
    cdef public list closing
    cdef public list deliveries
    cdef public list events
    cdef public dict sent

    @cython.locals(lst=list)
    cpdef send(self, str peer, object msg)

    cpdef close(self, str peer)

    cpdef emit(self, object event)

    cpdef tuple take(self)
