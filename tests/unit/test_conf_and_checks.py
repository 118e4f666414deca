"""The ``CHANNELS_BEARER`` settings object and its system checks."""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

import pytest
from django.core.checks import Error, Warning
from django.core.checks.registry import registry
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from channels_bearer.backends import DRFTokenBackend, SimpleJWTBackend
from channels_bearer.checks import check_settings
from channels_bearer.conf import conf

DRF = "channels_bearer.backends.DRFTokenBackend"
JWT = "channels_bearer.backends.SimpleJWTBackend"


# --- the settings object ------------------------------------------------------------


def test_defaults_without_the_setting(settings: Any) -> None:
    del settings.CHANNELS_BEARER
    assert conf.BACKENDS == [DRF]
    assert conf.SOURCES == ["subprotocol", "header"]
    assert conf.SUBPROTOCOL == "access_token"
    assert conf.HEADER_KEYWORDS == ["Bearer"]
    assert conf.QUERY_PARAM == "access_token"
    assert conf.REFUSAL == "handshake"
    assert conf.TICKET_TTL == 30


def test_follows_override_settings() -> None:
    assert conf.SOURCES == ["subprotocol", "header"]
    with override_settings(CHANNELS_BEARER={"SOURCES": ["header"], "SUBPROTOCOL": "bearer.v1"}):
        assert conf.SOURCES == ["header"]
        assert conf.SUBPROTOCOL == "bearer.v1"
        with override_settings(CHANNELS_BEARER={"REFUSAL": "close"}):
            assert conf.REFUSAL == "close"
            assert conf.SOURCES == ["subprotocol", "header"]
        assert conf.REFUSAL == "handshake"
    assert conf.SUBPROTOCOL == "access_token"


@pytest.mark.parametrize(
    ("value", "attribute", "named"),
    [
        ({"SOURCE": ["header"]}, "SOURCES", "'SOURCE'"),
        ({"BACKENDS": ["nope.NoBackend"]}, "backends", "'BACKENDS'"),
        ({"BACKENDS": ["channels_bearer.conf.BearerSettings"]}, "backends", "'BACKENDS'"),
        ({"SOURCES": ["cookie"]}, "SOURCES", "'SOURCES'"),
        ({"SOURCES": "header"}, "SOURCES", "'SOURCES'"),
        ({"HEADER_KEYWORDS": [1]}, "HEADER_KEYWORDS", "'HEADER_KEYWORDS'"),
        ({"REFUSAL": "drop"}, "REFUSAL", "'REFUSAL'"),
        ({"JWKS": "https://idp.example/jwks"}, "JWKS", "'JWKS'"),
        (["not", "a", "dict"], "SOURCES", "CHANNELS_BEARER must be a dict"),
    ],
)
def test_misconfiguration_fails_loudly_naming_the_key(value: Any, attribute: str, named: str) -> None:
    with override_settings(CHANNELS_BEARER=value), pytest.raises(ImproperlyConfigured) as caught:
        getattr(conf, attribute)
    assert named in str(caught.value)


def test_unknown_key_lookup() -> None:
    with pytest.raises(ImproperlyConfigured, match="'NOPE'"):
        conf.get("NOPE")


def test_unimportable_backend_names_the_path() -> None:
    with override_settings(CHANNELS_BEARER={"BACKENDS": [DRF, "nope.NoBackend"]}):
        with pytest.raises(ImproperlyConfigured, match=r"\['BACKENDS'\]\[1\].*nope\.NoBackend"):
            conf.backends


def test_backends_built_once_and_dropped_on_setting_changed() -> None:
    with override_settings(CHANNELS_BEARER={"BACKENDS": [DRF, JWT]}):
        first = conf.backends
        assert [path for path, _ in first] == [DRF, JWT]
        assert isinstance(first[0][1], DRFTokenBackend)
        assert isinstance(first[1][1], SimpleJWTBackend)
        assert conf.backends[0][1] is first[0][1]
        # Any setting change (here another app's) drops the built backends:
        # they may read SIMPLE_JWT, REST_FRAMEWORK... at build time.
        with override_settings(SIMPLE_JWT={"ALGORITHM": "HS256"}):
            second = conf.backends
        assert second[0][1] is not first[0][1]
        assert conf.backends[0][1] is not second[0][1]


# --- system checks ------------------------------------------------------------------

#: (problem type, CHANNELS_BEARER value, expected ids)
CASES: list[tuple[str, Any, list[str]]] = [
    ("not a dict", ["subprotocol"], ["channels_bearer.E001"]),
    ("not a dict", "subprotocol", ["channels_bearer.E001"]),
    ("unknown key", {"SOURCE": ["header"]}, ["channels_bearer.E002"]),
    ("bad backend path", {"BACKENDS": ["nope.NoBackend"]}, ["channels_bearer.E003"]),
    ("bad backend path", {"BACKENDS": ["channels_bearer.backends.NoSuchBackend"]}, ["channels_bearer.E003"]),
    ("bad backend path", {"BACKENDS": ["channels_bearer.conf.BearerSettings"]}, ["channels_bearer.E003"]),
    ("bad backend path", {"BACKENDS": ["channels_bearer.conf.conf"]}, ["channels_bearer.E003"]),
    ("unknown source", {"SOURCES": ["subprotocol", "cookie"]}, ["channels_bearer.E004"]),
    ("invalid marker", {"SUBPROTOCOL": "access token"}, ["channels_bearer.E007"]),
    ("invalid marker", {"SUBPROTOCOL": ""}, ["channels_bearer.E007"]),
    ("invalid marker", {"SUBPROTOCOL": "jeton/accès"}, ["channels_bearer.E007"]),
    ("invalid marker", {"SUBPROTOCOL": 7}, ["channels_bearer.E007"]),
    ("bad header keyword", {"HEADER_KEYWORDS": ["Bearer", "Bearer token"]}, ["channels_bearer.E008"]),
    ("bad header keyword", {"HEADER_KEYWORDS": [""]}, ["channels_bearer.E008"]),
    ("bad refusal", {"REFUSAL": "drop"}, ["channels_bearer.E009"]),
    ("wrong type", {"SOURCES": "header"}, ["channels_bearer.E010"]),
    ("wrong type", {"BACKENDS": DRF}, ["channels_bearer.E010"]),
    ("wrong type", {"HEADER_KEYWORDS": [b"Bearer"]}, ["channels_bearer.E010"]),
    ("empty backends", {"BACKENDS": []}, ["channels_bearer.E011"]),
    ("empty query param", {"QUERY_PARAM": ""}, ["channels_bearer.E012"]),
    ("empty query param", {"TICKET_PARAM": ""}, ["channels_bearer.E012"]),
    ("bad number", {"TICKET_TTL": "30s"}, ["channels_bearer.E013"]),
    ("bad number", {"EXPIRY_GRACE": -1}, ["channels_bearer.E013"]),
    ("bad number", {"CACHE_TTL": True}, ["channels_bearer.E013"]),
    ("bad flag", {"REFRESH": "yes"}, ["channels_bearer.E014"]),
    ("bad flag", {"REVOKE_ON_LOGOUT": 1}, ["channels_bearer.E014"]),
    ("no header keywords", {"HEADER_KEYWORDS": []}, ["channels_bearer.E015"]),
    ("query enabled", {"SOURCES": ["subprotocol", "query"]}, ["channels_bearer.W001"]),
]


def run_check(value: Any) -> list[Any]:
    with override_settings(CHANNELS_BEARER=value):
        return check_settings()


def test_valid_settings_pass() -> None:
    assert run_check({}) == []
    assert run_check({"BACKENDS": [DRF, JWT], "SOURCES": ["subprotocol", "header", "ticket"]}) == []


@pytest.mark.parametrize(("problem", "value", "expected"), CASES, ids=[f"{p}:{v!r}" for p, v, _ in CASES])
def test_check_ids(problem: str, value: Any, expected: list[str]) -> None:
    messages = run_check(value)
    assert [m.id for m in messages] == expected
    for message in messages:
        assert isinstance(message, Warning if message.id.startswith("channels_bearer.W") else Error)
        assert message.hint, f"{message.id} has no hint"
        assert "CHANNELS_BEARER" in message.msg


def test_ids_unique_per_problem_type() -> None:
    problems: dict[str, set[str]] = defaultdict(set)
    for problem, value, _ in CASES:
        for message in run_check(value):
            problems[message.id].add(problem)
    # Each id names one problem type, and each problem type has its own id.
    assert all(len(kinds) == 1 for kinds in problems.values()), dict(problems)
    assert len(problems) == len({problem for problem, _, _ in CASES})


def test_drf_backend_without_authtoken_app() -> None:
    from django.conf import settings

    apps_without = [app for app in settings.INSTALLED_APPS if app != "rest_framework.authtoken"]
    with override_settings(INSTALLED_APPS=apps_without):
        messages = run_check({"BACKENDS": [DRF]})
        assert run_check({"BACKENDS": [JWT]}) == []
    assert [m.id for m in messages] == ["channels_bearer.E005"]
    assert "rest_framework.authtoken" in messages[0].hint


def test_simplejwt_backend_without_simplejwt(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes find_spec() and imports fail as if
    # the package were not installed.
    for name in [name for name in sys.modules if name.startswith("rest_framework_simplejwt")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "rest_framework_simplejwt", None)
    messages = run_check({"BACKENDS": [DRF, JWT]})
    assert [m.id for m in messages] == ["channels_bearer.E006"]
    assert "simplejwt" in messages[0].hint
    assert run_check({"BACKENDS": [DRF]}) == []


def test_no_channel_layer_warns() -> None:
    with override_settings(CHANNEL_LAYERS={}):
        messages = run_check({})
    assert [m.id for m in messages] == ["channels_bearer.W002"]
    assert messages[0].hint


LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
REDIS_LAYER = {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1"]}}
PUBSUB_LAYER = {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1"]}}
IN_MEMORY_LAYER = {"BACKEND": "channels.layers.InMemoryChannelLayer"}


@pytest.mark.parametrize(
    ("cache", "layers", "warned"),
    [
        (LOCMEM, {"default": IN_MEMORY_LAYER}, True),
        (LOCMEM, {}, True),
        (LOCMEM, {"default": REDIS_LAYER}, False),
        (LOCMEM, {"default": PUBSUB_LAYER}, False),
        ({"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1"},
         {"default": IN_MEMORY_LAYER}, False),
    ],
)  # fmt: skip
def test_a_per_process_lookup_cache_needs_a_layer_that_reaches_other_processes(
    cache: dict[str, Any], layers: dict[str, Any], warned: bool
) -> None:
    with override_settings(CACHES={"default": LOCMEM, "lookups": cache}, CHANNEL_LAYERS=layers):
        ids = [m.id for m in run_check({"CACHE": "lookups"})]
        assert ("channels_bearer.W003" in ids) is warned
        assert "channels_bearer.W003" not in [m.id for m in run_check({})]


def test_several_problems_reported_together() -> None:
    ids = {m.id for m in run_check({"SOURCES": ["cookie", "query"], "REFUSAL": "x", "BACKENDS": ["nope.X"]})}
    assert ids == {"channels_bearer.E003", "channels_bearer.E004", "channels_bearer.E009", "channels_bearer.W001"}


def test_registered_with_django() -> None:
    assert check_settings in registry.get_checks()


def test_manage_py_check_runs_them() -> None:
    with override_settings(CHANNELS_BEARER={"SOURCES": ["carrier-pigeon"]}):
        with pytest.raises(SystemCheckError, match=r"channels_bearer\.E004"):
            call_command("check")
    # The warning alone does not fail the command, and is reported.
    from io import StringIO

    out = StringIO()
    with override_settings(CHANNELS_BEARER={"SOURCES": ["query"]}, SILENCED_SYSTEM_CHECKS=[]):
        call_command("check", stdout=out, stderr=out)
    assert "channels_bearer.W001" in out.getvalue()
