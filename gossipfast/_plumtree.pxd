# Typed declarations that Cython applies to _plumtree.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._announce cimport IHaveQueues
from gossipfast._cache cimport DedupCache, PayloadStore
from gossipfast._catchup cimport CatchUp
from gossipfast._fifo cimport FifoDelivery
from gossipfast._graftdelay cimport GraftDelay
from gossipfast._intake cimport IHaveIntake, _Missing
from gossipfast._outputs cimport Outputs
from gossipfast._peers cimport EagerLazy
from gossipfast._requests cimport Requests, _Budget


cdef object _U64
cdef object _SEQ_MAX
cdef Py_ssize_t _HOPS_MAX
cdef Py_ssize_t _MAX_LIST
cdef Py_ssize_t _MAX_REFUSED
cdef Py_ssize_t _MAX_TREES
cdef Py_ssize_t _LAG_HOPS
cdef object Gossip
cdef object IHave
cdef object Graft
cdef object Prune
cdef object Digest
cdef object Want
cdef object Gone
cdef object OrderedDict


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
    cdef public Py_ssize_t threshold
    cdef public dict missing
    cdef public object seq
    cdef public double now
    cdef public bint fifo
    cdef public dict prune_batch
    cdef public dict graft_batch
    cdef public dict want_batch
    cdef public list gaps
    cdef public object validator
    cdef public object refused
    cdef public Py_ssize_t dedup_warned
    cdef public GraftDelay graft_delay
    cdef public Requests requests
    cdef public IHaveQueues ihaves
    cdef public IHaveIntake intake
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

    cpdef remember_request(self, object o, object s, str peer, double now)

    cpdef _Budget answer_tokens(self, str peer)

    cpdef flush_ihaves(self)

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

    @cython.locals(b=list)
    cpdef queue_prune(self, str peer, object o)

    @cython.locals(b=list)
    cpdef queue_graft(self, str peer, object o, object s)

    @cython.locals(b=list)
    cpdef queue_want(self, str peer, object o, object s)

    cpdef Py_ssize_t send_batches(self, dict batch, object kind) except -1

    @cython.locals(b=dict)
    cpdef flush_prunes(self)

    cpdef neighbor_up(self, str peer, double now)

    @cython.locals(t=_Tree)
    cpdef neighbor_down(self, str peer)

    @cython.locals(q=IHaveQueues)
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

    @cython.locals(t=_Tree, best=Py_ssize_t, i=Py_ssize_t, h=object, packed=object)
    cpdef optimize(self, str sender, object o, _Missing m, object hops)

    @cython.locals(t=_Tree)
    cpdef swap_parent(self, object o, object old, str new)

    @cython.locals(t=_Tree)
    cpdef optimize_lag(self, str sender, object o, _Missing m, object hops, double now)

    @cython.locals(t=_Tree)
    cpdef optimize_late(self, str announcer, object o, object s, object h)

    @cython.locals(b=dict)
    cpdef flush_grafts(self)

    cpdef expire(self, double now)

    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, t=_Tree)
    cpdef on_prune(self, str peer, object origins)

    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, t=_Tree, b=_Budget)
    cpdef on_graft(self, str peer, object ids)

    cpdef pass_lost(self, object o)

    @cython.locals(t=_Tree, q=IHaveQueues)
    cpdef tuple broadcast(self, bytes payload, double now)

    cpdef warn_dropped(self, str peer)

    cpdef timer_fifo_gap(self, tuple item, double now)
