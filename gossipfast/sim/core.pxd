# Typed declarations that Cython applies to core.py (pure-Python mode, augmenting .pxd):
# the routing of drained outboxes, the heap and per-broadcast bookkeeping run as C.
import cython


cdef int _DELIVER
cdef int _TICK
cdef int _FAIL
cdef int _CLOSED
cdef int _IDLE
cdef int _CALL
cdef Py_ssize_t _SHIFT
cdef Py_ssize_t _MASK
cdef object _GOSSIP
cdef object _IHAVE
cdef object _GRAFT
cdef object _WANT


cdef class BroadcastRecord:
    cdef public object key
    cdef public Py_ssize_t origin_index
    cdef public double t0
    cdef public Py_ssize_t n_at_send
    cdef public object tag
    cdef public bytearray seen
    cdef public object at
    cdef public list hops
    cdef public list latency
    cdef public Py_ssize_t sent
    cdef public Py_ssize_t ihave
    cdef public Py_ssize_t graft
    cdef public Py_ssize_t dup


cdef class Network:
    cdef public object rng
    cdef public bytearray alive
    cdef public list addr
    cdef public list act
    cdef public double lat_lo
    cdef public double lat_span
    cdef public double jitter
    cdef public double loss
    cdef public double hb_delay
    cdef public double dial_delay
    cdef public double dial_rtts
    cdef public double idle_close
    cdef public object _lat_salt
    cdef public list heap
    cdef public Py_ssize_t seq
    cdef public list ladj
    cdef public list group
    cdef public bint partitioned
    cdef public Py_ssize_t _epoch
    cdef public dict _last
    cdef public dict _lat
    cdef public dict _last_use
    cdef public set _idle_pending
    cdef public dict _dead_dir
    cdef public set _fail_pending
    cdef public double next_purge
    cdef public Py_ssize_t lost
    cdef public Py_ssize_t dropped

    cdef push(self, double t, int kind, object a, object b, object c)

    @cython.locals(adj=dict, lk=Py_ssize_t, dk=Py_ssize_t, lat=double, t=double, kept=list)
    cpdef send(self, Py_ssize_t i, Py_ssize_t j, list msgs, double now)

    cpdef bint arrives(self, Py_ssize_t i, Py_ssize_t j, object epoch)

    cpdef double link_latency(self, Py_ssize_t i, Py_ssize_t j)

    @cython.locals(lat=double)
    cpdef double link_lat(self, Py_ssize_t lk)

    @cython.locals(dk=Py_ssize_t, t=double)
    cpdef close_link(self, Py_ssize_t i, Py_ssize_t j, double now)

    @cython.locals(adj=dict)
    cpdef bint eof(self, Py_ssize_t i, Py_ssize_t j, object epoch)

    @cython.locals(a=Py_ssize_t, b=Py_ssize_t, lk=Py_ssize_t)
    cpdef schedule_idle(self, Py_ssize_t i, Py_ssize_t j, double now)

    @cython.locals(a=Py_ssize_t, b=Py_ssize_t, due=double)
    cpdef idle_check(self, Py_ssize_t lk, double now)

    cpdef fail_later(self, Py_ssize_t i, object peer, double when)

    cpdef fail_due(self, Py_ssize_t i, object peer)


cdef class Simulator:
    cdef public object config
    cdef public object seed
    cdef public object rng
    cdef public object factory
    cdef public double now
    cdef public Network net
    cdef public list engines
    cdef public list addr
    cdef public dict index
    cdef public bytearray alive
    cdef public list tick_at
    cdef public list born
    cdef public list act
    cdef public dict departed
    cdef public dict _type_count
    cdef public dict bcasts
    cdef public list bcast_order
    cdef public Py_ssize_t unknown_deliveries
    cdef public Py_ssize_t unknown_sends
    cdef public Py_ssize_t unknown_events
    cdef public Py_ssize_t member_downs
    cdef public Py_ssize_t event_count
    cdef public Py_ssize_t engine_calls
    cdef public double wall
    cdef public object on_delivery

    @cython.locals(
        net=Network, heap=list, engines=list, alive=bytearray, addr=list,
        n_events=Py_ssize_t, calls=Py_ssize_t, t=double, kind=int,
        ia=Py_ssize_t, ib=Py_ssize_t,
    )
    cpdef _loop(self, double t_end)

    @cython.locals(
        outbox=dict, closing=list, deliveries=list, events=list, index=dict, net=Network,
        msgs=list, nd=double, cur=double,
    )
    cpdef _after(self, Py_ssize_t i, object eng, double now)

    @cython.locals(act=set, index=dict)
    cdef _on_events(self, Py_ssize_t i, list events, double now)

    @cython.locals(bcasts=dict, rec=BroadcastRecord, hops=Py_ssize_t)
    cdef _on_deliveries(self, Py_ssize_t i, list deliveries, double now)

    @cython.locals(
        tc=dict, bcasts=dict, rec=BroadcastRecord, ids=list, runs=list, k=Py_ssize_t, n=Py_ssize_t
    )
    cdef _count(self, list msgs)
