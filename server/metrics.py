"""Prometheus metrics, served on the HTTP front at ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger(__name__)

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One set of metrics per server instance (its own registry, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.grpc_started = Counter(
            "grpc_server_started_total", "RPCs started on the server.",
            ["grpc_service", "grpc_method"], registry=r)
        self.grpc_handled = Counter(
            "grpc_server_handled_total", "RPCs completed on the server, by status code.",
            ["grpc_service", "grpc_method", "grpc_code"], registry=r)
        self.grpc_latency = Histogram(
            "grpc_server_handling_seconds", "Time to complete an RPC on the server.",
            ["grpc_service", "grpc_method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.auth_failures = Counter(
            "vnegov_authentication_failures_total", "Calls refused as UNAUTHENTICATED, by cause.",
            ["cause"], registry=r)
        self.audit_failures = Counter(
            "vnegov_audit_write_failures_total", "Audit events that could not be written.",
            registry=r)
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests, by route and status.",
            ["method", "route", "status"], registry=r)
        self.http_latency = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request.",
            ["method", "route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.http_rejected = Counter(
            "vnegov_http_rejected_total", "HTTP requests refused by a limit before their route "
            "ran, by route class and limit (rate, body, slow).",
            ["route_class", "limit"], registry=r)
        self.tls_connections = Gauge(
            "vnegov_tls_front_connections", "Open connections on the mutual-TLS gRPC port.",
            registry=r)
        # Callbacks run before each scrape (domain gauges read from the database or caches).
        self._refreshers: list[Callable[[], None]] = []

    def on_refresh(self, refresher: Callable[[], None]) -> None:
        """Run ``refresher`` before each scrape (it sets gauges; it must be quick)."""
        self._refreshers.append(refresher)

    def refresh(self) -> None:
        for refresher in self._refreshers:
            try:
                refresher()
            except Exception:
                log.warning("a metrics refresher failed", exc_info=True)
