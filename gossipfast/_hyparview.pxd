# Typed declarations that Cython applies to _hyparview.py (pure-Python mode, augmenting .pxd).
# Membership handling is a tenth of a large simulation's time (SHUFFLE samples, views).
import cython

from gossipfast._peers cimport PeerSet
from gossipfast._repair cimport Repair


cpdef bint valid_address(object x) except -1


cdef class HyParView:
    cdef public object address
    cdef public object config
    cdef public object rng
    cdef public object timers
    cdef public object send
    cdef public object close
    cdef public object up
    cdef public object down
    cdef public Py_ssize_t size
    cdef public PeerSet active
    cdef public PeerSet passive
    cdef public dict pending
    cdef public set tried
    cdef public list seeds
    cdef public dict graveyard
    cdef public list last_shuffle
    cdef public bint started
    cdef public bint left
    cdef public Py_ssize_t bad
    cdef public Py_ssize_t shuffles
    cdef public Py_ssize_t probes
    cdef public Py_ssize_t rejoins
    cdef public Py_ssize_t escalations
    cdef public Py_ssize_t max_list
    cdef public Repair repair

    @cython.locals(out=list)
    cpdef list sanitize(self, object nodes)

    cpdef add_passive(self, object peer, object prefer=*)

    cpdef alive(self, object peer)

    cpdef bint on_message(self, object peer, object msg, object now) except -1

    @cython.locals(reply=list)
    cpdef on_shuffle(self, object sender, object origin, object ttl, object nodes, object now)

    cpdef on_shuffle_reply(self, object nodes)

    cpdef on_forward_join(self, object sender, object node, object ttl, object now)

    cpdef fill(self, object now)

    cpdef bint cancel_pending(self, object peer) except -1
