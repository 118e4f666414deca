"""Settings for the daphne/uvicorn processes that the server tests start.

The demo project's settings, plus:
  BEARER_TEST_SETTINGS      JSON merged into CHANNELS_BEARER (e.g. {"REFUSAL": "close"})
  BEARER_TEST_LAYER         "pubsub" for channels-redis' RedisPubSubChannelLayer (with REDIS_URL)
  BEARER_TEST_GROUP_EXPIRY  channels-redis' group_expiry, in seconds (with REDIS_URL)
  BEARER_TEST_PG_*          a PostgreSQL database instead of SQLite (tests.support.servers.PostgresProcess)
the test backend that accepts tokens no browser could send raw, and a
per-process cache alias ``bearer-local`` for the lookup cache tests.
"""

import json
import os

from testproject.settings import *  # noqa: F403
from testproject.settings import CHANNELS_BEARER, INSTALLED_APPS, REDIS_URL

# knox's tables, for the tests that enable KnoxTokenBackend through BEARER_TEST_SETTINGS.
INSTALLED_APPS = [*INSTALLED_APPS, "knox"]

CHANNELS_BEARER = {
    **CHANNELS_BEARER,
    "BACKENDS": [*CHANNELS_BEARER["BACKENDS"], "tests.support.backends.PassphraseBackend"],
}
CHANNELS_BEARER.update(json.loads(os.environ.get("BEARER_TEST_SETTINGS", "{}")))

CACHES = {
    # The demo sets CACHES only with REDIS_URL; Django's default otherwise.
    **globals().get("CACHES", {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}),
    "bearer-local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bearer-local"},
}

if REDIS_URL and os.environ.get("BEARER_TEST_LAYER") == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL}]},
        }
    }
elif REDIS_URL and os.environ.get("BEARER_TEST_GROUP_EXPIRY"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "group_expiry": int(os.environ["BEARER_TEST_GROUP_EXPIRY"]),
            },
        }
    }

if os.environ.get("BEARER_TEST_PG_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["BEARER_TEST_PG_NAME"],
            "HOST": os.environ["BEARER_TEST_PG_HOST"],
            "PORT": os.environ["BEARER_TEST_PG_PORT"],
            "USER": os.environ["BEARER_TEST_PG_USER"],
        }
    }

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # DEBUG everywhere: the tests read the whole log and look for token text.
    "root": {"handlers": ["console"], "level": "DEBUG"},
}

if os.environ.get("BEARER_TEST_AUDIT"):
    # Receivers that log every signal (the server tests read them back).
    import tests.support.audit  # noqa: E402, F401

if os.environ.get("BEARER_TEST_LOG_SQL"):
    # Every SQL statement in the log (Django's "django" logger stops at INFO):
    # the tests count the lookups a flood costs. The statements' parameters
    # hold token keys, so only the tests that count queries turn this on.
    LOGGING["loggers"] = {"django.db.backends": {"level": "DEBUG", "handlers": ["console"], "propagate": False}}
