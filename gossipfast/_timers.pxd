import cython


cdef long long _TICK_MAX
cdef double _TICK_MAX_F
cdef int _IN_WHEEL
cdef int _OVERFLOW
cdef int _DEAD
cdef Py_ssize_t _DEAD_SLACK
cdef unsigned long long _ONE
cdef unsigned long long _MASK64
cdef object heappush
cdef object heappop
cdef object heapify
cdef object array


@cython.locals(tick="long long")
cdef long long _floor_tick(double x) noexcept


@cython.locals(low="unsigned long long", i=int)
cdef int _lowest_bit(unsigned long long word) noexcept


cdef class _Timer:
    cdef double when
    cdef long long tick
    cdef object tid
    cdef object item
    cdef int state


cdef class TimerWheel:
    cdef double _res
    cdef double _inv
    cdef Py_ssize_t _nslots
    cdef Py_ssize_t _nwords
    cdef dict _slots
    cdef unsigned long long[::1] _bits
    cdef dict _timers
    cdef list _overflow
    cdef Py_ssize_t _overflow_dead
    cdef Py_ssize_t _in_wheel
    cdef Py_ssize_t _wheel_dead
    cdef Py_ssize_t _dead_slack
    cdef long long _cur
    cdef long long _next_id
    cdef double _next_when
    cdef bint _next_valid

    @cython.locals(tick="long long", tid="long long", key=object, t=_Timer)
    cpdef object schedule(self, double when, object item)

    @cython.locals(t=_Timer)
    cpdef bint cancel(self, object timer_id) except -1

    @cython.locals(
        out=list,
        now_tick="long long",
        cur="long long",
        last="long long",
        n=Py_ssize_t,
        timers=dict,
        t="long long",
        d=Py_ssize_t,
        stop="long long",
        idx=Py_ssize_t,
        slot=list,
        k=Py_ssize_t,
        i=Py_ssize_t,
        e=_Timer,
    )
    cpdef list expire(self, double now)

    @cython.locals(
        n=Py_ssize_t,
        t="long long",
        idx=Py_ssize_t,
        slot=list,
        found=bint,
        best=double,
        e=_Timer,
        ov=list,
    )
    cpdef object next_deadline(self)

    @cython.locals(idx=Py_ssize_t, slot=list)
    cdef int _insert(self, _Timer t, long long tick) except -1

    cdef int _drop_slot(self, Py_ssize_t idx) except -1

    @cython.locals(
        bits="unsigned long long[::1]",
        nwords=Py_ssize_t,
        w=Py_ssize_t,
        word="unsigned long long",
        idx=Py_ssize_t,
    )
    cdef Py_ssize_t _scan(self, Py_ssize_t start) except -2

    @cython.locals(j=Py_ssize_t, i=Py_ssize_t, e=_Timer)
    cdef int _purge(self, list slot) except -1

    @cython.locals(idx=object, slot=list)
    cdef int _compact_wheel(self) except -1

    @cython.locals(ov=list, limit="long long", timers=dict, e=_Timer)
    cdef int _drain_overflow(self, double now, list out) except -1

    @cython.locals(live=list, e=_Timer)
    cdef int _compact_overflow(self) except -1
