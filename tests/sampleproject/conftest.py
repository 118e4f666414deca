"""The sample project's pytest setup: nothing to write, the channels-bearer plugin is an entry point.

One guard, for channels-bearer's own test suite only: that suite walks tests/
and must not collect this project under its own settings. It runs this
project in a subprocess instead (tests/integration/test_sampleproject.py).
"""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if config.rootpath != HERE else None
