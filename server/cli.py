"""The ``vnegov`` command: the server's entry point, and the only code that reads configuration
files and environment variables.

    vnegov init [--data-dir DIR] [--force]   create a data directory: config, SQLite, development PKI
    vnegov serve [--migrate]                 serve gRPC and HTTP until SIGTERM/SIGINT
    vnegov migrate                           apply database migrations
    vnegov audit verify                      check the audit hash chain; name the first broken event

The configuration file is ``--config PATH``, else ``$VNEGOV_CONFIG``, else ``<data-dir>/vnegov.toml``
with the data directory from ``--data-dir``, ``$VNEGOV_DATA_DIR`` or ``./data``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from server import cli_documents, cli_identity, cli_payments
from server.cli_ca import register as register_ca_commands
from server.config import Config, ConfigError, load_config
from server.workers import WORKER_ENV, WorkerTag

__all__ = ["main"]

DEFAULT_CONFIG = """\
# vnegov server configuration, written by `vnegov init`. Paths are relative to this file.
# Every setting can be overridden by an environment variable VNEGOV__<SECTION>__<KEY>.
data_dir = "."

[server]
grpc_host = {grpc_host}
grpc_port = {grpc_port}
http_host = {http_host}
http_port = {http_port}
# Where clients reach the HTTP side: the development PKI's CRL, OCSP, CA certificate and
# time-stamping URLs, and documents.tsa_url, were written with it by `vnegov init`.
public_url = {public_url}
plaintext = false
shutdown_grace_seconds = 30

[tls]
cert_file = "pki/server.pem"
key_file = "pki/server.key.pem"
key_passphrase_file = "secrets/pki-passphrase"
client_ca_files = ["pki/root-ca.pem"]
client_intermediate_files = ["pki/issuing-ca.pem"]

[storage]
# Empty: SQLite in the data directory. PostgreSQL: "postgresql+psycopg://user@host:5432/db".
url = ""

[pki]
directory = "pki"
key_passphrase_file = "secrets/pki-passphrase"

[secrets]
# Seals secrets kept in the database (TOTP seeds, the identity provider's own secrets).
key_file = "secrets/master.key"

[logging]
level = "INFO"
format = "json"

# Permissions: which caller (by the agency code in its certificate, optionally its common name)
# holds which scopes, in which provinces ("*" = all).
{callers}
"""


def _callers_toml() -> str:
    from server.devpki import SAMPLE_CLIENTS

    blocks = []
    for c in SAMPLE_CLIENTS:
        scopes = ", ".join(f'"{s}"' for s in c.scopes)
        provinces = ", ".join(f'"{p}"' for p in c.provinces)
        blocks.append(f'[[auth.callers]]\n# {c.organisation} ({c.file_name})\n'
                      f'agency_code = "{c.agency_code}"\nname = "{c.common_name}"\n'
                      f'scopes = [{scopes}]\nprovinces = [{provinces}]\n')
    return "\n".join(blocks)


def _data_dir(args: argparse.Namespace, environ: Mapping[str, str]) -> Path:
    return Path(args.data_dir or environ.get("VNEGOV_DATA_DIR") or "data").resolve()


def _config(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    path = args.config or environ.get("VNEGOV_CONFIG")
    config_path = Path(path) if path else _data_dir(args, environ) / "vnegov.toml"
    if not config_path.exists():
        raise ConfigError(f"configuration file {config_path} does not exist "
                          f"(create a data directory with `vnegov init`)")
    return load_config(config_path, environ)


def _init_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """The server settings `init` writes: each from its option, else the environment override
    `serve` would apply (VNEGOV__SERVER__...), else the default; the public URL defaults to the
    HTTP host and port chosen."""
    from server.config import Config, _apply_env

    data: dict[str, Any] = {"server": {}}
    for key in ("grpc_host", "grpc_port", "http_host", "http_port", "public_url"):
        value = getattr(args, key, None)
        if value is not None:
            data["server"][key] = value
    given = {k for k in data["server"]}
    env_data: dict[str, Any] = {}
    _apply_env(env_data, {k: v for k, v in environ.items() if k.startswith("VNEGOV__SERVER__")})
    for key, value in env_data.get("server", {}).items():
        if key not in given:
            data["server"][key] = value
    server = Config.from_config(data, base_dir=Path.cwd()).server
    public_url = server.public_url
    if "public_url" not in data["server"]:
        host = server.http_host if server.http_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        public_url = f"http://{_url_host(host)}:{server.http_port}"
    return {"grpc_host": server.grpc_host, "grpc_port": server.grpc_port,
            "http_host": server.http_host, "http_port": server.http_port,
            "public_url": public_url.rstrip("/")}


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _toml(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)  # JSON strings and integers are valid TOML


def cmd_init(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from server.devpki import create_dev_pki, create_dev_token, demo_sections
    from server.sealing import create_master_key
    from server.storage import migrate
    from server.storage.db import Database

    data_dir = _data_dir(args, environ)
    config_path = data_dir / "vnegov.toml"
    if config_path.exists() and not args.force:
        print(f"{data_dir} is already initialised (use --force to recreate it)")
        return 0
    settings = _init_settings(args, environ)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    config_path.write_text(DEFAULT_CONFIG.format(
        grpc_host=_toml(settings["grpc_host"]), grpc_port=settings["grpc_port"],
        http_host=_toml(settings["http_host"]), http_port=settings["http_port"],
        public_url=_toml(settings["public_url"]), callers=_callers_toml()), encoding="utf-8")
    config = load_config(config_path, {})
    public_url = config.server.public_url
    names = tuple(dict.fromkeys(["localhost", *(args.server_name or []),
                                 *(h for h in (config.server.grpc_host, config.server.http_host)
                                   if h and not _is_ip(h))]))
    pki = create_dev_pki(Path(config.pki.directory), Path(config.pki.key_passphrase_file),
                         public_url=public_url, server_names=names)
    master_key = Path(config.secrets.key_file)
    if args.force:
        master_key.unlink(missing_ok=True)
    create_master_key(master_key)
    token = create_dev_token(data_dir, force=args.force)
    with config_path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + demo_sections(pki, public_url, data_dir, token=token))
    db_file = data_dir / "vnegov.db"
    if args.force:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    db = Database(config.storage.url)
    migrate.upgrade(db)
    db.dispose()
    print(f"initialised {data_dir}: configuration vnegov.toml, database, development PKI "
          f"(sample client certificates in {data_dir / 'pki' / 'clients'})")
    print(f"  gRPC (mutual TLS) {config.server.grpc_host}:{config.server.grpc_port}, HTTP "
          f"{config.server.http_host}:{config.server.http_port}, public URL {public_url}")
    if token is not None:
        print(f"  signing keys' token: SoftHSM2 token {token.label!r} in {token.directory}")
    else:
        print("  no SoftHSM2 (softhsm2-util): remote signing needs documents.token_module")
    return 0


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def cmd_migrate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from server.storage import migrate
    from server.storage.db import Database

    config = _config(args, environ)
    db = Database(config.storage.url)
    migrate.upgrade(db)
    print(f"database is at {', '.join(sorted(migrate.current_heads(db)))}")
    db.dispose()
    return 0


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _announce(app: Any) -> None:
    """What is served, from the ports actually bound (not the ones asked for): a line for a
    person at a terminal, else a log record like every other line of the log."""
    server = app.config.server
    mode = "plaintext" if server.plaintext else "mutual TLS"
    text = (f"serving gRPC ({mode}) on {_url_host(server.grpc_host)}:{app.grpc_port}, "
            f"HTTP on {_url_host(server.http_host)}:{app.http_port} (public URL "
            f"{server.public_url})")
    if sys.stderr.isatty():
        print(f"vnegov: {text}; Ctrl-C stops", file=sys.stderr, flush=True)
    else:
        logging.getLogger("server").info(text, extra={
            "grpc_port": app.grpc_port, "http_port": app.http_port,
            "public_url": server.public_url})


def cmd_serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from server.app import Application, StartupError
    from server.logs import configure_logging

    config = _config(args, environ)
    configure_logging(config.logging.level, config.logging.format)
    worker = environ.get(WORKER_ENV)
    if args.migrate and worker is None:  # once, by the supervisor when there are workers
        cmd_migrate(args, environ)
    if config.server.workers > 1 and worker is None:
        return _supervise(config, environ)
    if worker is not None:
        for handler in logging.getLogger().handlers:
            handler.addFilter(WorkerTag(int(worker)))
    try:
        with asyncio.Runner(loop_factory=_loop_factory(config.server.event_loop)) as runner:
            runner.run(Application(config).serve_until_signal(_announce))
    except StartupError as exc:
        print(f"vnegov: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


def _supervise(config: Config, environ: Mapping[str, str]) -> int:
    """Run ``server.workers`` worker processes sharing the ports (server/workers.py)."""
    from server.workers import Supervisor, reserve_port, worker_command

    env = dict(environ)
    reserved = []
    for key, host, port in (("GRPC_PORT", config.server.grpc_host, config.server.grpc_port),
                            ("HTTP_PORT", config.server.http_host, config.server.http_port)):
        if port == 0:  # one port for every worker, chosen here
            chosen, sock = reserve_port(host)
            reserved.append(sock)
            env[f"VNEGOV__SERVER__{key}"] = str(chosen)
    try:
        return Supervisor(config.server.workers, worker_command(), env,
                          grace_seconds=config.server.shutdown_grace_seconds).run()
    finally:
        for sock in reserved:
            sock.close()


def cmd_audit_verify(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from server.audit import verify_chain
    from server.storage.db import Database

    config = _config(args, environ)
    db = Database(config.storage.url)
    try:
        report = verify_chain(db)
    finally:
        db.dispose()
    if report.ok:
        print(f"audit chain OK: {report.checked} events verified")
        return 0
    print(f"audit chain BROKEN at event {report.first_broken_seq}: {report.problem} "
          f"({report.checked} events before it verified)")
    return 1


def load_config_for(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The configuration a subcommand runs with (for command groups in other modules)."""
    return _config(args, environ)


# Command groups contributed by the domain modules: each is a function that adds its subparsers
# (``ca``, ``sign``, ``receipts``, ...) and sets ``func(args, environ) -> int`` on them. A module
# adds one line here and keeps its commands in its own ``server/cli_<domain>.py``.
COMMAND_GROUPS: list[Callable[[Any], None]] = [
    register_ca_commands, cli_documents.register, cli_identity.register, cli_payments.register,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vnegov", description="vnegov reference server")
    parser.add_argument("--config", help="configuration file (TOML)")
    parser.add_argument("--data-dir", help="data directory (default ./data)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create a data directory with a development PKI")
    p.add_argument("--force", action="store_true", help="recreate an existing data directory")
    p.add_argument("--grpc-host", help="address gRPC listens on (default 127.0.0.1, or "
                   "VNEGOV__SERVER__GRPC_HOST)")
    p.add_argument("--grpc-port", type=int, help="gRPC port (default 50051, or "
                   "VNEGOV__SERVER__GRPC_PORT)")
    p.add_argument("--http-host", help="address HTTP listens on (default 127.0.0.1, or "
                   "VNEGOV__SERVER__HTTP_HOST)")
    p.add_argument("--http-port", type=int, help="HTTP port (default 8080, or "
                   "VNEGOV__SERVER__HTTP_PORT)")
    p.add_argument("--public-url", help="URL clients reach the HTTP side at, written into the "
                   "development certificates (default http://HTTP_HOST:HTTP_PORT, or "
                   "VNEGOV__SERVER__PUBLIC_URL)")
    p.add_argument("--server-name", action="append", metavar="NAME",
                   help="another DNS name for the server certificate (repeatable; localhost and "
                   "the host names above are always in it)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="serve gRPC and HTTP until SIGTERM")
    p.add_argument("--migrate", action="store_true", help="apply migrations before serving")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="verify the audit hash chain")
    p.set_defaults(func=cmd_audit_verify)

    for register in COMMAND_GROUPS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    # fontTools reports each font table it drops while subsetting fonts for PDF appearances.
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    try:
        return int(args.func(args, env))
    except ConfigError as exc:
        print(f"vnegov: configuration error: {exc}", file=sys.stderr)
        return 2
