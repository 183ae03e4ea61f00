# Typed declarations that Cython applies to _intake.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._cache cimport DedupCache
from gossipfast._graftdelay cimport GraftDelay
from gossipfast._plumtree cimport Plumtree, _Tree
from gossipfast._requests cimport _Budget


cdef object _U64
cdef object _SEQ_MAX
cdef Py_ssize_t _HOPS_MAX
cdef Py_ssize_t _MAX_ANNOUNCERS
cdef double _ANNOUNCE_HOLD
cdef Py_ssize_t _ANNOUNCE_HOLD_MIN
cdef Py_ssize_t _MAX_ANN_HELD
cdef Py_ssize_t _MAX_LIST
cdef Py_ssize_t _YOUNG
cdef object deque


cdef class _Missing:
    cdef public object timer
    cdef public double since
    cdef public list peers
    cdef public object hops
    cdef public object grafted
    cdef public bint keep
    cdef public _Budget owner


@cython.locals(n=Py_ssize_t, i=Py_ssize_t, total=Py_ssize_t, d=object)
cpdef Py_ssize_t _run_ids(object runs) except -1


cdef class IHaveIntake:
    cdef public Plumtree pt
    cdef public Py_ssize_t missing_max
    cdef public object timers
    cdef public object t_grafts
    cdef public object t_graft
    cdef public object t_held
    cdef public Py_ssize_t batch
    cdef public Py_ssize_t peer_missing_max
    cdef public double graft_timeout_2
    cdef public object held
    cdef public Py_ssize_t ids
    cdef public bint armed

    @cython.locals(pt=Plumtree, n=Py_ssize_t)
    cpdef on_ihave(self, str peer, object runs, double now)

    @cython.locals(held=object)
    cpdef release_held(self, double now)

    cpdef arm_held(self)

    @cython.locals(since=double, peer=str, n=Py_ssize_t)
    cpdef take_oldest_held(self)

    @cython.locals(
        pt=Plumtree,
        n=Py_ssize_t,
        i=Py_ssize_t,
        left=Py_ssize_t,
        m=_Missing,
        tr=_Tree,
        batch=list,
        young=list,
        b=list,
        slow=bint,
        dedup=DedupCache,
        missing=dict,
        s=object,
        owner=_Budget,
        room=Py_ssize_t,
    )
    cpdef take_ihave(self, str peer, object runs, double now)

    @cython.locals(missing=dict, m=_Missing)
    cpdef graft_timers(self, list batch, double now)

    @cython.locals(pt=Plumtree, m=_Missing, tr=_Tree, own=bint, fetch=bint, keep=bint, gd=GraftDelay)
    cpdef graft_timer(self, object o, object s, double now)

    cpdef timer_grafts(self, tuple item, double now)
    cpdef timer_graft(self, tuple item, double now)
    cpdef timer_held(self, tuple item, double now)
