"""Prometheus metrics, with the ``prometheus`` extra (``prometheus_client``).

On when ``CHANNELS_BEARER["METRICS"]`` is ``True``, or ``None`` (the default)
and ``prometheus_client`` is installed:

``channels_bearer_handshakes_total{outcome, error, source, backend}``
    ``outcome`` is ``accepted``, ``refused`` or ``anonymous`` (no token, let
    through to the consumer); ``error`` the refusal's code or ``""``.
``channels_bearer_auth_seconds``
    How long judging a token took (backends, cache, database), a histogram.
``channels_bearer_open_sockets``
    Authenticated ``BearerConsumerMixin`` sockets open now, per process (in
    multiprocess mode, the sum of the live processes').
``channels_bearer_closes_total{reason}``
    Sockets channels-bearer closed: ``expired`` (4401), ``revoked`` (4403),
    ``refresh_failed``, ``too_many_sockets`` (4429).
``channels_bearer_revocation_seconds``
    From a revocation being sent to this process having heard it and told its
    sockets to close, a histogram (observed whether it had sockets to close or not).

Several server processes: start each with ``PROMETHEUS_MULTIPROC_DIR`` set to a
directory they share (empty at start), as prometheus_client's multiprocess
mode asks, and serve :func:`metrics_view` from any of them: it reads every
process' values. Without the variable, it serves this process' registry.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from channels_bearer.conf import conf

__all__ = ["enabled", "metrics_view"]

#: Seconds, for the histograms: a warm handshake takes well under a millisecond,
#: a cold JWKS download up to FETCH_TIMEOUT.
BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

_metrics: dict[str, Any] | None = None
_installed: bool | None = None


def enabled() -> bool:
    """Whether metrics are collected (read on every event: it follows the settings)."""
    global _installed
    wanted = conf.current().metrics
    if wanted is False:
        return False
    if _installed is None:
        _installed = importlib.util.find_spec("prometheus_client") is not None
    return _installed


def _get() -> dict[str, Any]:
    global _metrics
    if _metrics is None:
        from prometheus_client import Counter, Gauge, Histogram

        _metrics = {
            "handshakes": Counter(
                "channels_bearer_handshakes", "WebSocket handshakes channels-bearer judged.",
                ["outcome", "error", "source", "backend"],
            ),
            "auth": Histogram("channels_bearer_auth_seconds", "Seconds spent judging a token.", buckets=BUCKETS),
            "open": Gauge(
                "channels_bearer_open_sockets", "Authenticated sockets open now.", multiprocess_mode="livesum"
            ),
            "closes": Counter("channels_bearer_closes", "Sockets channels-bearer closed, by why.", ["reason"]),
            "revocation": Histogram(
                "channels_bearer_revocation_seconds", "Seconds from a revocation sent to this process telling its sockets to close.",
                buckets=BUCKETS,
            ),
        }  # fmt: skip
    return _metrics


def handshake(
    outcome: str,
    error: str | None,
    source: str | None,
    backend: str | None,
    seconds: float | None,
) -> None:
    metrics = _get()
    metrics["handshakes"].labels(outcome, error or "", source or "", backend or "").inc()
    if seconds is not None:
        metrics["auth"].observe(seconds)


def socket_opened() -> None:
    _get()["open"].inc()


def socket_ended() -> None:
    _get()["open"].dec()


def closed(reason: str) -> None:
    _get()["closes"].labels(reason).inc()


def revocation_heard(seconds: float) -> None:
    _get()["revocation"].observe(max(0.0, seconds))


def metrics_view(request: Any) -> Any:
    """A Django view of the metrics in Prometheus' text format (every process', in multiprocess mode).

    ``path("metrics", metrics_view)``; protect it as you protect other internal
    endpoints (a network policy, a staff-only wrapper).
    """
    from django.http import HttpResponse

    if importlib.util.find_spec("prometheus_client") is None:
        return HttpResponse(
            'prometheus_client is not installed: pip install "channels-bearer[prometheus]"\n',
            status=501,
            content_type="text/plain; charset=utf-8",
        )
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
    )

    if enabled():
        _get()  # the metrics exist (at 0) before the first handshake
    registry: Any = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
