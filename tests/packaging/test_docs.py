"""The README stays true: set-up commands first, every Config field in the table."""

from __future__ import annotations

from pathlib import Path

import msgspec

from gossipfast import Config

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_two_setup_commands() -> None:
    first = README.split("\n## ", 2)[1]
    assert first.startswith("Set-up")
    blocks = first.split("```bash\n")[1:]
    assert len(blocks) == 2
    install, tests = (b.split("\n```")[0] for b in blocks)
    assert "gossipfast cluster" in install
    assert "pytest" in tests and "GOSSIPFAST_NO_EXTENSIONS=1" in tests


def test_readme_config_table_lists_every_field_with_its_default() -> None:
    cfg = Config()
    for f in msgspec.structs.fields(Config):
        row = f"| `{f.name}` | `{getattr(cfg, f.name)!r}` |"
        assert row in README, f"README Config table lacks or misstates {f.name}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci and "<!-- test-command -->" in README
