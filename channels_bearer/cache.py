"""Cached lookups for database-backed backends (``CHANNELS_BEARER["CACHE"]``)."""
