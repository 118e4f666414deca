"""Every system-check id names one problem, raised from one module (issue 14).

The catalog (``channels_bearer.check_ids.CATALOG``) is the list users read
and silence warnings by; ``error()``/``warning()`` refuse ids not in it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from channels_bearer.check_ids import CATALOG, error

PACKAGE = Path(__file__).resolve().parents[2] / "channels_bearer"
RAISED = re.compile(r"""\b(?:error|warning|unknown_keys)\(\s*["']([EW]\d{3})["']""")


def raised_ids() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for source in PACKAGE.rglob("*.py"):
        for code in RAISED.findall(source.read_text()):
            found[code].add(str(source.relative_to(PACKAGE)))
    return found


def test_every_id_is_raised_from_one_module_only() -> None:
    shared = {code: sorted(modules) for code, modules in raised_ids().items() if len(modules) > 1}
    assert shared == {}


def test_every_catalogued_id_is_raised_and_every_raised_id_is_catalogued() -> None:
    raised = set(raised_ids())
    assert raised == set(CATALOG)


def test_errors_are_errors_and_warnings_warnings() -> None:
    assert all(code[0] in "EW" for code in CATALOG)
    with pytest.raises(ValueError, match="E999"):
        error("E999", "msg", "hint")


def test_no_message_is_made_without_the_catalog() -> None:
    # Every Error(...)/Warning(...) goes through check_ids: no id written by hand.
    for source in PACKAGE.rglob("*.py"):
        if source.name == "check_ids.py":
            continue
        assert not re.search(r'\bid="channels_bearer\.', source.read_text()), source


def test_the_settings_page_lists_every_id() -> None:
    page = (PACKAGE.parent / "docs" / "settings.md").read_text()
    listed = set(re.findall(r"`channels_bearer\.([EW]\d{3})`", page))
    assert listed == set(CATALOG)
