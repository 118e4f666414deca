"""Bearer-token authentication for Django Channels WebSockets."""

__version__ = "0.1.0"
