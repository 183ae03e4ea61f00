# Typed declarations that Cython applies to _catchup.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._cache cimport DedupCache, PayloadStore
from gossipfast._plumtree cimport Plumtree


cdef object _U64
cdef object _SEQ_MAX
cdef Py_ssize_t _DIGEST_MAX_ORIGINS
cdef Py_ssize_t _MAX_LIST
cdef object Digest
cdef object Gone
cdef object Gossip
cdef object Want

cpdef bint _valid_id(object origin, object seq) except -1

cpdef bint _valid_range(object origin, object first, object last) except -1

@cython.locals(g=Py_ssize_t)
cpdef _add_id(list ranges, object o, object s)

cpdef list _recent_digest(list d)


cdef class CatchUp:
    cdef public Plumtree pt
    cdef public Py_ssize_t catch_up_max
    cdef public double first_up
    cdef public double baseline_window
    cdef public bint baseline_open
    cdef public set known_before
    cdef public dict skipped
    cdef public double ae_interval
    cdef public double retention
    cdef public list ae_snapshot
    cdef public Py_ssize_t ae_turn

    @cython.locals(d=list)
    cpdef joined(self, double now)

    @cython.locals(d=list)
    cpdef offer_digest(self, str peer)

    @cython.locals(pt=Plumtree, peers=tuple, d=list)
    cpdef anti_entropy(self, double now)
    cpdef start(self, double now)
    cpdef timer_anti_entropy(self, tuple item, double now)

    @cython.locals(pt=Plumtree, n=Py_ssize_t, i=Py_ssize_t, budget=Py_ssize_t, ranges=list, fresh=bint)
    cpdef on_digest(self, str peer, object entries, double now)

    @cython.locals(pt=Plumtree, j=Py_ssize_t)
    cpdef ask(self, str peer, list ranges, object o, list miss, double now)

    @cython.locals(missing=dict, requested=object, recent=double, out=list)
    cpdef list not_pending(self, object o, list seqs, double now)

    @cython.locals(n=Py_ssize_t)
    cdef Py_ssize_t ranges_len(self, object ranges) except -1

    @cython.locals(pt=Plumtree, n=Py_ssize_t, i=Py_ssize_t, budget=Py_ssize_t, gone=list, room=object)
    cpdef on_want(self, str peer, object ranges)

    @cython.locals(pt=Plumtree, store=PayloadStore, skipped=object, s=object)
    cpdef answer(self, str peer, list gone, object o, object first, object last)

    @cython.locals(
        pt=Plumtree, n=Py_ssize_t, i=Py_ssize_t, budget=Py_ssize_t, dedup=DedupCache, new=list, counts=dict
    )
    cpdef on_gone(self, str peer, object ranges)

    @cython.locals(dedup=DedupCache, missing=dict, got=Py_ssize_t)
    cpdef Py_ssize_t mark_lost(self, list new, object o, object first, object last) except -1

    @cython.locals(pt=Plumtree)
    cpdef report_lost(self, str peer, dict counts, list new)
