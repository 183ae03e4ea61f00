import cython


cdef long long _TICK_MAX
cdef double _TICK_MAX_F
cdef int _IN_WHEEL
cdef int _OVERFLOW
cdef int _DEAD
cdef Py_ssize_t _OVERFLOW_SLACK
cdef object heappush
cdef object heappop
cdef object heapify


@cython.locals(tick="long long")
cdef long long _floor_tick(double x) noexcept


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
    cdef list _wheel
    cdef dict _timers
    cdef list _overflow
    cdef Py_ssize_t _overflow_dead
    cdef Py_ssize_t _in_wheel
    cdef Py_ssize_t _wheel_dead
    cdef long long _cur
    cdef long long _hint
    cdef long long _next_id
    cdef double _next_when
    cdef bint _next_valid

    @cython.locals(tick="long long", tid=object, t=_Timer)
    cpdef object schedule(self, double when, object item)

    @cython.locals(t=_Timer)
    cpdef bint cancel(self, object timer_id) except -1

    @cython.locals(
        out=list,
        now_tick="long long",
        cur="long long",
        last="long long",
        n=Py_ssize_t,
        wheel=list,
        timers=dict,
        t="long long",
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
        wheel=list,
        t="long long",
        idx=Py_ssize_t,
        slot=list,
        found=bint,
        best=double,
        e=_Timer,
        ov=list,
    )
    cpdef object next_deadline(self)

    cdef int _insert(self, _Timer t, long long tick) except -1

    @cython.locals(live=list, e=_Timer)
    cdef list _live(self, list slot)

    @cython.locals(ov=list, limit="long long", timers=dict, e=_Timer)
    cdef int _drain_overflow(self, double now, list out) except -1

    @cython.locals(live=list, e=_Timer)
    cdef int _compact_overflow(self) except -1

    @cython.locals(wheel=list, idx=Py_ssize_t, slot=list)
    cdef int _compact_wheel(self) except -1
