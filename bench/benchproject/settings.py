"""Settings for the benchmark's daphne processes (and bench/run.py itself).

The demo project's settings, plus:
  BENCH_CONFIG  JSON: {"stack": "noauth" | "bearer" | "peer-drf" | "peer-jwt",
                       "consumer": "plain" | "mixin", "bearer": {...CHANNELS_BEARER...},
                       "signals": "sync" | "async" (a do-nothing receiver on each signal),
                       "db": {"engine": "sqlite"} | {"engine": "postgresql", "conn_max_age": 0 | null,
                              "pool": bool, "host": ..., "port": ..., "user": ..., "name": ...}}
  REDIS_URL     channel layer on Redis (the revocation fan-out), as in the demo

The database is at Django's defaults (``CONN_MAX_AGE = 0``) unless the mode
says otherwise: what a site runs that never touched the setting.
"""

import json
import os
from datetime import timedelta

from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES, INSTALLED_APPS, SIMPLE_JWT

BENCH_CONFIG = json.loads(os.environ.get("BENCH_CONFIG", "{}"))

# DEBUG keeps every query in memory (connection.queries): never in a benchmark.
DEBUG = False
ASGI_APPLICATION = "benchproject.asgi.application"
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "testproject"] + ["testproject", "benchproject"]

DB = BENCH_CONFIG.get("db", {"engine": "sqlite"})
if DB["engine"] == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": DB["name"],
            "HOST": DB["host"],
            "PORT": DB["port"],
            "USER": DB["user"],
            # None: persistent; Django's pool requires 0 (it keeps the connections itself).
            "CONN_MAX_AGE": DB.get("conn_max_age", 0),
            "OPTIONS": {"pool": True} if DB.get("pool") else {},
        }
    }
else:
    DATABASES = {"default": {**DATABASES["default"], "CONN_MAX_AGE": DB.get("conn_max_age", 0)}}

# Metrics off unless a row turns them on: the rows measure channels-bearer as it
# costs with none of issue 17's features enabled (prometheus_client is installed here).
CHANNELS_BEARER = {
    "BACKENDS": ["channels_bearer.backends.DRFTokenBackend"],
    "METRICS": False,
    **BENCH_CONFIG.get("bearer", {}),
}
if BENCH_CONFIG.get("signals"):
    from benchproject import receivers

    receivers.connect(BENCH_CONFIG["signals"])
# The lookup cache is in-process (what CHANNELS_BEARER["CACHE"]="default" means on one server);
# the demo's Redis cache is only for its tickets.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bench"}}
# Tokens outlive the whole run (the demo's are 5 minutes).
SIMPLE_JWT = {**SIMPLE_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(hours=2)}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# bench/run.py itself fills the PostgreSQL database under this alias (the
# servers get theirs as "default" through BENCH_CONFIG["db"]).
if os.environ.get("BENCH_PG"):
    _pg = json.loads(os.environ["BENCH_PG"])
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _pg["name"],
        "HOST": _pg["host"],
        "PORT": _pg["port"],
        "USER": _pg["user"],
    }
