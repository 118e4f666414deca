"""Token backends. Each imports its optional dependency only when used."""

from channels_bearer.backends.base import BaseBackend
from channels_bearer.backends.drf import DRFTokenBackend
from channels_bearer.backends.simplejwt import SimpleJWTBackend

__all__ = ["BaseBackend", "DRFTokenBackend", "SimpleJWTBackend"]
