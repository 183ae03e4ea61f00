import cython


cdef Py_ssize_t _HEADER
cdef long long _MAX_BODY
cdef object _encode_into
cdef object _encode
cdef object _Gossip
cdef Py_ssize_t _PART_FROM
cdef bytearray _buf
cdef Py_ssize_t _KEEP_BUFFER_BYTES
cdef Py_ssize_t _VIEW_FROM


cdef class FrameFault:
    cdef readonly str kind
    cdef readonly str detail


cdef class FrameDecoder:
    cdef readonly Py_ssize_t buffered
    cdef long long _max
    cdef Py_ssize_t _need
    cdef bytearray _tail
    cdef object _decode
    cdef object _fault

    @cython.locals(
        buf=bytes,
        p="const unsigned char *",
        n=Py_ssize_t,
        pos=Py_ssize_t,
        end=Py_ssize_t,
        length="long long",
        limit="long long",
        out=list,
        msgs=list,
    )
    cpdef tuple feed(self, object data)

    @cython.locals(
        tail=bytearray,
        p="const unsigned char *",
        have=Py_ssize_t,
        pos=Py_ssize_t,
        take=Py_ssize_t,
        length="long long",
    )
    cdef Py_ssize_t _complete_tail(self, bytes buf, Py_ssize_t n, list out) except -2

    cdef FrameFault _fail_length(self, long long length)

    cdef FrameFault _fail_body(self, long long length, BaseException exc)

    cdef FrameFault _stop(self, FrameFault fault)


@cython.locals(p="unsigned char *")
cdef int _put_header(bytearray buf, Py_ssize_t at, long long length) except -1


@cython.locals(buf=bytearray)
cpdef bytes encode_frame(list msgs)


@cython.locals(buf=bytearray, start=Py_ssize_t, end=Py_ssize_t)
cpdef bytes encode_frames(object batches)


cdef bytes _msgpack_bin_head(Py_ssize_t n)


cdef bytes _frame_head(long long body, Py_ssize_t count)


@cython.locals(body="long long", count=Py_ssize_t, size="long long", n=Py_ssize_t)
cpdef list encode_frame_parts(list msgs, long long limit)
