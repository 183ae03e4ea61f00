# Typed declarations that Cython applies to _deliver.py (pure-Python mode, augmenting .pxd).
import cython


cdef object _pack
cdef object _new_bytes
cdef Py_ssize_t _NAMES_MAX
cdef Py_ssize_t _ROUND
cdef object Message
cdef object MessageId
cdef object origin_str

cpdef object message_id(object origin, object seq)

@cython.locals(out=list, d=tuple, name=object)
cpdef list messages(list deliveries, object own, dict names, dict senders)

@cython.locals(failures=Py_ssize_t)
cpdef tuple call_each(object hook, list msgs)

@cython.locals(failures=Py_ssize_t, n=Py_ssize_t, i=Py_ssize_t, f=Py_ssize_t)
cpdef tuple call_hook(object hook, list deliveries, object own, dict names, dict senders)
