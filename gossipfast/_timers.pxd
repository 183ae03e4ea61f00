import cython


cdef long long _TICK_MAX
cdef double _TICK_MAX_F
cdef Py_ssize_t _OVERFLOW
cdef Py_ssize_t _DEAD
cdef Py_ssize_t _OVERFLOW_SLACK
cdef object heappush
cdef object heappop
cdef object heapify


@cython.locals(tick="long long")
cdef long long _floor_tick(double x) noexcept


cdef class _Timer:
    cdef double when
    cdef long long tick
    cdef long long tid
    cdef object item
    cdef Py_ssize_t pos


cdef class TimerWheel:
    cdef double _res
    cdef double _inv
    cdef Py_ssize_t _nslots
    cdef list _wheel
    cdef dict _timers
    cdef list _overflow
    cdef Py_ssize_t _overflow_dead
    cdef Py_ssize_t _in_wheel
    cdef long long _cur
    cdef long long _hint
    cdef long long _next_id
    cdef double _next_when
    cdef bint _next_valid

    @cython.locals(tick="long long", tid="long long", t=_Timer)
    cpdef long long schedule(self, double when, object item) except -1

    @cython.locals(t=_Timer, last=_Timer, slot=list)
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
        due=list,
        e=_Timer,
    )
    cpdef list expire(self, double now)

    @cython.locals(n=Py_ssize_t, wheel=list, t="long long", slot=list, best=double, e=_Timer, ov=list)
    cpdef object next_deadline(self)

    @cython.locals(slot=list)
    cdef int _insert(self, _Timer t, long long tick) except -1

    @cython.locals(due=list, keep=list, e=_Timer)
    cdef list _split_slot(self, Py_ssize_t idx, list slot, double now)

    @cython.locals(ov=list, limit="long long", timers=dict, e=_Timer)
    cdef int _drain_overflow(self, double now, list out) except -1

    @cython.locals(live=list, e=_Timer)
    cdef int _compact_overflow(self) except -1
