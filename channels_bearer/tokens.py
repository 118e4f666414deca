"""Kept for existing imports: ``make_token`` lives in :mod:`channels_bearer.testing.tokens`."""

from channels_bearer.testing.tokens import make_token

__all__ = ["make_token"]
