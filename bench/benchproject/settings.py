"""Settings for the benchmark's daphne processes (and bench/run.py itself).

The demo project's settings, plus:
  BENCH_CONFIG  JSON: {"stack": "noauth" | "bearer" | "peer-drf" | "peer-jwt",
                       "consumer": "plain" | "mixin", "bearer": {...CHANNELS_BEARER...}}
  REDIS_URL     channel layer on Redis (the revocation fan-out), as in the demo
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

# Persistent connections, as production sites run: with the default 0, Channels'
# database_sync_to_async() closes the connection after every call, so each
# handshake would open a new SQLite connection (about 1 ms here), while
# middleware that uses the async ORM (aget) directly keeps its connection: the
# comparison would measure connection set-up, not authentication.
DATABASES = {"default": {**DATABASES["default"], "CONN_MAX_AGE": 600}}

CHANNELS_BEARER = {"BACKENDS": ["channels_bearer.backends.DRFTokenBackend"], **BENCH_CONFIG.get("bearer", {})}
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
