"""Conventions of the public surface: __all__, docstrings, one version, docs, typing."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import gossipfast

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_all_names_exist_and_are_documented() -> None:
    api = README.split("## API reference", 1)[1].split("\n## ", 1)[0]
    for name in gossipfast.__all__:
        obj = getattr(gossipfast, name)
        assert f"`{name}" in api, f"README API reference lacks {name}"
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_node_public_members_have_docstrings_and_are_in_the_reference() -> None:
    api = README.split("## API reference", 1)[1].split("\n## ", 1)[0]
    for name, member in vars(gossipfast.Node).items():
        if name.startswith("_"):
            continue
        assert inspect.getdoc(member), f"Node.{name} has no docstring"
        assert re.search(rf"`(await )?{name}\b", api), f"README lacks Node.{name}"


def test_version_has_one_source() -> None:
    text = (ROOT / "gossipfast" / "_version.py").read_text()
    assert f'__version__ = "{gossipfast.__version__}"' in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "gossipfast._version.__version__" }' in pyproject
    assert f"## {gossipfast.__version__}" in (ROOT / "CHANGES.md").read_text()


def test_typed_package() -> None:
    assert (ROOT / "gossipfast" / "py.typed").exists()
    assert "strict = true" in (ROOT / "pyproject.toml").read_text()
