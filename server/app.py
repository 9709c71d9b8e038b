"""The server application: one process serving gRPC (grpc.aio) and HTTP (uvicorn) on one loop.

Start-up: open the database (refusing to run on an unmigrated schema), start the audit writer and
the modules, then listen. Shutdown (SIGTERM/SIGINT or :meth:`Application.stop`): health turns
NOT_SERVING (behind a balancer: the replica keeps serving through the drain period, then until its
calls in flight have ended), the mutual-TLS front stops accepting connections, the gRPC server
refuses new calls and lets in-flight calls finish within the grace period, the HTTP server drains,
modules stop, the audit writer commits what it holds, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import uvicorn
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy import text

from server.audit import AuditWriter
from server.auth.authenticator import Authenticator
from server.auth.caller import AuthMethod, Caller, PermissionTable
from server.auth.certificates import ClientCertificateVerifier
from server.auth.forwarded import ForwardedCertificateAuthenticator
from server.config import Config
from server.domain_metrics import DomainMetrics
from server.http.app import build_admin_app, build_http_app
from server.http.client import TrustedProxies
from server.http.protocol import HeadLimits, limited_protocol
from server.jobs import JobRunner
from server.metrics import Metrics
from server.modules import MODULES, AppContext, GrpcService, Module
from server.notify import ChangeListener
from server.rpc import reflection
from server.rpc.interceptors import CallInterceptor, CallsInFlight
from server.rpc.limits import grpc_server_options
from server.rpc.rules import MethodRule, load_rules
from server.sealing import secret_box
from server.storage import migrate
from server.storage.db import Database
from server.telemetry import Telemetry
from server.tlsfront import PeerRegistry, TlsFront, make_server_context
from signing.ca.keys import load_private_key

__all__ = ["Application", "StartupError"]

log = logging.getLogger("server")


class StartupError(RuntimeError):
    """The server cannot start with this configuration; the message says why."""


class _Uvicorn(uvicorn.Server):
    # The application owns signal handling; uvicorn must not install (or re-raise) its own.
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read {what} {path}: {exc.strerror}") from None


def _certificates(paths: tuple[str, ...], what: str) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            certs.extend(x509.load_pem_x509_certificates(_read(path, what)))
        except ValueError:
            raise StartupError(f"{what} {path} holds no PEM certificate") from None
    return certs


def _worker_index() -> int:
    """This process's index among the host's workers (server/workers.py), 0 when alone."""
    import os

    from server.workers import WORKER_ENV

    value = os.environ.get(WORKER_ENV, "0")
    return int(value) if value.isdigit() else 0


def _shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other worker processes bind too (``SO_REUSEPORT``): the kernel
    spreads new connections over them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class Application:
    def __init__(self, config: Config, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.config = config
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.metrics = Metrics()
        self.grpc_port = 0
        self.http_port = 0
        self._stopping = False
        self._stopped = asyncio.Event()
        self._modules: list[Module] = []
        self._front: TlsFront | None = None
        self._grpc: grpc.aio.Server | None = None
        self._balancer_grpc: grpc.aio.Server | None = None
        self._admin: _Uvicorn | None = None
        self._admin_task: asyncio.Task[None] | None = None
        self.admin_port = 0
        self._http: _Uvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._health: health.aio.HealthServicer | None = None
        self._calls = CallsInFlight()  # of both gRPC servers, waited for at shutdown
        self._runtime_dir: tempfile.TemporaryDirectory[str] | None = None
        self._registry = PeerRegistry()
        # Several worker processes share the public ports (server/workers.py).
        self._reuse_port = config.server.workers > 1
        self.db = Database(config.storage.url, echo=config.storage.echo,
                           pool_size=config.storage.pool_size)
        self.telemetry = Telemetry(config.telemetry) if config.telemetry.otlp_endpoint else None
        self.audit = AuditWriter(self.db)
        self.domain_metrics = DomainMetrics(self.db, self.metrics, self.clock)
        self.executor = ThreadPoolExecutor(max_workers=config.server.worker_threads,
                                           thread_name_prefix="vnegov-worker")
        self.context = AppContext(config=config, db=self.db, audit=self.audit,
                                  metrics=self.metrics, executor=self.executor, clock=self.clock,
                                  secret_box=secret_box(config))
        self.jobs = JobRunner(self.db, run=self.context.run, clock=self.clock,
                              lease_seconds=config.server.job_lease_seconds,
                              poll_seconds=config.server.job_poll_seconds)
        self.context.jobs = self.jobs
        self.changes = ChangeListener(config.storage.url, run=self.context.run)
        self.context.changes = self.changes

    # ---------------------------------------------------------------- start
    async def start(self) -> None:
        pending = await asyncio.to_thread(migrate.pending, self.db)
        if pending:
            raise StartupError("the database schema is not up to date (run `vnegov migrate`); "
                               f"missing: {', '.join(sorted(pending))}")
        self.audit.start()
        if self.telemetry is not None:
            self.telemetry.install(self.db.engine)
        if self.context.secret_box is None:
            log.warning("no master key (secrets.key_file): secrets kept in the database, such "
                        "as TOTP seeds, are stored unsealed")
        self._modules = [factory(self.context) for factory in MODULES]
        for module in self._modules:
            await module.start()
        await self.changes.start()
        await self.jobs.start()
        authenticator = self._authenticator()
        services = [s for m in self._modules for s in m.grpc_services()]
        service_names = [s.name for s in services]
        builtin = [health.SERVICE_NAME, *reflection.SERVICE_NAMES]
        try:
            rules = load_rules(service_names + builtin)
        except (ValueError, KeyError) as exc:
            raise StartupError(str(exc)) from None
        self._grpc = self._grpc_server(authenticator, rules, services, service_names + builtin)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        if self.config.server.balancer_listen:
            self._balancer_grpc = self._grpc_server(self._forwarded_authenticator(authenticator),
                                                    rules, services, service_names + builtin)
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._balancer_grpc)
        await self._listen_grpc()
        await self._grpc.start()
        if self._balancer_grpc is not None:
            self._listen_balancer()
            await self._balancer_grpc.start()
        for name in ["", *service_names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await self._listen_http()
        await self._listen_admin()
        log.info("server started", extra={
            "grpc_port": self.grpc_port, "http_port": self.http_port,
            "admin_port": self.admin_port, "balancer_listen": self.config.server.balancer_listen,
            "mode": "plaintext" if self.config.server.plaintext else "mutual-tls",
            "database": self.db.dialect,
            "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        })

    def _grpc_server(self, authenticator: Authenticator, rules: Mapping[str, MethodRule],
                     services: Sequence[GrpcService], names: list[str]) -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=[CallInterceptor(authenticator=authenticator, rules=rules,
                                          metrics=self.metrics, audit=self.audit,
                                          clock=self.clock, limits=self.config.limits.grpc,
                                          telemetry=self.telemetry, in_flight=self._calls)],
            options=[*grpc_server_options(self.config.limits.grpc),
                     ("grpc.so_reuseport", 1 if self._reuse_port else 0)],
        )
        for service in services:
            service.add_to_server(service.servicer, server)
        reflection.enable_server_reflection(names, server)
        return server

    def _forwarded_authenticator(self, direct: Authenticator) -> Authenticator:
        """The balancer listener's authenticator: certificates from the balancer's headers,
        verified like the embedded front's (same trust anchors, permissions, revocation)."""
        cfg = self.config.server
        if direct.verifier is None:
            raise StartupError("server.balancer_listen needs mutual TLS (it cannot be combined "
                               "with server.plaintext)")
        peers = None if cfg.balancer_listen.startswith("unix:") \
            else TrustedProxies(cfg.balancer_peers)
        return ForwardedCertificateAuthenticator(direct.verifier, bearer=direct.bearer,
                                                 peers=peers)

    def _listen_balancer(self) -> None:
        assert self._balancer_grpc is not None
        listen = self.config.server.balancer_listen
        if listen.startswith("unix:") and self._reuse_port:
            # Worker processes cannot share a Unix socket: each listens on SOCKET.<index>, and
            # the balancer lists them all as servers.
            listen = f"{listen}.{_worker_index()}"
        if self._balancer_grpc.add_insecure_port(listen) == 0:
            raise StartupError(f"cannot listen on server.balancer_listen {listen}")
        if listen.startswith("unix:"):
            # The balancer reaches it through its group; nobody else may connect.
            with contextlib.suppress(OSError):
                os.chmod(listen[len("unix:"):], 0o660)

    def _authenticator(self) -> Authenticator:
        cfg = self.config
        permissions = PermissionTable(cfg.auth.callers)
        if cfg.server.plaintext:
            row = permissions.row_for_agency(cfg.auth.plaintext_caller)
            if row is None:
                raise StartupError("plaintext mode needs auth.plaintext_caller to name the agency "
                                   "code of a row in [[auth.callers]]")
            log.warning("gRPC is served WITHOUT TLS: every call is treated as coming from %s. "
                        "Use this only for local development.", row.agency_code)
            caller = Caller(
                display_name=row.name or "plaintext-development", agency_code=row.agency_code,
                province_code="", scopes=frozenset(row.scopes), provinces=frozenset(row.provinces),
                method=AuthMethod.PLAINTEXT_DEVELOPMENT,
            )
            return Authenticator(plaintext_caller=caller,
                                 bearer=self.context.registry.get("bearer_authenticator"))
        roots = _certificates(cfg.tls.client_ca_files, "client CA file")
        intermediates = _certificates(cfg.tls.client_intermediate_files, "intermediate file")
        if not roots:
            raise StartupError("tls.client_ca_files must name the trust anchors of client "
                               "certificates (or set server.plaintext for development)")
        revocation = self.context.registry.get("revocation_checker")
        verifier = ClientCertificateVerifier(roots, intermediates, permissions, revocation)
        return Authenticator(registry=self._registry, verifier=verifier,
                             bearer=self.context.registry.get("bearer_authenticator"))

    async def _listen_grpc(self) -> None:
        assert self._grpc is not None
        cfg = self.config
        if cfg.server.plaintext:
            self.grpc_port = self._grpc.add_insecure_port(
                f"{cfg.server.grpc_host}:{cfg.server.grpc_port}")
            if self.grpc_port == 0:
                raise StartupError(f"cannot listen on {cfg.server.grpc_host}:"
                                   f"{cfg.server.grpc_port}")
            return
        chain = _certificates((cfg.tls.cert_file,), "server certificate file")
        passphrase = _read(cfg.tls.key_passphrase_file, "passphrase file").strip() \
            if cfg.tls.key_passphrase_file else None
        try:
            key = load_private_key(_read(cfg.tls.key_file, "server key file"), passphrase)
        except Exception as exc:
            raise StartupError(f"cannot load the server key {cfg.tls.key_file}: {exc}") from None
        roots = _certificates(cfg.tls.client_ca_files, "client CA file")
        intermediates = _certificates(cfg.tls.client_intermediate_files, "intermediate file")
        context = make_server_context(chain, key, roots + intermediates)
        self._runtime_dir = tempfile.TemporaryDirectory(prefix="vnegov-")
        os.chmod(self._runtime_dir.name, 0o700)
        inner = os.path.join(self._runtime_dir.name, "grpc.sock")
        if self._grpc.add_insecure_port("unix:" + inner) == 0:
            raise StartupError("cannot create the internal gRPC socket")
        self._front = TlsFront(context, inner, self._registry,
                               proxy_from=TrustedProxies(cfg.server.proxy_protocol_from))
        try:
            self.grpc_port = await self._front.start(cfg.server.grpc_host, cfg.server.grpc_port,
                                                     reuse_port=self._reuse_port)
        except OSError as exc:
            raise StartupError(f"cannot listen on {cfg.server.grpc_host}:{cfg.server.grpc_port}: "
                               f"{exc.strerror}") from None

    async def _listen_http(self) -> None:
        cfg = self.config
        routes = [r for m in self._modules for r in m.http_routes()]
        limits = cfg.limits.http.per_worker(cfg.server.workers)
        app = build_http_app(self.metrics, self._ready, routes, limits=limits,
                             trusted_proxies=TrustedProxies(cfg.server.trusted_proxies),
                             serve_metrics=cfg.server.admin_port < 0, telemetry=self.telemetry)
        head = HeadLimits(max_head_bytes=limits.max_head_bytes, max_headers=limits.max_headers,
                          max_url_bytes=limits.max_url_bytes,
                          head_timeout=limits.head_timeout_seconds)
        # Proxy headers are read by the application, from configured proxies only
        # (server/http/client.py), never by uvicorn (which trusts any loopback peer).
        config = uvicorn.Config(app, host=cfg.server.http_host, port=cfg.server.http_port,
                                log_config=None, access_log=False, lifespan="off",
                                http=limited_protocol(head), proxy_headers=False,
                                limit_concurrency=limits.max_connections,
                                timeout_graceful_shutdown=max(1, int(
                                    cfg.server.shutdown_grace_seconds)))
        self._http, self._http_task, self.http_port = await self._serve_http(
            config, "http", cfg.server.http_host, cfg.server.http_port, shared=self._reuse_port)

    async def _listen_admin(self) -> None:
        """Metrics and health for operators and the balancer's checks, off the public port."""
        cfg = self.config.server
        if cfg.admin_port < 0:
            return
        app = build_admin_app(self.metrics, self._ready)
        # Each worker process of a host has its own admin port: admin_port + its index.
        port = cfg.admin_port + _worker_index() if cfg.admin_port else 0
        config = uvicorn.Config(app, host=cfg.admin_host, port=port, log_config=None,
                                access_log=False, lifespan="off", proxy_headers=False,
                                limit_concurrency=64, timeout_graceful_shutdown=1)
        self._admin, self._admin_task, self.admin_port = await self._serve_http(
            config, "admin", cfg.admin_host, port)

    async def _serve_http(self, config: uvicorn.Config, name: str, host: str, port: int, *,
                          shared: bool = False) -> tuple[_Uvicorn, asyncio.Task[None], int]:
        server = _Uvicorn(config)
        sockets = [_shared_socket(host, port)] if shared else None
        task = asyncio.create_task(server.serve(sockets=sockets), name=name)
        while not server.started:
            if task.done():
                task.result()
                raise StartupError(f"cannot listen on {host}:{port}")
            await asyncio.sleep(0.01)
        sockets = [s for srv in server.servers for s in srv.sockets]
        return server, task, int(sockets[0].getsockname()[1])

    async def _ready(self) -> bool:
        if self._stopping:
            return False

        def ping() -> bool:
            with self.db.read() as session:
                session.execute(text("SELECT 1"))
            return True

        try:
            return await asyncio.wait_for(self.context.run(ping), timeout=2)
        except Exception:
            return False

    # ---------------------------------------------------------------- stop
    async def stop(self, grace: float | None = None) -> None:
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        grace = self.config.server.shutdown_grace_seconds if grace is None else grace
        log.info("shutting down", extra={"grace_seconds": grace})
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        drain = self.config.server.shutdown_drain_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self._balancer_grpc is not None and drain > 0 and grace > 0:
            # Behind a balancer: /readyz already answers 503; keep serving normally until the
            # balancer's checks have taken this replica out, so no new call races the GOAWAY
            # the gRPC servers send when they stop (a call the balancer sent just before it
            # arrived would be cut short).
            await asyncio.sleep(min(drain, grace))
            deadline = loop.time() + grace  # the grace period runs from here, as before
            # Then let the calls in flight end, within half the grace period (the other half
            # is the servers' own), before the servers stop: once the last stream of a
            # connection closes after the final GOAWAY, grpc closes the connection, and an
            # answer whose trailers were still being written loses them (the balancer sees the
            # stream cut short, the caller an UNKNOWN error that no retry policy repeats).
            # Calls that ended before leave nothing to cut.
            waited = loop.time() + grace / 2
            while self._calls.count > 0 and loop.time() < waited:
                await asyncio.sleep(0.05)
            await asyncio.sleep(min(0.1, grace / 2))  # their answers, sent once recorded
        if self._front is not None:
            self._front.stop_accepting()
        if self._http is not None:
            self._http.should_exit = True
        remaining = max(deadline - loop.time(), 0.0) if grace > 0 else grace  # of the grace
        stopping = [server.stop(remaining) for server in (self._grpc, self._balancer_grpc)
                    if server is not None]
        await asyncio.gather(*stopping)
        if self._front is not None:
            await self._front.close()
        if self._http_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._http_task
        if self._admin is not None and self._admin_task is not None:
            self._admin.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._admin_task
        await self.jobs.stop(grace)
        await self.changes.stop()
        for module in reversed(self._modules):
            try:
                await module.stop()
            except Exception:
                log.exception("module %s failed to stop cleanly", module.name)
        await self.audit.close()
        self.executor.shutdown(wait=True)
        await asyncio.to_thread(self.db.dispose)
        if self.telemetry is not None:
            await asyncio.to_thread(self.telemetry.shutdown)
        if self._runtime_dir is not None:
            self._runtime_dir.cleanup()
        log.info("server stopped")
        self._stopped.set()

    async def serve_until_signal(self, announce: Callable[[Application], None] | None = None
                                 ) -> None:
        """Start, serve until SIGTERM or SIGINT, then stop gracefully; ``announce`` is called
        once everything listens (the command line prints what is served)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
        except BaseException:
            await self.stop(0)
            raise
        if announce is not None:
            announce(self)
        await stop.wait()
        await self.stop()
