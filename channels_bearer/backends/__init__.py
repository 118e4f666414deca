"""Token backends. Each imports its optional dependency only when used."""

from channels_bearer.backends.base import BaseBackend
from channels_bearer.backends.drf import DRFTokenBackend
from channels_bearer.backends.drf_authentication import DRFAuthenticationBackend
from channels_bearer.backends.jwks import JWKSBackend
from channels_bearer.backends.knox import KnoxTokenBackend
from channels_bearer.backends.oauth_toolkit import OAuthToolkitBackend
from channels_bearer.backends.simplejwt import SimpleJWTBackend

__all__ = [
    "BaseBackend",
    "DRFAuthenticationBackend",
    "DRFTokenBackend",
    "JWKSBackend",
    "KnoxTokenBackend",
    "OAuthToolkitBackend",
    "SimpleJWTBackend",
]
