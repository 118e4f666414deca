"""The demo project: channels-bearer with DRF tokens, SimpleJWT and (optionally) a JWKS provider.

Environment:
  REDIS_URL            channel layer (and cache) on Redis; in-memory without it
  DJANGO_DB_PATH       SQLite file (default: testproject/db.sqlite3)
  BEARER_JWKS_URL, BEARER_JWT_ISSUER, BEARER_JWT_AUDIENCE
                       also accept JWTs from an OpenID Connect provider
"""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret-" + "x" * 40)
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_simplejwt.token_blacklist",
    "channels",
    "channels_bearer",
    "testproject",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "testproject.urls"
ASGI_APPLICATION = "testproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
        # Several server processes share one file in the demo and the tests.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]

USE_TZ = True
TIME_ZONE = "UTC"

REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py times reads out after 5 s while channels-redis blocks
            # for up to 5 s: without this an idle consumer dies with 1011.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}]},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5),
    "AUTH_HEADER_TYPES": ("Bearer",),
}

CHANNELS_BEARER: dict[str, Any] = {
    "BACKENDS": [
        "channels_bearer.backends.DRFTokenBackend",
        "channels_bearer.backends.SimpleJWTBackend",
    ],
    "SOURCES": ["subprotocol", "header", "query", "ticket"],
}

if os.environ.get("BEARER_JWKS_URL"):
    CHANNELS_BEARER["BACKENDS"].append("channels_bearer.backends.JWKSBackend")
    CHANNELS_BEARER["JWKS"] = {
        "JWKS_URL": os.environ["BEARER_JWKS_URL"],
        "ISSUER": os.environ.get("BEARER_JWT_ISSUER"),
        "AUDIENCE": os.environ.get("BEARER_JWT_AUDIENCE"),
        "USER_CLAIM": "sub",
        "USER_FIELD": "username",
        "CREATE_USERS": True,
    }

# The demo shows the query source on purpose; a real project should think twice (docs/sources.md).
SILENCED_SYSTEM_CHECKS = ["channels_bearer.W001"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # propagate=False: daphne and uvicorn give the root logger a handler of
    # their own, which would print every line a second time.
    "loggers": {"channels_bearer": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
