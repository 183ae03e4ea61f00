"""The cluster-wide member list: every node's id, address, origin and metadata.

Sans-IO like the rest of the engine: inputs carry ``now``, outputs go to the
engine's :class:`~gossipfast._outputs.Outputs`. Each node owns one record of itself, ``(id, address,
incarnation, version, status, meta)``; only the node raises its own version (a metadata
change, or the denial of a rumour of its death). Any node may mark a record SUSPECT,
LEFT or FAILED at the version it knows. Between two records of one id the higher version wins;
at equal versions a dead status wins over ALIVE.

Spreading: news (a new member, a changed status, address or metadata) is flooded over
every active link, so that it reaches every node the overlay connects even while the
broadcast tree is being repaired; a refresh (only the version is higher) goes along the
tree (the shared tree's eager links; every active link while there is none). Either is
sent on only by a node to which it is new, and what is queued within 50 ms goes out
together, one message a link. When a link comes up the two ends send
each other their own records. Repair: every ``member_sync_interval`` a node compares a
hash of its listed records with one active neighbour in turn; on a mismatch both push
their whole tables, in chunks. What a table brings is flooded on only when it is a few
records (a missed flood); a joiner's first table, or the other half's after a partition,
spreads by these comparisons instead, so that a join costs one table, not one flood per
record.

Every ``member_refresh_interval`` a node floods its own record again (a new version);
one not heard of for three intervals is suspected, so that a member whose neighbours
all failed with it, or an old live copy from a long partition, does not stay listed.

Deaths: the member at the other end of a link that fails (a heartbeat timeout, a reset,
a close without a goodbye) is marked SUSPECT: still listed, and flooded. The member, if
alive, denies it with a higher version; every node that holds the suspicion for
``member_suspect_timeout`` seconds undenied marks the member FAILED on its own. One that
sends ``Disconnect(alive=False)`` is marked LEFT at once; a node that leaves floods its own
LEFT first. A dead record is kept ``member_dead_retention`` seconds, so that an old live
copy of it does not bring the member back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xxhash

from .types import Member, MemberDown, MemberUp, make_origin
from .wire import MemberRecord, Members, MemberSync

ALIVE = 0
SUSPECT = 1  # still listed: a neighbour lost its link to it, it may deny
LEFT = 2
FAILED = 3
_REASON = {LEFT: "left", FAILED: "failed"}
#: Records per pushed chunk of a table (a frame stays far below ``max_frame_size``).
_CHUNK = 256
#: New records a table may bring that are flooded on (more spread by the comparisons).
_TABLE_FLOOD_MAX = 64
#: Seconds news waits to go out with other news (a burst of joins is one message a link).
_FLOOD_DELAY = 0.05
#: MemberSync kinds.
_HELLO, _ASK, _ANSWER = 0, 1, 2
_U64 = (1 << 64) - 1


def meta_size(meta: dict[str, str]) -> int:
    """Bytes a metadata mapping counts against ``Config.member_meta_max``."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())


def _valid_meta(meta: Any, limit: int) -> bool:
    if type(meta) is not dict or len(meta) > limit:
        return False
    for k, v in meta.items():
        if type(k) is not str or type(v) is not str:
            return False
    return meta_size(meta) <= limit


def _is_news(old: MemberRecord | None, r: MemberRecord) -> bool:
    """True unless ``r`` only refreshes ``old`` (a higher version, nothing else changed)."""
    return (
        old is None
        or r.status != old.status
        or r.meta != old.meta
        or r.address != old.address
        or r.incarnation != old.incarnation
    )


def member_key(r: MemberRecord) -> int:
    """This record's share of the live-table hash (XORed: order does not matter)."""
    return xxhash.xxh64_intdigest(f"{r.id}\0{r.version}".encode())


class MemberList:
    """The member table of one node; see the module docstring."""

    def __init__(
        self,
        node_id: str,
        address: str,
        incarnation: int,
        config: Any,
        timers: Any,
        out: Any,
        *,
        tree: Callable[[], Any],
    ) -> None:
        """The table of node ``node_id``, holding its own ALIVE record (version 1);
        messages and events go to ``out`` (the engine's
        :class:`~gossipfast._outputs.Outputs`)."""
        self.node_id = node_id
        self.timers = timers
        self.send = out.send
        self.emit = out.emit
        self.tree = tree
        self.suspect_timeout = float(config.member_suspect_timeout)
        self.refresh = float(config.member_refresh_interval)
        self.max_members = int(config.max_members)
        self.meta_max = int(config.member_meta_max)
        self.retention = float(config.member_dead_retention)
        self.interval = float(config.member_sync_interval)
        self.own = MemberRecord(node_id, address, incarnation, 1, ALIVE, {})
        self.records: dict[str, MemberRecord] = {node_id: self.own}
        self.origins: dict[int, str] = {make_origin(node_id, incarnation): node_id}
        self.dead_since: dict[str, float] = {}
        self.heard: dict[str, float] = {}  # member id -> when its record last changed here
        self.refreshed = 0.0
        self.hash = member_key(self.own)
        self.links: dict[str, str] = {}  # peer address -> member id at its other end
        self.out: dict[str, dict[str, MemberRecord]] = {}  # news queued per link
        self.out_armed = False
        self.linked = False  # a link came up once
        self.peers: list[str] = []
        self.turn = 0
        self.leaving = False
        self.bad = 0
        self.refused = 0
        self.syncs = 0
        self.tables = 0

    # -- reading ----------------------------------------------------------------------------

    def members(self) -> dict[str, Member]:
        """Every live member, this node included."""
        return {
            r.id: Member(r.id, r.address, dict(r.meta))
            for r in self.records.values()
            if r.status < LEFT
        }

    def sender_of(self, origin: int) -> str | None:
        """The node id behind ``origin``, if a record of it is known."""
        return self.origins.get(origin)

    # -- own record -------------------------------------------------------------------------

    def set_meta(self, meta: dict[str, str], now: float) -> None:
        """Replace this node's metadata (checked by the caller) and flood it."""
        self._bump(dict(meta), now)

    def _bump(self, meta: dict[str, str], now: float, past: int = 0, news: bool = True) -> None:
        o = self.own
        rec = MemberRecord(o.id, o.address, o.incarnation, max(o.version, past) + 1, ALIVE, meta)
        self._store(rec, now)
        self._flood([rec], None, now, news)

    def leave(self, now: float) -> None:
        """Flood this node's LEFT record (before the engine says goodbye to its links)."""
        o = self.own
        rec = MemberRecord(o.id, o.address, o.incarnation, o.version, LEFT, o.meta)
        self.leaving = True
        self._store(rec, now)
        self._flood([rec], None, now)
        self.flush()  # before the goodbyes close the links

    # -- links ------------------------------------------------------------------------------

    def link_up(self, peer: str, now: float) -> None:
        """A new active neighbour: tell it our own record (and at our very first link,
        ask for its table: a joiner learns the members at once)."""
        if peer not in self.peers:
            self.peers.append(peer)
        kind = _HELLO if self.linked else _ASK
        self.linked = True
        self.send(peer, MemberSync(self.own, self.hash, kind))
        self.syncs += 1

    def link_down(self, peer: str, reason: str, now: float) -> None:
        """An active neighbour is gone: a failed one becomes a suspect, a leaving one is
        marked LEFT."""
        if peer in self.peers:
            self.peers.remove(peer)
        mid = self.links.pop(peer, None)
        if mid is None or self.leaving or reason not in ("failed", "left"):
            return
        r = self.records.get(mid)
        if r is None or r.address != peer:
            return
        status = SUSPECT if reason == "failed" else LEFT
        if r.status >= status:
            return
        rec = MemberRecord(r.id, r.address, r.incarnation, r.version, status, r.meta)
        self._store(rec, now)
        self._flood([rec], None, now)

    # -- timers (``(handler, *args)`` on the engine's wheel: it calls handler(item, now)) --

    def start(self, now: float) -> None:
        """Arm the periodic comparison (:meth:`tick`)."""
        self.timers.schedule(now + self.interval, (self.timer_tick,))

    def timer_tick(self, item: tuple[Any, ...], now: float) -> None:
        """Timer: :meth:`tick`, then re-arm."""
        self.tick(now)
        self.timers.schedule(now + self.interval, (self.timer_tick,))

    def timer_flush(self, item: tuple[Any, ...], now: float) -> None:
        """Timer: send the news queued within the last _FLOOD_DELAY."""
        self.flush()

    def timer_suspicion(self, item: tuple[Any, ...], now: float) -> None:
        """Timer ``(handler, member id, version)``: a suspicion's time is over."""
        self.suspicion_over(item[1], item[2], now)

    def suspicion_over(self, mid: str, version: int, now: float) -> None:
        """Undenied, the suspected member is taken for failed."""
        r = self.records.get(mid)
        if r is not None and r.status == SUSPECT and r.version == version:
            self._store(
                MemberRecord(r.id, r.address, r.incarnation, r.version, FAILED, r.meta), now
            )

    def tick(self, now: float) -> None:
        """Compare tables with the next neighbour in turn; refresh our own record;
        suspect members not heard of for three refresh intervals; forget old dead
        records."""
        if self.peers and not self.leaving:
            self.turn += 1
            peer = self.peers[self.turn % len(self.peers)]
            self.send(peer, MemberSync(self.own, self.hash, _ASK))
            self.syncs += 1
        if self.refresh > 0.0 and not self.leaving:
            if self.refreshed == 0.0:
                self.refreshed = now  # the first refresh one interval after the start
            elif now - self.refreshed >= self.refresh:
                self.refreshed = now
                self._bump(dict(self.own.meta), now, news=False)
            self._expire(now - 3.0 * self.refresh, now)
        if self.dead_since:
            limit = now - self.retention
            for mid in [m for m, t in self.dead_since.items() if t <= limit]:
                del self.dead_since[mid]
                self.heard.pop(mid, None)
                r = self.records.pop(mid)
                self.origins.pop(make_origin(r.id, r.incarnation), None)

    def _expire(self, limit: float, now: float) -> None:
        # a member whose neighbours all failed with it has no one to notice: without a
        # refresh of its record for so long, it is suspected (it denies if alive)
        heard = self.heard
        stale = [
            r
            for r in self.records.values()
            if r.status == ALIVE and r.id != self.node_id and heard.get(r.id, now) < limit
        ]
        for r in stale:
            rec = MemberRecord(r.id, r.address, r.incarnation, r.version, SUSPECT, r.meta)
            self._store(rec, now)
            self._flood([rec], None, now)

    # -- inputs -----------------------------------------------------------------------------

    def on_sync(self, peer: str, msg: MemberSync, now: float) -> None:
        """A neighbour's own record and table hash: on a mismatch, push our table."""
        r = msg.own
        kind = msg.kind
        if (
            not self._valid(r)
            or r.address != peer
            or type(msg.hash) is not int
            or kind not in (_HELLO, _ASK, _ANSWER)
        ):
            self.bad += 1
            return
        self.links[peer] = r.id
        self.on_records(peer, [r], now, False)
        if kind == _HELLO or msg.hash == self.hash:
            return
        self._push_table(peer)
        if kind == _ASK:
            # the asker pushes its table too when it still differs after merging ours
            self.send(peer, MemberSync(self.own, self.hash, _ANSWER))
            self.syncs += 1

    def _push_table(self, peer: str) -> None:
        recs = list(self.records.values())
        for i in range(0, len(recs), _CHUNK):
            self.send(peer, Members(recs[i : i + _CHUNK], True))
        self.tables += 1

    def on_members(self, peer: str, msg: Members, now: float) -> None:
        """Records from a neighbour (a flood or a table): merge, flood on what is new."""
        recs = msg.records
        if type(recs) is not list or type(msg.table) is not bool:
            self.bad += 1
            return
        self.on_records(peer, recs, now, msg.table)

    def on_records(self, peer: str | None, recs: list[Any], now: float, table: bool) -> None:
        """Merge ``recs`` from ``peer``; flood on what is new (see the module docstring)."""
        new = []
        refreshes = []
        records = self.records
        for r in recs:
            if type(r) is not MemberRecord:
                self.bad += 1
                continue
            old = records.get(r.id)
            if (
                old is not None
                and type(r.version) is int
                and type(r.status) is int
                and (r.version, r.status) <= (old.version, old.status)
            ):
                continue  # nothing new (most records of a table): no further checks
            if not self._valid(r):
                self.bad += 1
                continue
            if r.id == self.node_id:
                self._about_us(r, now)
                continue
            if old is None and len(records) >= self.max_members:
                self.refused += 1
                continue
            self._store(r, now)
            if _is_news(old, r):
                new.append(r)
            else:
                refreshes.append(r)
        if table and len(new) + len(refreshes) > _TABLE_FLOOD_MAX:
            return
        if new:
            self._flood(new, peer, now)
        if refreshes:
            self._flood(refreshes, peer, now, False)

    def _about_us(self, r: MemberRecord, now: float) -> None:
        # a rumour of our death (or an old record of ours): deny it with a higher version
        own = self.own
        if self.leaving or r.incarnation != own.incarnation:
            return
        if r.version > own.version or (r.version == own.version and r.status > ALIVE):
            self._bump(dict(own.meta), now, r.version)

    # -- table ------------------------------------------------------------------------------

    def _valid(self, r: Any) -> bool:
        return (
            type(r) is MemberRecord
            and type(r.id) is str
            and 0 < len(r.id) <= 255
            and type(r.address) is str
            and 0 < len(r.address) <= 255
            and type(r.incarnation) is int
            and 0 <= r.incarnation <= _U64
            and type(r.version) is int
            and 0 < r.version <= _U64
            and r.status in (ALIVE, SUSPECT, LEFT, FAILED)
            and _valid_meta(r.meta, self.meta_max)
        )

    def _store(self, r: MemberRecord, now: float) -> None:
        """Put ``r`` in the table (it supersedes what was there) and tell the node."""
        old = self.records.get(r.id)
        was = old is not None and old.status < LEFT
        listed = r.status < LEFT
        if was:
            self.hash ^= member_key(old)  # type: ignore[arg-type]
        if listed:
            self.hash ^= member_key(r)
            self.dead_since.pop(r.id, None)
        else:
            self.dead_since[r.id] = now
        self.records[r.id] = r
        self.heard[r.id] = now
        if r.id == self.node_id:
            self.own = r
        self.origins[make_origin(r.id, r.incarnation)] = r.id
        if r.status == SUSPECT and r.id != self.node_id:
            self.timers.schedule(
                now + self.suspect_timeout, (self.timer_suspicion, r.id, r.version)
            )
        if listed and not was:
            self.emit(MemberUp(Member(r.id, r.address, dict(r.meta))))
        elif was and not listed:
            self.emit(MemberDown(Member(r.id, r.address, dict(r.meta)), _REASON[r.status]))  # type: ignore[arg-type]

    def _flood(
        self, recs: list[MemberRecord], skip: str | None, now: float, news: bool = True
    ) -> None:
        """Queue ``recs`` for every active link (news) or the tree's links (refreshes),
        but ``skip``'s; sent within _FLOOD_DELAY."""
        out = self.out
        for p in self.peers if news else (self.tree() or self.peers):
            if p != skip:
                q = out.get(p)
                if q is None:
                    q = out[p] = {}
                for r in recs:
                    q[r.id] = r  # a later record of the same member replaces the queued one
        if out and not self.out_armed:
            self.out_armed = True
            self.timers.schedule(now + _FLOOD_DELAY, (self.timer_flush,))

    def flush(self) -> None:
        """Send the queued news, one message (per chunk) per link."""
        self.out_armed = False
        out, self.out = self.out, {}
        for p, q in out.items():
            if p in self.peers:
                recs = list(q.values())
                for i in range(0, len(recs), _CHUNK):
                    self.send(p, Members(recs[i : i + _CHUNK], False))


__all__ = ["ALIVE", "FAILED", "LEFT", "SUSPECT", "MemberList", "member_key", "meta_size"]
