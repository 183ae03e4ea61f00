# Typed declarations that Cython applies to _plumtree.py (pure-Python mode, augmenting .pxd).
import cython

from gossipfast._cache cimport DedupCache, PayloadStore
from gossipfast._catchup cimport CatchUp
from gossipfast._fifo cimport FifoDelivery
from gossipfast._graftdelay cimport GraftDelay
from gossipfast._outputs cimport Outputs
from gossipfast._peers cimport EagerLazy


cdef object _U64
cdef object _SEQ_MAX
cdef Py_ssize_t _HOPS_MAX
cdef Py_ssize_t _MAX_ANNOUNCERS
cdef Py_ssize_t _MAX_MISSING
cdef Py_ssize_t _MAX_LIST
cdef Py_ssize_t _MAX_REFUSED
cdef double _REQUEST_TTL
cdef Py_ssize_t _MAX_TREES
cdef Py_ssize_t _YOUNG
cdef Py_ssize_t _LAG_HOPS
cdef object Gossip
cdef object IHave
cdef object Graft
cdef object Prune
cdef object Digest
cdef object Want
cdef object Gone
cdef object OrderedDict
cdef object deque
cdef double _ANNOUNCE_HOLD
cdef Py_ssize_t _ANNOUNCE_HOLD_MIN
cdef Py_ssize_t _MAX_ANN_HELD


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


cdef class _Budget:
    cdef public Py_ssize_t missing
    cdef public Py_ssize_t asked
    cdef public double grants
    cdef public double grant_at
    cdef public double resends
    cdef public double resend_at


cdef class _Missing:
    cdef public object timer
    cdef public double since
    cdef public list peers
    cdef public object hops
    cdef public object grafted
    cdef public bint keep
    cdef public _Budget owner


cdef class _Lazy:
    cdef public list runs
    cdef public Py_ssize_t ids
    cdef public dict at
    cdef public Py_ssize_t last
    cdef public unsigned long long lo
    cdef public long long ls
    cdef public Py_ssize_t lh


@cython.locals(n=Py_ssize_t, i=Py_ssize_t, total=Py_ssize_t, d=object)
cpdef Py_ssize_t _run_ids(object runs) except -1


cdef class Plumtree:
    cdef public object origin
    cdef public object timers
    cdef public object t_grafts
    cdef public object t_graft
    cdef public object t_ihaves
    cdef public object t_held
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
    cdef public dict prune_batch
    cdef public object seq
    cdef public double now
    cdef public double ihave_interval
    cdef public Py_ssize_t ihave_batch
    cdef public double graft_timeout_2
    cdef public GraftDelay graft_delay
    cdef public CatchUp catchup
    cdef public FifoDelivery fifo_order
    cdef public Py_ssize_t threshold
    cdef public Py_ssize_t catch_up_max
    cdef public bint fifo
    cdef public dict lazyq
    cdef public bint ihave_armed
    cdef public dict missing
    cdef public dict budgets
    cdef public Py_ssize_t peer_missing_max
    cdef public double graft_rate
    cdef public double answer_rate
    cdef public double answer_burst
    cdef public object ann_held
    cdef public Py_ssize_t ann_ids
    cdef public bint ann_armed
    cdef public object requested
    cdef public object answers
    cdef public dict graft_batch
    cdef public dict want_batch
    cdef public Py_ssize_t dedup_warned
    cdef public list gaps
    cdef public Py_ssize_t s_gossip
    cdef public Py_ssize_t s_ihave
    cdef public Py_ssize_t s_graft
    cdef public Py_ssize_t s_prune
    cdef public Py_ssize_t s_digest
    cdef public Py_ssize_t s_want
    cdef public Py_ssize_t r_gossip
    cdef public Py_ssize_t r_ihave
    cdef public Py_ssize_t r_graft
    cdef public Py_ssize_t r_prune
    cdef public Py_ssize_t r_digest
    cdef public Py_ssize_t r_want
    cdef public Py_ssize_t s_gone
    cdef public Py_ssize_t r_gone
    cdef public Py_ssize_t lost
    cdef public Py_ssize_t delivered
    cdef public Py_ssize_t duplicates
    cdef public Py_ssize_t grafts
    cdef public Py_ssize_t recovered
    cdef public Py_ssize_t catch_up_requested
    cdef public Py_ssize_t optimizations
    cdef public Py_ssize_t bad
    cdef public Py_ssize_t ihave_dropped
    cdef public Py_ssize_t grafts_withheld
    cdef public Py_ssize_t answers_refused
    cdef public object validator
    cdef public Py_ssize_t rejected
    cdef public object refused

    @cython.locals(lst=list, outbox=dict)
    cpdef send(self, str peer, object msg)

    cpdef refresh(self)

    cpdef bint is_active(self, str peer) except -1

    @cython.locals(b=_Budget)
    cpdef _Budget budget(self, str peer)

    @cython.locals(b=_Budget, t=double)
    cpdef bint grant(self, str peer, double now) except -1

    @cython.locals(b=_Budget, t=double, now=double)
    cpdef _Budget answer_tokens(self, str peer)

    @cython.locals(a=object)
    cpdef bint take_answer(self, object o, object s, str peer) except -1

    cpdef forget_answer(self, object a)

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

    cpdef on_frame(self, str peer, list msgs, double now, object other)

    @cython.locals(t=_Tree, m=_Missing, up=object, h=object, gd=GraftDelay)
    cpdef on_gossip(self, str peer, object msg, double now)

    @cython.locals(t=_Tree, how=Py_ssize_t)
    cdef on_duplicate(self, str peer, object o, object s, double now)

    cdef _Tree relink(self, str peer, object o, _Tree t, _Missing m, bint answer)

    @cython.locals(outbox=dict, lst=list, n=Py_ssize_t, skip=object, told=list)
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

    @cython.locals(
        a=_Lazy,
        runs=list,
        i=Py_ssize_t,
        j=object,
        oc=cython.ulonglong,
        sc=cython.longlong,
        hc=Py_ssize_t,
    )
    cpdef announce(self, str peer, object o, object s, object h, double now)

    @cython.locals(q=dict, a=_Lazy)
    cpdef flush_ihaves(self)

    @cython.locals(n=Py_ssize_t)
    cpdef on_ihave(self, str peer, object runs, double now)

    @cython.locals(held=object)
    cpdef release_held(self, double now)

    cpdef arm_held(self)

    @cython.locals(since=double, peer=str, n=Py_ssize_t)
    cpdef take_oldest_held(self)

    @cython.locals(
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
        s=object,
        owner=_Budget,
        room=Py_ssize_t,
    )
    cpdef take_ihave(self, str peer, object runs, double now)

    @cython.locals(missing=dict, m=_Missing)
    cpdef graft_timers(self, list batch, double now)

    @cython.locals(t=_Tree)
    cpdef optimize_late(self, str announcer, object o, object s, object h)

    @cython.locals(m=_Missing, tr=_Tree, own=bint, fetch=bint, keep=bint, b=_Budget)
    cpdef graft_timer(self, object o, object s, double now)

    @cython.locals(b=dict)
    cpdef flush_grafts(self)

    @cython.locals(ans=object, req=object)
    cpdef remember_request(self, object o, object s, str peer, double now)

    @cython.locals(ans=object, req=object, b=_Budget, limit=double)
    cpdef expire(self, double now)

    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, t=_Tree)
    cpdef on_prune(self, str peer, object origins)

    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, t=_Tree, b=_Budget)
    cpdef on_graft(self, str peer, object ids)

    cpdef pass_lost(self, object o)

    @cython.locals(t=_Tree)
    cpdef tuple broadcast(self, bytes payload, double now)

    cpdef warn_dropped(self, str peer)

    cpdef timer_grafts(self, tuple item, double now)
    cpdef timer_graft(self, tuple item, double now)
    cpdef timer_ihaves(self, tuple item, double now)
    cpdef timer_held(self, tuple item, double now)
    cpdef timer_fifo_gap(self, tuple item, double now)
