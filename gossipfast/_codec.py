"""Length-prefixed frames of wire messages: an incremental decoder and encoders.

A frame is a 4-byte big-endian body length followed by a msgpack body, an array of wire
messages (:data:`gossipfast.wire.FrameBody`). The transport hands every socket read to
:meth:`FrameDecoder.feed` once, so one call decodes every complete frame in the buffered
tail plus the new bytes. Bad input never raises: it comes back as a :class:`FrameFault`.

This module is compiled by Cython with ``_codec.pxd`` (typed offsets and a byte pointer);
the same source runs as plain Python when the extension is absent or disabled.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import wire

# Private twins of the public constants below: the .pxd makes these C constants.
_HEADER = 4
_MAX_BODY = 0xFFFFFFFF

#: Bytes of the length prefix.
HEADER_SIZE: int = _HEADER
#: Largest body length a 4-byte prefix can express.
MAX_BODY_SIZE: int = _MAX_BODY

# The reused encode buffer is dropped when a call left it larger than this: one huge
# output does not pin its memory, and a later call does not start from a buffer whose
# allocation dwarfs its size (CPython then shrinks it with a realloc and grows it again
# frame by frame; measured 5x slower than a fresh buffer for 1 MiB outputs).
_KEEP_BUFFER_BYTES = 1 << 18
# Bodies up to this size are copied out as bytes; larger ones are passed as a memoryview
# slice, whose cost does not grow with the size (measured: the copy wins up to ~8 KiB).
_VIEW_FROM = 8192

# Aliases keep Cython from reading ``int`` annotations as exact Python ints: the .pxd
# gives those arguments C types.
_int = int

_encode_into = wire.encoder.encode_into
_encode = wire.encoder.encode
_Gossip = wire.Gossip
_buf = bytearray(_HEADER)
# Payloads above this size are written from their own buffer by encode_frame_parts
# (the kernel copies them once); smaller ones are cheaper to copy into the frame.
_PART_FROM = 8192


class FrameFault:
    """Why a stream of frames cannot be decoded any further: a value, never raised.

    ``kind`` is ``"oversize"`` (length above the limit), ``"empty"`` (length 0) or
    ``"malformed"`` (a body msgspec cannot decode); ``detail`` is a readable sentence
    naming the sizes or the decoder's message.
    """

    __slots__ = ("detail", "kind")

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail

    def __repr__(self) -> str:
        return f"FrameFault(kind={self.kind!r}, detail={self.detail!r})"

    def __str__(self) -> str:
        return f"{self.kind} frame: {self.detail}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameFault):
            return NotImplemented
        return self.kind == other.kind and self.detail == other.detail

    def __hash__(self) -> int:
        return hash((self.kind, self.detail))


class FrameDecoder:
    """Incremental decoder of a stream of frames, fed with arbitrary chunks.

    At most one partial frame (header included) is held back between calls, and a frame
    whose announced length is 0 or above ``max_frame_size`` is rejected as soon as its
    header is read, so the decoder never buffers more than ``max_frame_size + 4`` bytes.
    """

    __slots__ = ("_decode", "_fault", "_max", "_need", "_tail", "buffered")

    def __init__(self, max_frame_size: int) -> None:
        if not 0 < max_frame_size <= _MAX_BODY:
            raise ValueError(f"max_frame_size must be in 1..{_MAX_BODY}")
        self._max = max_frame_size
        # Bound method fetched once: the per-frame call skips two attribute lookups.
        self._decode = wire.decoder.decode
        # The partial frame held back: header first, then the body as it arrives.
        self._tail = bytearray()
        # Size (header + body) of the frame in _tail once its header is complete, else 0.
        self._need = 0
        self._fault: FrameFault | None = None
        #: Bytes held back (a partial frame).
        self.buffered = 0

    @property
    def fault(self) -> FrameFault | None:
        """The fault that stopped this decoder, or None while it is healthy."""
        return self._fault

    def feed(self, data: bytes | bytearray | memoryview) -> tuple[list, FrameFault | None]:
        """Decode every complete frame in (buffered tail + ``data``).

        Returns the wire messages decoded, in order, and None; or the messages decoded
        before a fault and the fault. After a fault the decoder stays failed: every later
        call returns ``([], fault)`` with the same fault, and the caller closes the link.
        """
        if self._fault is not None:
            return [], self._fault
        buf = data if type(data) is bytes else bytes(data)
        n = len(buf)
        out: list = []
        pos = 0
        if self.buffered:
            pos = self._complete_tail(buf, n, out)
            if pos < 0:
                return out, self._fault
            if self.buffered:  # all of data went into the still-partial frame
                return out, None
        # Fast path: frames lying whole in buf are decoded from it without a copy into
        # the tail. In the compiled build ``p`` is a raw pointer into buf.
        p = buf
        decode = self._decode
        limit = self._max
        length = 0
        view = None
        try:
            while n - pos >= _HEADER:
                length = p[pos]
                length = (length << 8) | p[pos + 1]
                length = (length << 8) | p[pos + 2]
                length = (length << 8) | p[pos + 3]
                if length == 0 or length > limit:
                    return out, self._fail_length(length)
                end = pos + _HEADER + length
                if end > n:
                    break
                if length > _VIEW_FROM:
                    if view is None:
                        view = memoryview(buf)
                    msgs = decode(view[pos + _HEADER : end])
                else:
                    # Compiled: p is a char pointer, so this is one PyBytes copy of the
                    # body (no slice object); pure: an ordinary bytes slice.
                    msgs = decode(p[pos + _HEADER : end])
                if len(msgs) == 1:  # common at low rates; append beats extend
                    out.append(msgs[0])
                else:
                    out += msgs
                pos = end
        except Exception as exc:  # bad input never raises out of feed()
            return out, self._fail_body(length, exc)
        if pos < n:
            # Keep the partial frame (its length, when known, was checked above).
            if n - pos > _VIEW_FROM:  # one copy instead of slice + copy
                self._tail += memoryview(buf)[pos:]
            else:
                self._tail += buf[pos:]
            self.buffered = n - pos
            if n - pos >= _HEADER:
                self._need = _HEADER + length
        return out, None

    def _complete_tail(self, buf: bytes, n: _int, out: list) -> _int:
        """Move bytes of ``buf`` into the buffered partial frame, decoding it when whole.

        Returns how many bytes of ``buf`` were used, or -1 after a fault.
        """
        tail = self._tail
        have = self.buffered
        pos = 0
        if self._need == 0:  # the header itself is incomplete
            pos = min(_HEADER - have, n)
            tail += buf[:pos]
            have += pos
            if have < _HEADER:
                self.buffered = have
                return pos
            p = tail
            length = p[0]
            length = (length << 8) | p[1]
            length = (length << 8) | p[2]
            length = (length << 8) | p[3]
            if length == 0 or length > self._max:
                self._fail_length(length)
                return -1
            self._need = _HEADER + length
        take = min(self._need - have, n - pos)
        if take > 0:
            if take > _VIEW_FROM:  # one copy instead of slice + copy
                tail += memoryview(buf)[pos : pos + take]
            else:
                tail += buf[pos : pos + take]
            pos += take
            have += take
        if have < self._need:
            self.buffered = have
            return pos
        # The frame is whole: a fresh tail, so views of the old one cannot pin a resize.
        self._tail = bytearray()
        self._need = 0
        self.buffered = 0
        try:
            msgs = self._decode(memoryview(tail)[_HEADER:])
        except Exception as exc:
            self._fail_body(have - _HEADER, exc)
            return -1
        out += msgs
        return pos

    def _fail_length(self, length: _int) -> FrameFault:
        """Record and return the fault for a bad announced length."""
        if length == 0:
            fault = FrameFault("empty", "frame announces a body of 0 bytes")
        else:
            fault = FrameFault(
                "oversize",
                f"frame announces a body of {length} bytes, above max_frame_size={self._max} bytes",
            )
        return self._stop(fault)

    def _fail_body(self, length: _int, exc: BaseException) -> FrameFault:
        """Record and return the fault for a body that does not decode."""
        fault = FrameFault(
            "malformed",
            f"frame body of {length} bytes does not decode: {type(exc).__name__}: {exc}",
        )
        return self._stop(fault)

    def _stop(self, fault: FrameFault) -> FrameFault:
        """Fail for good: drop the buffered bytes and remember the fault."""
        self._fault = fault
        self._tail = bytearray()
        self._need = 0
        self.buffered = 0
        return fault


def _put_header(buf: bytearray, at: _int, length: _int) -> None:
    """Write ``length`` as 4 big-endian bytes at ``buf[at:at + 4]``."""
    if length > _MAX_BODY:
        raise ValueError(f"frame body of {length} bytes does not fit a 4-byte length")
    p = buf
    p[at] = (length >> 24) & 0xFF
    p[at + 1] = (length >> 16) & 0xFF
    p[at + 2] = (length >> 8) & 0xFF
    p[at + 3] = length & 0xFF


def encode_frame(msgs: list) -> bytes:
    """One frame holding all ``msgs`` (wire messages), header included."""
    global _buf
    buf = _buf
    # msgspec writes the body after the 4 reserved bytes and trims buf to its end.
    _encode_into(msgs, buf, _HEADER)
    _put_header(buf, 0, len(buf) - _HEADER)
    # bytes + bytearray is one copy into a new bytes; bytes(buf) costs twice as much.
    frame = b"" + buf
    if len(buf) > _KEEP_BUFFER_BYTES:
        _buf = bytearray(_HEADER)
    return frame


def encode_frames(batches: Iterable[list]) -> bytes:
    """Several frames, one per list of messages in ``batches``, in one buffer."""
    global _buf
    buf = _buf
    start = 0
    for msgs in batches:
        _encode_into(msgs, buf, start + _HEADER)
        end = len(buf)
        _put_header(buf, start, end - start - _HEADER)
        start = end
    # msgspec trimmed buf to the end of the last frame, so buf is exactly the frames.
    frames = b"" + buf if start else b""
    if len(buf) > _KEEP_BUFFER_BYTES:
        _buf = bytearray(_HEADER)
    return frames


def _msgpack_bin_head(n: _int) -> bytes:
    """The msgpack header of a ``bin`` of ``n`` bytes (the smallest form, as msgspec writes)."""
    if n < 0x100:
        return bytes((0xC4, n))
    if n < 0x10000:
        return bytes((0xC5, n >> 8, n & 0xFF))
    return bytes((0xC6, (n >> 24) & 0xFF, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF))


def _frame_head(body: _int, count: _int) -> bytes:
    """A frame's length prefix and the msgpack header of its array of ``count`` messages;
    ``body`` is the size of the encoded messages."""
    if count < 16:
        array = bytes((0x90 | count,))
    elif count < 0x10000:
        array = bytes((0xDC, count >> 8, count & 0xFF))
    else:
        array = bytes(
            (0xDD, (count >> 24) & 0xFF, (count >> 16) & 0xFF, (count >> 8) & 0xFF, count & 0xFF)
        )
    length = len(array) + body
    if length > _MAX_BODY:
        raise ValueError(f"frame body of {length} bytes does not fit a 4-byte length")
    return (
        bytes(((length >> 24) & 0xFF, (length >> 16) & 0xFF, (length >> 8) & 0xFF, length & 0xFF))
        + array
    )


def encode_frame_parts(msgs: list, limit: _int) -> list | None:
    """The frames of ``msgs`` as a list of buffers that leaves large payloads in place.

    Joined, the buffers are exactly the frames :func:`encode_frame` writes (one, or
    several of bodies up to ``limit`` bytes when the batch is larger; a single message
    above ``limit`` still gets a frame of its own). A ``Gossip`` payload above
    ``_PART_FROM`` bytes is one of the buffers itself, so a relay hands the kernel the
    payload it received instead of copying it into a frame; the small pieces between
    such payloads are joined. Returns None when no payload is that large: the caller
    encodes the batch in one go.
    """
    for m in msgs:
        if type(m) is _Gossip and len(m.payload) > _PART_FROM:
            break
    else:
        return None
    frames: list = []  # per frame: its size, its message count and its pieces
    pieces: list = []
    body = 0
    count = 0
    for m in msgs:
        if type(m) is _Gossip and len(m.payload) > _PART_FROM:
            payload = m.payload
            n = len(payload)
            # The message with an empty payload ends in the 2-byte header of an empty
            # bin; the payload's own header takes its place.
            head = _encode(_Gossip(m.origin, m.seq, m.hops, b""))[:-2] + _msgpack_bin_head(n)
            size = len(head) + n
        else:
            head = _encode(m)
            payload = None
            size = len(head)
        if count and body + size > limit - 5:  # 5: the largest array header
            frames.append((body, count, pieces))
            pieces = []
            body = 0
            count = 0
        pieces.append(head)
        if payload is not None:
            pieces.append(payload)
        body += size
        count += 1
    frames.append((body, count, pieces))
    out: list = []
    small: list = []  # small pieces not yet joined
    for body, count, pieces in frames:
        small.append(_frame_head(body, count))
        for piece in pieces:
            if len(piece) > _PART_FROM:
                out.append(b"".join(small))
                small = []
                out.append(piece)
            else:
                small.append(piece)
    if small:
        out.append(b"".join(small))
    return out


__all__ = [
    "HEADER_SIZE",
    "MAX_BODY_SIZE",
    "FrameDecoder",
    "FrameFault",
    "encode_frame",
    "encode_frame_parts",
    "encode_frames",
]
