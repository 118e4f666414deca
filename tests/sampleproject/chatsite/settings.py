"""A small chat site, as a project using channels-bearer would configure it.

It proves that channels_bearer.testing and the pytest plugin work in a project
of their own: nothing here comes from the channels-bearer test suite.
"""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "sample-project-not-secret-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework.authtoken",
    "channels",
    "channels_bearer",
    "chat",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CHANNELS_BEARER = {
    "BACKENDS": [
        "channels_bearer.backends.DRFTokenBackend",
        "channels_bearer.backends.SimpleJWTBackend",
    ],
    # No "query": tokens in URLs end up in access logs.
    "SOURCES": ["subprotocol", "header", "ticket"],
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
}
