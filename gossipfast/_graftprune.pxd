# Typed declarations that Cython applies to _graftprune.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._plumtree cimport Plumtree, _Tree
from gossipfast._requests cimport _Budget


cdef object _U64
cdef object _SEQ_MAX
cdef Py_ssize_t _MAX_LIST
cdef object Gossip
cdef object Graft
cdef object Prune
cdef object Want


cdef class GraftPrune:
    cdef public Plumtree pt
    cdef public Py_ssize_t max_origins
    cdef public dict prunes
    cdef public dict grafts
    cdef public dict wants

    cpdef forget(self, str peer)

    @cython.locals(b=list)
    cpdef queue_prune(self, str peer, object o)

    @cython.locals(b=list)
    cpdef queue_graft(self, str peer, object o, object s)

    @cython.locals(b=list)
    cpdef queue_want(self, str peer, object o, object s)

    @cython.locals(pt=Plumtree)
    cpdef Py_ssize_t send_batches(self, dict batch, object kind) except -1

    @cython.locals(b=dict, pt=Plumtree)
    cpdef flush_prunes(self)

    @cython.locals(b=dict, pt=Plumtree)
    cpdef flush_grafts(self)

    @cython.locals(pt=Plumtree, n=Py_ssize_t, i=Py_ssize_t, t=_Tree)
    cpdef on_prune(self, str peer, object origins)

    @cython.locals(pt=Plumtree, n=Py_ssize_t, i=Py_ssize_t, t=_Tree, b=_Budget)
    cpdef on_graft(self, str peer, object ids)
