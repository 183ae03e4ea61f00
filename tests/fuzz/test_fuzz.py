"""Fuzzing the wire path end to end: bytes -> FrameDecoder -> a real Engine.

Two generators feed the same pipeline (the transport's: one ``feed`` per socket read, the
decoded batch to ``Engine.on_frame``, Ping/Pong/Hello left in so the engine sees them too):

- hypothesis: structured frames (every wire message type with extreme field values,
  arbitrary msgpack arrays with known and unknown tags), cut into random reads;
- a seeded mutation loop: valid frames of every type, mutated at the byte level (bit
  flips, interesting bytes, insertions, deletions, duplications, splices, forged length
  headers, rewritten tags), fed in random chunks to several "connections".

Properties: nothing raises, decoding is the same in the compiled and the pure decoder,
the decoder never holds more than one frame, and the engine's state and the process
memory stay within the configured bounds.

Size of the run (both builds: run it once more with ``GOSSIPFAST_NO_EXTENSIONS=1``):

- default suite: ``GOSSIPFAST_FUZZ_INPUTS`` (default 4000) mutated inputs and
  ``GOSSIPFAST_FUZZ_EXAMPLES`` (default 150) hypothesis examples per test;
- long run (over 10^5 inputs)::

      GOSSIPFAST_FUZZ_INPUTS=120000 GOSSIPFAST_FUZZ_EXAMPLES=3000 \
          python -m pytest tests/fuzz/test_fuzz.py -p no:cacheprovider -s
"""

from __future__ import annotations

import gc
import os
import random
import struct
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.buildkit import compiled, pure_twin

from gossipfast import wire
from gossipfast._codec import FrameDecoder
from gossipfast.config import Config
from gossipfast.engine import Engine

INPUTS = int(os.environ.get("GOSSIPFAST_FUZZ_INPUTS", "4000"))
EXAMPLES = int(os.environ.get("GOSSIPFAST_FUZZ_EXAMPLES", "150"))

ME = "127.0.0.1:7000"
PEERS = [f"127.0.0.1:{7001 + i}" for i in range(6)]
U64 = (1 << 64) - 1
I64_MIN = -(1 << 63)

# Small bounds, so "within the bounds" is a strong statement in a short run.
CFG = Config(
    active_view_size=4,
    passive_view_size=8,
    dedup_window=64,
    dedup_max_origins=1 << 14,  # rarely saturated here: exactly-once is checked
    store_max_messages=500,
    store_max_bytes=256 << 10,
    store_max_age=5.0,
    catch_up_max=1000,
    max_payload_size=64 << 10,
    max_frame_size=1 << 20,
    ihave_interval=0.002,
)
# Engine-internal caps that are not Config fields (gossipfast/_plumtree.py).
MAX_MISSING = 1 << 16
MAX_TREES = 4096


# The pure twin, loaded beside the compiled decoder so each input is decoded by both.
_PURE = pure_twin("_codec") if compiled("_codec") is not None else None


def new_engine(seed: int) -> Engine:
    """A real engine with a few active neighbours and a passive view, joined."""
    e = Engine(ME, CFG, node_id=ME, incarnation=1, rng=random.Random(seed))
    e.join([PEERS[0]], 0.0)
    for p in PEERS[:3]:
        e.on_frame(p, [wire.Neighbor(True)], 0.0)
    e.on_frame(PEERS[4], [wire.ShuffleReply([f"127.0.0.1:{8000 + i}" for i in range(5)])], 0.0)
    e.drain()
    return e


def check_bounds(e: Engine) -> None:
    """The engine's state is within its configured (and internal) bounds."""
    s = e.stats()
    act, pas = set(e.active_view), set(e.passive_view)
    assert len(act) <= CFG.active_view_size and len(pas) <= CFG.passive_view_size
    assert ME not in act | pas and not act & pas
    assert all(type(p) is str and len(p) <= 255 for p in act | pas)
    assert s["store_messages"] <= CFG.store_max_messages
    assert s["store_bytes"] <= CFG.store_max_bytes
    assert s["origins"] <= CFG.dedup_max_origins
    if e.tree is not None:  # the anchored tree remembers active neighbours only
        assert set(e.tree.nb) <= act and (e.tree.up is None or e.tree.up in act)
    assert s["missing"] <= MAX_MISSING
    assert len(e.pt.trees) <= MAX_TREES + 1
    assert len(e.timers) <= MAX_MISSING + 4 * CFG.dedup_max_origins + 1000
    assert set(e.eager_peers) | set(e.lazy_peers) == act


class Pipeline:
    """One engine; each ``connection`` is a fresh decoder pair (compiled and pure)."""

    def __init__(self, seed: int, max_frame: int = CFG.max_frame_size) -> None:
        self.engine = new_engine(seed)
        self.max_frame = max_frame
        self.now = 0.0
        # id -> time of its first delivery
        self.delivered: dict[tuple[int, int], float] = {}
        self.redelivered = 0  # copies replayed after their origin was forgotten
        self.inputs = 0
        self.faults = 0
        self.messages = 0

    def connection(self, peer: str, chunks: list[bytes]) -> None:
        """Feed one connection's reads, as the transport does, into the engine."""
        self.inputs += 1
        dec = FrameDecoder(self.max_frame)
        twin = _PURE.FrameDecoder(self.max_frame) if _PURE is not None else None
        e = self.engine
        for chunk in chunks:
            msgs, fault = dec.feed(chunk)
            assert dec.buffered <= self.max_frame + 4
            if twin is not None:
                got, tfault = twin.feed(chunk)
                assert got == msgs
                assert (tfault is None) == (fault is None)
                assert fault is None or (fault.kind, fault.detail) == (tfault.kind, tfault.detail)
            if msgs:
                self.messages += len(msgs)
                e.on_frame(peer, msgs, self.now)
                self._drain()
            if fault is not None:
                self.faults += 1
                # the transport closes the link; for an active peer that is a failure
                if peer in e.active_view:
                    e.on_disconnected(peer, "failed", self.now)
                    self._drain()
                return

    def advance(self, dt: float) -> None:
        """Move the clock and fire due timers."""
        self.now += dt
        self.engine.tick(self.now)
        self._drain()

    def _drain(self) -> None:
        _out, _closing, deliveries, _events = self.engine.drain()
        # Exactly-once: an origin is forgotten only once unseen for store_max_age + 30 s
        # (no honest copy can come then); a replay after that starts it afresh.
        for o, s, _h, _p in deliveries:
            first = self.delivered.get((o, s))
            if first is not None:
                assert self.now - first >= CFG.store_max_age + 30.0, "delivered twice"
                self.redelivered += 1
            self.delivered[(o, s)] = self.now


# --- the seed corpus: valid frames of every message type, with extreme values ----------

INTS = [0, 1, 2, 3, 7, 255, 256, 65535, 1 << 16, (1 << 31) - 1, 1 << 32, (1 << 63) - 1, U64]
INTS += [-1, -2, -(1 << 31), I64_MIN]
ADDRS = [*PEERS, ME, "127.0.0.1:9", "", ":", "x", "[::1]:1", "127.0.0.1:70000", "h:" + "9" * 40]


def _int(r: random.Random) -> int:
    if r.random() < 0.6:
        return r.choice(INTS)
    return r.randrange(I64_MIN, U64 + 1)


def _addr(r: random.Random) -> str:
    if r.random() < 0.8:
        return r.choice(ADDRS)
    return "".join(chr(r.randrange(32, 0x2FF)) for _ in range(r.choice([1, 10, 300])))


def _ids(r: random.Random, k: int) -> list[int]:
    """``k`` flattened fields: mostly plausible ids, some extreme values."""
    origin = r.choice([1, 2, 3, U64])
    out = []
    for i in range(k):
        out.append(_int(r) if r.random() < 0.2 else [origin, 1 + i // 3, 1][i % 3])
    return out


def _size(r: random.Random) -> int:
    """List lengths: small mostly, huge sometimes (the engine's caps are 2**17 entries)."""
    x = r.random()
    if x < 0.9:
        return r.randrange(0, 12)
    if x < 0.99:
        return r.randrange(12, 3000)
    return r.randrange(100_000, 200_000)


def random_message(r: random.Random) -> Any:
    """One wire message of a random type with field values from the extremes above."""
    kind = r.randrange(20)
    if kind == 0:
        return wire.Hello(_int(r), r.choice(["gossipfast", "x"]), "n", _addr(r), _int(r))
    if kind == 1:
        return wire.Ping(_int(r))
    if kind == 2:
        return wire.Pong(_int(r))
    if kind == 3:
        return wire.Join()
    if kind == 4:
        return wire.ForwardJoin(_addr(r), _int(r))
    if kind == 5:
        return wire.Neighbor(r.random() < 0.5)
    if kind == 6:
        return wire.NeighborReply(r.random() < 0.5)
    if kind == 7:
        return wire.Disconnect(r.random() < 0.5)
    if kind == 8:
        return wire.Shuffle(_addr(r), _int(r), [_addr(r) for _ in range(min(_size(r), 20_000))])
    if kind == 9:
        return wire.ShuffleReply([_addr(r) for _ in range(min(_size(r), 20_000))])
    if kind == 10:
        payload = r.randbytes(r.choice([0, 1, 100, 5000]))
        origin = r.choice([1, 2, 3, U64, _int(r)])
        seq = r.choice([r.randrange(1, 200), _int(r)])
        return wire.Gossip(origin, seq, r.choice([0, 1, 5, _int(r)]), payload)
    if kind == 11:
        return wire.IHave(_ids(r, 4 * _size(r)))
    if kind == 12:
        return wire.Graft(_ids(r, 2 * _size(r)))
    if kind == 13:
        return wire.Prune([_int(r) for _ in range(min(_size(r), 5000))])
    if kind == 14:
        return wire.Digest(_ids(r, 2 * _size(r)))
    if kind == 15:
        return wire.Beacon(_int(r), _int(r), _int(r), _int(r), r.random() < 0.5)
    if kind == 16:
        return wire.Gone(_ids(r, 3 * _size(r)))
    if kind == 18:
        return wire.Members([_record(r) for _ in range(min(_size(r), 5000))], r.random() < 0.5)
    if kind == 19:
        return wire.MemberSync(_record(r), r.choice([0, U64, _int(r) & U64]), _int(r))
    return wire.Want(_ids(r, 3 * _size(r)))


def _record(r: random.Random) -> Any:
    """A member record: a plausible one mostly, extreme fields sometimes."""
    meta = {_addr(r): _addr(r) for _ in range(r.choice([0, 1, 3, 50]))}
    return wire.MemberRecord(
        r.choice(["n", "", "x" * 300, _addr(r)]),
        _addr(r),
        _int(r),
        r.choice([1, 2, _int(r)]),
        r.choice([0, 1, 2, 3, _int(r)]),
        meta,
    )


def encode_frame(msgs: list[Any]) -> bytes:
    """A frame (length + body) of wire messages or raw msgpack-able values."""
    body = wire.encoder.encode(msgs)
    return struct.pack(">I", len(body)) + body


INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x90, 0x91, 0x9F, 0xC0, 0xC1, 0xC2, 0xC3]
INTERESTING += [0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD3, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xE0]


def mutate(r: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """Apply 1-4 byte-level mutations to a framed stream."""
    b = bytearray(data)
    for _ in range(r.randrange(1, 5)):
        op = r.randrange(10)
        n = len(b)
        if n == 0:
            b += r.randbytes(8)
            continue
        i = r.randrange(n)
        if op == 0:  # bit flip
            b[i] ^= 1 << r.randrange(8)
        elif op == 1:  # interesting byte
            b[i] = r.choice(INTERESTING)
        elif op == 2:  # insert random bytes
            b[i:i] = r.randbytes(r.randrange(1, 9))
        elif op == 3:  # delete a range
            del b[i : i + r.randrange(1, 17)]
        elif op == 4:  # duplicate a range
            j = min(n, i + r.randrange(1, 33))
            b[j:j] = b[i:j]
        elif op == 5:  # truncate
            del b[i:]
        elif op == 6:  # splice another frame in
            other = r.choice(corpus)
            k = r.randrange(len(other) + 1)
            b[i:i] = other[:k]
        elif op == 7 and n > 4:  # forged length header, within the size limit
            b[0:4] = struct.pack(">I", r.choice([1, 2, 5, n - 4, n - 3, n, CFG.max_frame_size]))
        elif op == 8 and n > 6:  # rewrite a message tag (body: array of arrays [tag, ...])
            j = 6 if b[4] & 0xF0 == 0x90 else r.randrange(4, n)
            b[j] = r.choice([0, 4, 9, 17, 24, 29, 32, 40, 0x7F, 0xCC, 0xFF])
        else:  # overwrite a byte with a random one
            b[i] = r.randrange(256)
    return bytes(b)


def chunks_of(r: random.Random, data: bytes) -> list[bytes]:
    """Cut ``data`` as socket reads would: whole, halves, small pieces or byte by byte."""
    mode = r.randrange(4)
    if mode == 0 or len(data) < 2:
        return [data]
    if mode == 1:
        k = r.randrange(1, len(data))
        return [data[:k], data[k:]]
    if mode == 2 and len(data) < 4000:
        return [data[i : i + 1] for i in range(len(data))]
    out = []
    i = 0
    while i < len(data):
        k = r.randrange(1, 600)
        out.append(data[i : i + k])
        i += k
    return out


def build_corpus(r: random.Random, n: int) -> list[bytes]:
    """``n`` valid streams: one or a few frames of one to four messages each."""
    corpus = []
    for _ in range(n):
        frames = [
            encode_frame([random_message(r) for _ in range(r.randrange(1, 5))])
            for _ in range(r.randrange(1, 3))
        ]
        corpus.append(b"".join(frames))
    return corpus


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_corpus_covers_every_message_type() -> None:
    r = random.Random(0)
    kinds = {type(random_message(r)) for _ in range(2000)}
    assert kinds == set(typing.get_args(wire.WireMessage))


@pytest.mark.timeout(3600)
def test_mutated_frames_into_a_real_engine() -> None:
    """INPUTS mutated (and a tenth unmutated) streams; bounded state and memory."""
    r = random.Random(20261126)
    # The big seeds are costly to encode: build a corpus once, mutate copies of it.
    corpus = build_corpus(r, 600)
    pipe = Pipeline(seed=1)
    warm = max(200, INPUTS // 10)
    rss_warm = 0
    for k in range(INPUTS):
        if k == warm:
            gc.collect()
            rss_warm = _rss()
        # honest traffic too, so the dedup, store and trees are exercised
        if r.random() < 0.3:
            peer = r.choice(PEERS[:3])
            seq = k + 1
            frame = encode_frame([wire.Gossip(5, seq, 1, b"h" * r.randrange(0, 2000))])
            pipe.connection(peer, [frame])
        data = r.choice(corpus)
        if r.random() < 0.9:
            data = mutate(r, data, corpus)
        peer = r.choice(PEERS)
        pipe.connection(peer, chunks_of(r, data))
        pipe.advance(r.choice([0.0, 0.001, 0.01, 0.1, 1.0]))
        if k % 500 == 0:
            check_bounds(pipe.engine)
            if len(pipe.engine.active_view) < 2:  # keep neighbours, so handlers run
                for p in PEERS[:3]:
                    pipe.engine.on_frame(p, [wire.Neighbor(True)], pipe.now)
                pipe._drain()
    pipe.advance(CFG.store_max_age * 4)
    check_bounds(pipe.engine)
    gc.collect()
    growth = _rss() - rss_warm if warm < INPUTS else 0
    print(
        f"\nfuzz: {pipe.inputs} connections, {pipe.messages} messages decoded, "
        f"{pipe.faults} frame faults, bad_messages={pipe.engine.stats()['bad_messages']}, "
        f"redelivered after dedup eviction={pipe.redelivered}, "
        f"RSS growth after warm-up {growth / 1e6:.1f} MB"
    )
    assert pipe.inputs >= INPUTS
    assert pipe.faults > INPUTS // 10 and pipe.messages > INPUTS  # both paths exercised
    # Bounded memory: the engine's bounds (store 256 KiB, 64 origins, 2**16 missing ids)
    # allow some tens of MB at most; a leak of one object per input would exceed it.
    assert growth < 64 << 20


# --- hypothesis: structured frames -------------------------------------------------------

_EXT_INT = st.one_of(st.sampled_from(INTS), st.integers(I64_MIN, U64), st.integers(-5, 300))
_ADDR = st.one_of(st.sampled_from(ADDRS), st.text(max_size=30))
_LEAF = st.one_of(
    _EXT_INT, st.booleans(), st.none(), st.floats(), st.text(max_size=8), st.binary(max_size=8)
)
_ANY = st.recursive(_LEAF, lambda c: st.lists(c, max_size=4), max_leaves=12)

_MESSAGES = st.one_of(
    st.builds(
        wire.Hello, _EXT_INT, st.sampled_from(["gossipfast", "x"]), st.text(), _ADDR, _EXT_INT
    ),
    st.builds(wire.Ping, _EXT_INT),
    st.builds(wire.Pong, _EXT_INT),
    st.builds(wire.Join),
    st.builds(wire.ForwardJoin, _ADDR, _EXT_INT),
    st.builds(wire.Neighbor, st.booleans()),
    st.builds(wire.NeighborReply, st.booleans()),
    st.builds(wire.Disconnect, st.booleans()),
    st.builds(wire.Shuffle, _ADDR, _EXT_INT, st.lists(_ADDR, max_size=40)),
    st.builds(wire.ShuffleReply, st.lists(_ADDR, max_size=40)),
    st.builds(wire.Gossip, _EXT_INT, _EXT_INT, _EXT_INT, st.binary(max_size=64)),
    st.builds(wire.IHave, st.lists(_EXT_INT, max_size=40)),
    st.builds(wire.Graft, st.lists(_EXT_INT, max_size=40)),
    st.builds(wire.Prune, st.lists(_EXT_INT, max_size=10)),
    st.builds(wire.Beacon, _EXT_INT, _EXT_INT, _EXT_INT, _EXT_INT, st.booleans()),
    st.builds(wire.Digest, st.lists(_EXT_INT, max_size=20)),
    st.builds(wire.Want, st.lists(_EXT_INT, max_size=30)),
    st.builds(wire.Gone, st.lists(_EXT_INT, max_size=30)),
)
# Raw msgpack arrays shaped like messages, with known and unknown tags and any fields.
_RAW = st.builds(
    lambda tag, fields: [tag, *fields],
    st.one_of(
        st.sampled_from([1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 20, 21, 22, 23, 24, 30, 31, 32]),
        _EXT_INT,
    ),
    st.lists(_ANY, max_size=5),
)
_HYP = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_HYP
@given(
    batches=st.lists(
        st.tuples(
            st.sampled_from(PEERS),
            st.lists(st.one_of(_MESSAGES, _RAW), min_size=1, max_size=6),
            st.sampled_from([0.0, 0.001, 0.05, 0.5, 3.0]),
        ),
        min_size=1,
        max_size=12,
    ),
    seed=st.integers(0, 1000),
)
def test_structured_frames_never_raise(
    batches: list[tuple[str, list[Any], float]], seed: int
) -> None:
    r = random.Random(seed)
    pipe = Pipeline(seed)
    for peer, msgs, dt in batches:
        frame = encode_frame(msgs)
        pipe.connection(peer, chunks_of(r, frame))
        pipe.advance(dt)
    check_bounds(pipe.engine)


@_HYP
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    pipe = Pipeline(0)
    # a valid header in front half of the time, so bodies are reached
    if cuts and cuts[0] % 2:
        data = struct.pack(">I", max(1, len(data))) + data
    points = sorted({c for c in cuts if 0 < c < len(data)})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    pipe.connection(PEERS[0], chunks)
    pipe.advance(1.0)
    check_bounds(pipe.engine)


@_HYP
@given(seed=st.integers(0, 1 << 32), n=st.integers(1, 30))
def test_mutation_sequences_never_raise(seed: int, n: int) -> None:
    r = random.Random(seed)
    corpus = build_corpus(r, 4)
    pipe = Pipeline(seed)
    for _ in range(n):
        pipe.connection(r.choice(PEERS), chunks_of(r, mutate(r, r.choice(corpus), corpus)))
        pipe.advance(r.choice([0.0, 0.01, 0.2]))
    check_bounds(pipe.engine)


def test_extreme_values_each_message_type() -> None:
    """Every type with each extreme value in each field, and huge lists, one by one."""
    pipe = Pipeline(7, max_frame=16 << 20)  # a node configured for big frames
    huge_ids = [U64, (1 << 63) - 1, 0] * 60_000  # 180k entries: above the 2**17 cap
    huge_views = [f"127.0.0.1:{9000 + i % 50000}" for i in range(100_000)]
    cases: list[Any] = [
        wire.IHave(huge_ids),
        wire.IHave([5, 1, (1 << 63) - 1, 0] * 1000),  # runs of 2**63 seqs each
        wire.Graft(huge_ids[:-1]),
        wire.Want([5, 1, (1 << 63) - 1] * 1000),
        wire.Gone([5, 1, (1 << 63) - 1] * 1000),
        wire.Digest(huge_ids[:-1]),
        wire.Prune(list(range(200_000))),
        wire.Shuffle(PEERS[5], U64, huge_views),
        wire.ShuffleReply(huge_views),
        wire.ForwardJoin("127.0.0.1:9999", I64_MIN),
    ]
    for v in INTS:
        cases += [
            wire.Gossip(v, v, v, b"x"),
            wire.Gossip(1, v, 0, b"y"),
            wire.ForwardJoin(PEERS[5], v),
            wire.Shuffle(PEERS[5], v, [PEERS[4]]),
            wire.IHave([v, v, v, v]),
            wire.IHave([1, 1, v, 0]),
            wire.Graft([v, v]),
            wire.Digest([v, v]),
            wire.Want([v, v, v, 1, 1, v]),
            wire.Gone([v, v, v, 1, 1, v]),
            wire.Prune([v]),
            wire.Beacon(v, v, v, v, True),
            wire.Beacon(1, v, 1, 1, False),
            wire.Ping(v),
            wire.Hello(v, "gossipfast", "n", PEERS[5], v),
        ]
    for m in cases:
        for peer in (PEERS[0], PEERS[5]):  # an active neighbour and a stranger
            pipe.connection(peer, [encode_frame([m])])
            pipe.advance(0.05)
        check_bounds(pipe.engine)
    pipe.advance(60.0)
    check_bounds(pipe.engine)
    assert pipe.faults == 0  # all of them were valid frames
    assert pipe.engine.stats()["bad_messages"] > len(INTS)


@pytest.mark.timeout(120)
def test_atheris_harness_runs(tmp_path: Path) -> None:
    """The coverage-guided harness (tests/fuzz/fuzz_decoder.py) runs clean for a while."""
    pytest.importorskip("atheris")
    harness = Path(__file__).with_name("fuzz_decoder.py")
    out = subprocess.run(
        [sys.executable, str(harness), "-atheris_runs=3000", str(tmp_path / "corpus")],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done 3000" in out.stderr


@pytest.mark.parametrize("factor", [1, 10])
def test_origin_flood_does_not_cause_redelivery(factor: int) -> None:
    e = new_engine(3)
    old = wire.Gossip(1, 1, 1, b"honest")
    e.on_frame(PEERS[0], [old], 1.0)
    assert len(e.drain()[2]) == 1
    # a member pushes messages of factor x dedup_max_origins fresh (forged) origins
    n = factor * CFG.dedup_max_origins
    flood = [wire.Gossip(1000 + i, 1 + i % 7, 1, b"") for i in range(n)]
    e.on_frame(PEERS[1], flood, 2.0)
    flooded = len(e.drain()[2])
    e.on_frame(PEERS[2], [old], 3.0)  # a late copy (GRAFT answer, catch-up, slow path)
    assert e.drain()[2] == []
    s = e.stats()
    # the table stays bounded; the excess is dropped and counted, never delivered
    assert s["origins"] <= CFG.dedup_max_origins
    assert flooded < n and s["origins_throttled"] + s["origins_refused"] == n - flooded
    assert 1 in e.pt.dedup and e.pt.dedup.contains(1, 1)
    # the flooder holds at most 3/4 of the table: room is left for honest new origins
    assert flooded <= CFG.dedup_max_origins * 3 // 4
    e.on_frame(PEERS[2], [wire.Gossip(7, 1, 1, b"new honest")], 4.0)
    assert [d[:2] for d in e.drain()[2]] == [(7, 1)]


@pytest.mark.timeout(300)
def test_ihave_flood_memory_plateaus() -> None:
    """One neighbour announcing unknown ids forever: the engine's memory levels off.

    Its caps (2**16 missing ids, max(catch_up_max, 2**16) remembered requests, 4096
    trees) are reached during the warm-up; the second half of the flood adds nothing.
    """
    import tracemalloc

    e = Engine(ME, Config(catch_up_max=1000), node_id=ME, incarnation=1, rng=random.Random(1))
    for p in PEERS[:2]:
        e.on_frame(p, [wire.Neighbor(True)], 0.0)
    r = random.Random(2)
    now = 0.0

    def flood(batches: int) -> None:
        nonlocal now
        for _ in range(batches):
            ids = []
            for _ in range(1000):
                s = r.randrange(1, 1 << 40)
                ids += (r.getrandbits(64), s, s, 1)
            e.on_frame(PEERS[0], [wire.IHave(ids)], now)
            now += 0.01
            e.tick(now)
            e.drain()

    tracemalloc.start()
    try:
        flood(120)
        gc.collect()
        warm, _ = tracemalloc.get_traced_memory()
        flood(120)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(e.pt.requests.requested) <= 1 << 16 and e.stats()["missing"] <= 1 << 16
    print(f"\nIHAVE flood (engine): {warm / 2**20:.1f} MiB at warm-up, {end / 2**20:.1f} at end")
    assert end - warm < 2 << 20, (warm, end)
