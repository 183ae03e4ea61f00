"""A node's metadata as ``Node(meta=...)`` and ``Node.set_meta`` take it: a mapping of
``str`` to ``str`` whose keys and values fit in ``Config.member_meta_max`` bytes."""

from __future__ import annotations

from collections.abc import Mapping

from ._members import meta_size
from .errors import ConfigError


def checked_meta(meta: Mapping[str, str], limit: int) -> dict[str, str]:
    """A copy of ``meta``; ``TypeError`` for anything but ``str`` keys and values,
    :class:`ConfigError` when they take more than ``limit`` bytes."""
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta is a mapping of str to str, not {type(meta).__name__}")
    out = dict(meta)
    for k, v in out.items():
        if type(k) is not str or type(v) is not str:
            raise TypeError(f"meta maps str to str; got {type(k).__name__} -> {type(v).__name__}")
    size = meta_size(out)
    if size > limit:
        raise ConfigError(f"meta takes {size} bytes, over member_meta_max={limit}")
    return out
