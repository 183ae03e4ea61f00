# Typed declarations that Cython applies to _plumtree.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._announce cimport IHaveQueues
from gossipfast._cache cimport DedupCache, PayloadStore
from gossipfast._catchup cimport CatchUp
from gossipfast._fifo cimport FifoDelivery
from gossipfast._graftdelay cimport GraftDelay
from gossipfast._graftprune cimport GraftPrune
from gossipfast._intake cimport IHaveIntake, _Missing
from gossipfast._optimize cimport TreeOptimizer
from gossipfast._outputs cimport Outputs
from gossipfast._peers cimport EagerLazy
from gossipfast._requests cimport Requests, _Budget


cdef object _U64
cdef object _SEQ_MAX
cdef Py_ssize_t _HOPS_MAX
cdef Py_ssize_t _MAX_REFUSED
cdef Py_ssize_t _MAX_MISSING
cdef double _REQUEST_TTL
cdef Py_ssize_t _MAX_TREES
cdef object Gossip
cdef object IHave
cdef object Graft
cdef object Prune
cdef object Digest
cdef object Want
cdef object Gone
cdef object OrderedDict


cpdef Py_ssize_t _warn_dropped(DedupCache d, Py_ssize_t warned, str peer) except -1


cdef class _Tree:
    cdef public object lazy
    cdef public Py_ssize_t count
    cdef public Py_ssize_t epoch
    cdef public tuple eager
    cdef public tuple lazy_t
    cdef public object parent
    cdef public object pseq
    cdef public Py_ssize_t phops
    cdef public long long push_seq
    cdef public double push_at
    cdef public object up


cdef class Plumtree:
    cdef public object origin
    cdef public object timers
    cdef public Outputs out
    cdef public DedupCache dedup
    cdef public PayloadStore store
    cdef public EagerLazy peers
    cdef public tuple eager
    cdef public tuple lazy
    cdef public tuple active
    cdef public Py_ssize_t epoch
    cdef public dict trees
    cdef public bint anchored
    cdef public dict missing
    cdef public object seq
    cdef public double now
    cdef public bint fifo
    cdef public list gaps
    cdef public object validator
    cdef public object refused
    cdef public Py_ssize_t dedup_warned
    cdef public GraftDelay graft_delay
    cdef public Requests requests
    cdef public GraftPrune control
    cdef public IHaveQueues ihaves
    cdef public IHaveIntake intake
    cdef public TreeOptimizer optimizer
    cdef public CatchUp catchup
    cdef public FifoDelivery fifo_order
    cdef public Py_ssize_t s_gossip
    cdef public Py_ssize_t s_ihave
    cdef public Py_ssize_t s_graft
    cdef public Py_ssize_t s_prune
    cdef public Py_ssize_t s_digest
    cdef public Py_ssize_t s_want
    cdef public Py_ssize_t s_gone
    cdef public Py_ssize_t r_gossip
    cdef public Py_ssize_t r_ihave
    cdef public Py_ssize_t r_graft
    cdef public Py_ssize_t r_prune
    cdef public Py_ssize_t r_digest
    cdef public Py_ssize_t r_want
    cdef public Py_ssize_t r_gone
    cdef public Py_ssize_t lost
    cdef public Py_ssize_t delivered
    cdef public Py_ssize_t duplicates
    cdef public Py_ssize_t grafts
    cdef public Py_ssize_t recovered
    cdef public Py_ssize_t catch_up_requested
    cdef public Py_ssize_t optimizations
    cdef public Py_ssize_t bad
    cdef public Py_ssize_t rejected
    cdef public Py_ssize_t ihave_dropped
    cdef public Py_ssize_t grafts_withheld
    cdef public Py_ssize_t answers_refused

    @cython.locals(lst=list, outbox=dict)
    cpdef send(self, str peer, object msg)

    cpdef refresh(self)

    cpdef bint is_active(self, str peer) except -1

    cpdef bint owns(self, object o) except -1

    @cython.locals(t=_Tree)
    cpdef _Tree tree(self, object o)

    cpdef own(self, _Tree t)

    @cython.locals(t=_Tree)
    cpdef bint to_lazy(self, object o, str peer) except -1

    @cython.locals(t=_Tree)
    cpdef bint to_eager(self, object o, str peer) except -1

    @cython.locals(t=_Tree)
    cpdef tuple tree_of(self, object o)

    cpdef neighbor_up(self, str peer, double now)

    @cython.locals(t=_Tree)
    cpdef neighbor_down(self, str peer)

    @cython.locals(q=IHaveQueues, c=GraftPrune)
    cpdef on_frame(self, str peer, list msgs, double now, object other)

    @cython.locals(t=_Tree, m=_Missing, up=object, h=object, gd=GraftDelay, rq=Requests)
    cpdef on_gossip(self, str peer, object msg, double now)

    @cython.locals(t=_Tree, how=Py_ssize_t, rq=Requests)
    cdef on_duplicate(self, str peer, object o, object s, double now)

    cdef _Tree relink(self, str peer, object o, _Tree t, _Missing m, bint answer)

    @cython.locals(outbox=dict, lst=list, n=Py_ssize_t, skip=object, told=list, q=IHaveQueues)
    cdef forward(
        self, str peer, object o, object s, object h, bytes payload, _Tree t, object up,
        _Missing m, double now
    )

    cpdef expire(self, double now)

    cpdef pass_lost(self, object o)

    @cython.locals(t=_Tree, q=IHaveQueues)
    cpdef tuple broadcast(self, bytes payload, double now)


    cpdef timer_fifo_gap(self, tuple item, double now)
