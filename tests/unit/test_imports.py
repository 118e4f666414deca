"""The package imports before Django is set up (daphne issue #347).

ASGI modules import the middleware before ``django.setup()``; a module that
touches the user model (or any model) at import time fails there with
``ImproperlyConfigured`` or ``AppRegistryNotReady``. Run in fresh interpreters,
since this test process has long been set up.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

MODULES = [
    "channels_bearer",
    "channels_bearer.middleware",
    "channels_bearer.backends",
    "channels_bearer.consumers",
    "channels_bearer.sources",
    "channels_bearer.refusal",
    "channels_bearer.conf",
    "channels_bearer.identity",
    "channels_bearer.exceptions",
    "channels_bearer.checks",
    "channels_bearer.tickets",
]

CODE = """
import importlib, sys
for name in {modules!r}:
    importlib.import_module(name)
import django.apps
assert not django.apps.apps.ready, "something called django.setup()"
assert not django.apps.apps.models_ready
print("imported")
"""


def run(env_settings: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE" and not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(ROOT)
    if env_settings:
        env["DJANGO_SETTINGS_MODULE"] = env_settings
    return subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", CODE.format(modules=MODULES)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("env_settings", [None, "tests.settings"], ids=["no-settings", "settings-not-set-up"])
def test_imports_before_django_setup(env_settings: str | None) -> None:
    result = run(env_settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
