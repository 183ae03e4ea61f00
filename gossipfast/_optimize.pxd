# Typed declarations that Cython applies to _optimize.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._intake cimport _Missing
from gossipfast._plumtree cimport Plumtree, _Tree


cdef Py_ssize_t _LAG_HOPS


cdef class TreeOptimizer:
    cdef public Plumtree pt
    cdef public Py_ssize_t threshold

    @cython.locals(pt=Plumtree, t=_Tree, best=Py_ssize_t, i=Py_ssize_t, h=object, packed=object)
    cpdef optimize(self, str sender, object o, _Missing m, object hops)

    @cython.locals(pt=Plumtree, t=_Tree)
    cpdef swap_parent(self, object o, object old, str new)

    @cython.locals(pt=Plumtree, t=_Tree)
    cpdef optimize_lag(self, str sender, object o, _Missing m, object hops, double now)

    @cython.locals(pt=Plumtree, t=_Tree)
    cpdef optimize_late(self, str announcer, object o, object s, object h)
