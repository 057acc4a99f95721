"""tests/reliability/README.md states what this suite runs: its catalogue table and its counts."""

from __future__ import annotations

import re

from tests.reliability.conftest import REPO
from tests.reliability.test_bad_input import CASES, markdown_table
from tests.reliability.test_kill_resume import KILL_CHAINS

README = (REPO / "tests" / "reliability" / "README.md").read_text(encoding="utf-8")


def _stated(label: str) -> int:
    match = re.search(rf"\*\*(\d+) {label}\*\*", README)
    assert match, f"README states no '**N {label}**'"
    return int(match.group(1))


def test_readme_table_is_the_catalogue():
    """Regenerate the table with ``python -m tests.reliability.test_bad_input``."""
    assert len({c.id for c in CASES}) == len(CASES)
    assert markdown_table() in README


def test_readme_counts_are_the_suites():
    assert _stated("bad-input cases") == len(CASES)
    assert _stated("commands") == len({c.command for c in CASES} - {""})
    assert _stated("kills") == sum(len(kills) for kills in KILL_CHAINS.values())
    for command, kills in KILL_CHAINS.items():
        assert _stated(f"kills of `ctqc {command}`") == len(kills)
