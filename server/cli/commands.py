"""The ``vnegov`` command: the server's entry point, and the only code that reads configuration
files and environment variables. One command tree (click), built here from the domain modules'
groups (``server/cli/<domain>.py``):

    vnegov init [--data-dir DIR] [--force]   create a data directory: config, SQLite, development PKI
    vnegov serve [--migrate]                 serve gRPC and HTTP until SIGTERM/SIGINT
    vnegov migrate                           apply database migrations
    vnegov audit verify                      check the audit hash chain; name the first broken event
    vnegov completion bash|zsh|fish          the shell completion script

The configuration file is ``--config PATH``, else ``$VNEGOV_CONFIG``, else ``<data-dir>/vnegov.toml``
with the data directory from ``--data-dir``, ``$VNEGOV_DATA_DIR`` or ``./data``. Errors and exit
codes: :mod:`server.cli.kit`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from server.cli.kit import (
    EXIT_REFUSED,
    EXIT_USAGE,
    Arg,
    CliError,
    State,
    VnegovCommand,
    classify,
    emit,
    handler,
    json_option,
)
from server.config import Config, ConfigError, load_config
from server.workers import WORKER_ENV, WorkerTag

__all__ = ["COMMAND_GROUPS", "cli", "load_config_for", "main"]

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
        emit(args, {"data_dir": str(data_dir), "initialised": False},
             f"{data_dir} is already initialised (use --force to recreate it)")
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
    served = (f"  gRPC (mutual TLS) {config.server.grpc_host}:{config.server.grpc_port}, HTTP "
              f"{config.server.http_host}:{config.server.http_port}, public URL {public_url}")
    tokens = (f"  signing keys' token: SoftHSM2 token {token.label!r} in {token.directory}"
              if token is not None else
              "  no SoftHSM2 (softhsm2-util): remote signing needs documents.token_module")
    emit(args, {"data_dir": str(data_dir), "initialised": True,
                "config": str(config_path), "clients": str(data_dir / "pki" / "clients"),
                "grpc": f"{config.server.grpc_host}:{config.server.grpc_port}",
                "http": f"{config.server.http_host}:{config.server.http_port}",
                "public_url": public_url,
                "token": {"label": token.label, "directory": str(token.directory)}
                if token is not None else None},
         f"initialised {data_dir}: configuration vnegov.toml, database, development PKI "
         f"(sample client certificates in {data_dir / 'pki' / 'clients'})\n{served}\n{tokens}")
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
    heads = sorted(migrate.current_heads(db))
    emit(args, {"heads": heads}, f"database is at {', '.join(heads)}")
    db.dispose()
    return 0


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _started(app: Any) -> None:
    _announce(app)
    # What the server loaded to start (modules, configuration, keys, pools) lives as long as
    # the process: frozen out of the collector's generations, it is not traversed again by each
    # full collection. And a younger generation that holds more before it is collected: every
    # call leaves short-lived containers behind, and each collection of the youngest generation
    # walks the state of all the calls in flight.
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNGEST, *gc.get_threshold()[1:])


_GC_YOUNGEST = 20_000


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


def _check_database(config: Config) -> None:
    """Connect once: a database that refuses the login or cannot be reached stops the command
    here, as one line, rather than from inside the starting server."""
    from sqlalchemy import text

    from server.storage.db import Database

    db = Database(config.storage.url)
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        db.dispose()


def cmd_serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from server.app import Application, StartupError
    from server.logs import configure_logging

    config = _config(args, environ)
    _check_database(config)  # before logging starts: an unreachable database is one line
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
            runner.run(Application(config).serve_until_signal(_started))
    except StartupError as exc:
        raise CliError(f"cannot start: {exc}", "CANNOT_START", EXIT_USAGE) from None
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
    data = {"ok": report.ok, "checked": report.checked,
            "first_broken_seq": report.first_broken_seq, "problem": report.problem}
    if report.ok:
        emit(args, data, f"audit chain OK: {report.checked} events verified")
        return 0
    emit(args, data, f"audit chain BROKEN at event {report.first_broken_seq}: {report.problem} "
         f"({report.checked} events before it verified)")
    return EXIT_REFUSED


def load_config_for(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The configuration a subcommand runs with (for command groups in other modules)."""
    return _config(args, environ)


def _version() -> str:
    try:
        return importlib.metadata.version("vnegov")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return "unknown"


EPILOG = """\b
Exit codes: 0 done; 1 refused (a rule, a conflict, an invalid signature);
2 usage or input error (missing or malformed file, wrong password, unknown name);
3 unavailable (a server or database that cannot be reached).
Errors are one line on stderr: vnegov: <message> [REASON].
Shell completion: eval "$(vnegov completion bash)" (or zsh, fish)."""


@click.group(name="vnegov", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"],
                                                            "max_content_width": 100})
@click.option("--config", type=click.Path(dir_okay=False), envvar=None,
              help="configuration file (TOML); default $VNEGOV_CONFIG, else <data-dir>/vnegov.toml")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="data directory (default $VNEGOV_DATA_DIR, else ./data)")
@click.version_option(_version(), "--version", prog_name="vnegov",
                      message="%(prog)s %(version)s", help="print the version and exit")
def cli(config: str | None, data_dir: str | None) -> None:
    """vnegov reference server: identity, official signatures, fees and e-receipts."""


@cli.command("init", cls=VnegovCommand)
@click.option("--force", is_flag=True, help="recreate an existing data directory")
@click.option("--grpc-host", help="address gRPC listens on (default 127.0.0.1, or "
              "VNEGOV__SERVER__GRPC_HOST)")
@click.option("--grpc-port", type=click.IntRange(0, 65535),
              help="gRPC port (default 50051, or VNEGOV__SERVER__GRPC_PORT)")
@click.option("--http-host", help="address HTTP listens on (default 127.0.0.1, or "
              "VNEGOV__SERVER__HTTP_HOST)")
@click.option("--http-port", type=click.IntRange(0, 65535),
              help="HTTP port (default 8080, or VNEGOV__SERVER__HTTP_PORT)")
@click.option("--public-url", help="URL clients reach the HTTP side at, written into the "
              "development certificates (default http://HTTP_HOST:HTTP_PORT, or "
              "VNEGOV__SERVER__PUBLIC_URL)")
@click.option("--server-name", multiple=True, metavar="NAME",
              help="another DNS name for the server certificate (repeatable; localhost and "
              "the host names above are always in it)")
@json_option
@handler
def init_command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Create a data directory: configuration, database and a development PKI."""
    return cmd_init(args, environ)


@cli.command("serve", cls=VnegovCommand)
@click.option("--migrate", is_flag=True, help="apply migrations before serving")
@handler
def serve_command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Serve gRPC and HTTP until SIGTERM or SIGINT."""
    args.json_output = False
    return cmd_serve(args, environ)


@cli.command("migrate", cls=VnegovCommand)
@json_option
@handler
def migrate_command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Apply database migrations."""
    return cmd_migrate(args, environ)


@cli.group("audit")
def audit_group() -> None:
    """Audit log tools."""


@audit_group.command("verify", cls=VnegovCommand)
@json_option
@handler
def audit_verify_command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Verify the audit hash chain; exit 1 and name the first broken event if it is broken."""
    return cmd_audit_verify(args, environ)


@cli.command("completion", cls=VnegovCommand)
@click.argument("shell", cls=Arg, type=click.Choice(["bash", "zsh", "fish"]),
                help="the shell to complete in")
def completion_command(shell: str) -> int:
    """Print the shell completion script: eval "$(vnegov completion bash)"."""
    from click.shell_completion import get_completion_class

    completion = get_completion_class(shell)
    assert completion is not None  # the choice above lists only supported shells
    click.echo(completion(cli, {}, "vnegov", "_VNEGOV_COMPLETE").source())
    return 0


def _register_groups() -> None:
    from server.cli import ca, documents, identity, payments

    for module in (ca, documents, identity, payments):
        for command in module.COMMANDS:
            cli.add_command(command)


# Command groups contributed per domain: each ``server/cli/<domain>.py`` lists its click
# commands and groups in ``COMMANDS``; adding a module here adds its commands to the tree.
COMMAND_GROUPS = ("server.cli.ca", "server.cli.documents", "server.cli.identity",
                  "server.cli.payments")
_register_groups()


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run ``vnegov`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    env = os.environ if environ is None else environ
    # fontTools reports each font table it drops while subsetting fonts for PDF appearances.
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="vnegov", standalone_mode=False,
                          obj=State(environ=env))
    except click.exceptions.Abort:
        click.echo("vnegov: interrupted [ABORTED]", err=True)
        return EXIT_REFUSED
    except Exception as exc:  # every failure: one line, never a traceback
        code, reason, message = classify(exc)
        if reason == "INTERNAL" and env.get("VNEGOV_DEBUG"):
            traceback.print_exc()
        click.echo(f"vnegov: {message} [{reason}]", err=True)
        return code
    return int(result or 0) if isinstance(result, int) else 0

