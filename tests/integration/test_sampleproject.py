"""The sample project in tests/sampleproject/ passes its own tests, with both runners.

It is a project of its own (settings, ASGI app, a chat consumer) that tests
its consumer with the public helpers only: the pytest plugin's fixtures and
``channels_bearer.testing``. Each runner runs in a subprocess with none of
this suite's settings: ``DJANGO_SETTINGS_MODULE`` is removed from the
environment and ``tests`` is not importable there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "sampleproject"


def sample_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTEST_ADDOPTS")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_both() -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    commands = {
        "pytest": [sys.executable, "-m", "pytest", "--ds=chatsite.settings", "-p", "no:cacheprovider", "-q", "-rA"],
        "django": [sys.executable, "-W", "error::DeprecationWarning", "manage.py", "test", "-v", "2"],
    }
    # Side by side: the two runs share nothing (in-memory databases, no ports).
    procs = {
        name: subprocess.Popen(
            command, cwd=SAMPLE, env=sample_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for name, command in commands.items()
    }
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(commands[name], proc.returncode, out, "")
    return results["pytest"], results["django"]


def test_sample_project_passes_with_pytest_and_manage_py_test() -> None:
    pytest_run, django_run = run_both()

    assert pytest_run.returncode == 0, pytest_run.stdout
    passed = re.search(r"(\d+) passed", pytest_run.stdout)
    assert passed and int(passed.group(1)) >= 10, pytest_run.stdout
    assert "failed" not in pytest_run.stdout and "error" not in pytest_run.stdout.lower(), pytest_run.stdout
    # The plugin's fixtures were what the tests used (not skipped, not shadowed).
    assert "PASSED pytest_tests/test_chat.py::test_signed_in_user_gets_hello" in pytest_run.stdout

    assert django_run.returncode == 0, django_run.stdout
    ran = re.search(r"Ran (\d+) tests?", django_run.stdout)
    assert ran and int(ran.group(1)) >= 5, django_run.stdout
    assert re.search(r"^OK$", django_run.stdout, re.MULTILINE), django_run.stdout
    assert "test_alice_gets_hello (chat.tests.ChatTests" in django_run.stdout
