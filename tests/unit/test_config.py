"""Config: paper defaults, frozen, every field validated with a message naming it."""

from __future__ import annotations

import math

import msgspec
import pytest

from gossipfast import Config, ConfigError
from gossipfast.config import FIELDS


def test_paper_defaults() -> None:
    c = Config()
    assert (c.active_view_size, c.passive_view_size) == (5, 30)
    assert (c.active_random_walk_length, c.passive_random_walk_length) == (6, 3)
    assert (c.shuffle_active, c.shuffle_passive) == (3, 4)


def test_frozen() -> None:
    c = Config()
    with pytest.raises(AttributeError):
        c.active_view_size = 7  # type: ignore[misc]


def test_every_numeric_field_is_documented_and_validated() -> None:
    names = {f.name for f in msgspec.structs.fields(Config)}
    assert set(FIELDS) == names - {"cluster", "fifo"}
    for name, (lo, hi, doc) in FIELDS.items():
        assert doc, name
        below = lo - 1
        with pytest.raises(ConfigError) as e:
            Config(**{name: below})
        assert name in str(e.value)
        if not math.isinf(hi):
            with pytest.raises(ConfigError, match=name):
                Config(**{name: hi + 1})


@pytest.mark.parametrize("bad", [True, "3", None, float("nan")])
def test_wrong_types_rejected(bad: object) -> None:
    with pytest.raises(ConfigError, match="active_view_size"):
        Config(active_view_size=bad)  # type: ignore[arg-type]


def test_float_for_int_field_rejected() -> None:
    with pytest.raises(ConfigError, match="passive_view_size"):
        Config(passive_view_size=2.5)  # type: ignore[arg-type]


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError, match="max_frame_size"):
        Config(max_payload_size=1 << 20, max_frame_size=1 << 20)
    with pytest.raises(ConfigError, match="heartbeat_timeout"):
        Config(heartbeat_interval=2.0, heartbeat_timeout=1.0)
    with pytest.raises(ConfigError, match="passive_random_walk_length"):
        Config(active_random_walk_length=2, passive_random_walk_length=3)
    with pytest.raises(ConfigError, match="dedup_max_origins"):
        Config(dedup_window=1 << 20, dedup_max_origins=1 << 16)
    with pytest.raises(ConfigError, match="cluster"):
        Config(cluster="")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_replace_revalidates() -> None:
    c = Config()
    c2 = msgspec.structs.replace(c, active_view_size=8)
    assert c2.active_view_size == 8
    with pytest.raises(ConfigError):
        msgspec.structs.replace(c, active_view_size=0)


def test_config_overrides_parse_field_equals_json_and_validate() -> None:
    from gossipfast.config import config_overrides

    assert config_overrides(["tree_beacon_interval=0", " fifo = true"]) == {
        "tree_beacon_interval": 0,
        "fifo": True,
    }
    assert config_overrides([]) == {}
    for bad, word in (
        ("fifo", "FIELD=JSON"),
        ("fifo=yes", "not JSON"),
        ("active_view_size=0", "active_view_size"),
        ("nope=1", "nope"),
    ):
        with pytest.raises(ConfigError, match=word):
            config_overrides([bad])
