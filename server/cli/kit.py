"""What every ``vnegov`` command shares: the error format, the exit codes, ``--json``, progress bars.

Exit codes (the same for every command, documented in ``vnegov --help``):

    0  done (for ``verify``: every signature TOTAL-PASSED)
    1  refused: the request was understood and declined (a rule, a conflict, a rejected
       certificate request, an invalid signature, a broken audit chain)
    2  usage or input error: a missing or unreadable file, a malformed file or value, a wrong
       password, an unknown name, a bad configuration
    3  unavailable: a server or database that cannot be reached; trying again later may work

Every failure is one line on stderr: ``vnegov: <message> [REASON]``, never a traceback (set
``VNEGOV_DEBUG=1`` to see one for an unexpected error, which is reported as ``[INTERNAL]``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import click

__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "Arg",
    "CliError",
    "Handler",
    "Progress",
    "State",
    "VnegovCommand",
    "classify",
    "emit",
    "handler",
    "json_option",
    "progress",
]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

Handler = Callable[[argparse.Namespace, Mapping[str, str]], int]


class CliError(Exception):
    """A failure a command reports itself: ``vnegov: <message> [REASON]``, exit ``code``."""

    def __init__(self, message: str, reason: str = "INVALID_ARGUMENT", code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.code = code


class Arg(click.Argument):
    """A positional argument; its help (click 8.3+) is listed under "Positional arguments"."""


class VnegovCommand(click.Command):
    """A command of the ``vnegov`` tree (one class, so the tree walk and the docs find them)."""


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``: print the result as JSON (one object) instead of text."""
    return click.option("--json", "json_output", is_flag=True,
                        help="print the result as JSON instead of text")(fn)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print a command's result: ``data`` as JSON with ``--json``, else ``text``."""
    if getattr(args, "json_output", False):
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True, default=str))
    elif text:
        click.echo(text)


def handler(fn: Handler) -> Callable[..., int]:
    """Adapt ``fn(args, environ) -> int`` to a click callback: ``args`` holds the command's
    parameters and the global ones (``config``, ``data_dir``) under their option names."""

    @functools.wraps(fn)
    def callback(**params: Any) -> int:
        ctx = click.get_current_context()
        merged: dict[str, Any] = {}
        for c in reversed(_chain(ctx)):
            merged.update(c.params)
        merged.update(params)
        merged.setdefault("json", merged.get("json_output", False))
        state = ctx.find_object(State)
        environ = state.environ if state else os.environ
        return int(fn(argparse.Namespace(**merged), environ) or 0)

    return callback


def _chain(ctx: click.Context) -> list[click.Context]:
    out = []
    c: click.Context | None = ctx
    while c is not None:
        out.append(c)
        c = c.parent
    return out


@dataclass
class State:
    """``ctx.obj`` of every command: the environment the command reads (tests pass their own)."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


# ------------------------------------------------------------------------------------ progress


class Progress:
    """A progress bar on stderr (rich). When stderr is not a terminal nothing is drawn while the
    work runs; one line (``reconciling: 120/120``) is printed to stderr when it ends."""

    def __init__(self, description: str, bar: Any = None, task: Any = None,
                 total: float | None = None, completed: float = 0) -> None:
        self.description = description
        self.completed = completed
        self.total = total
        self.status = ""
        self._bar = bar
        self._task = task

    def update(self, completed: float | None = None, total: float | None = None,
               advance: float | None = None, **fields: Any) -> None:
        if completed is not None:
            self.completed = completed
        if advance is not None:
            self.completed += advance
        if total is not None:
            self.total = total
        if fields:
            self.status = " ".join(f"{k}={v}" for k, v in fields.items())
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed, total=self.total,
                             status=self.status)

    def summary(self) -> str:
        done = f"{self.completed:g}" + (f"/{self.total:g}" if self.total is not None else "")
        return f"{self.description}: {done}" + (f" ({self.status})" if self.status else "")


@contextlib.contextmanager
def progress(description: str, total: float | None = None, *, enabled: bool = True,
             initial: int = 0) -> Iterator[Progress]:
    """A progress bar for work that may take more than a second (``enabled=False``: silent)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    if not enabled:
        yield Progress(description, total=total, completed=initial)
        return
    console = Console(stderr=True)
    if not console.is_terminal:
        quiet = Progress(description, total=total, completed=initial)
        yield quiet
        click.echo(quiet.summary(), err=True)
        return
    with RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(),
                      TextColumn("{task.fields[status]}"), console=console) as bar:
        task = bar.add_task(description, total=total, completed=initial, status="")
        yield Progress(description, bar, task, total=total, completed=initial)


# ------------------------------------------------------------------------------------ errors


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip()) or "failed"


_STATUS_EXIT = {
    "INVALID_ARGUMENT": EXIT_USAGE, "NOT_FOUND": EXIT_USAGE, "OUT_OF_RANGE": EXIT_USAGE,
    "UNAUTHENTICATED": EXIT_USAGE,
    "UNAVAILABLE": EXIT_UNAVAILABLE, "DEADLINE_EXCEEDED": EXIT_UNAVAILABLE,
    "RESOURCE_EXHAUSTED": EXIT_UNAVAILABLE,
}


# Library refusals that mean a server did not answer (their category is FAILED_PRECONDITION).
UNAVAILABLE_REASONS = frozenset({"TIMESTAMP_UNAVAILABLE"})


def classify(exc: BaseException, command_path: str = "vnegov") -> tuple[int, str, str]:
    """(exit code, REASON, one-line message) for an exception that ended a command."""
    code, reason, message = _classify(exc, command_path)
    return code, reason, _one_line(message)


def _classify(exc: BaseException, command_path: str) -> tuple[int, str, str]:
    from server.config import ConfigError

    if isinstance(exc, CliError):
        return exc.code, exc.reason, exc.message
    if isinstance(exc, click.UsageError):
        path = exc.ctx.command_path if exc.ctx else command_path
        if isinstance(exc, click.exceptions.NoArgsIsHelpError):
            return EXIT_USAGE, "USAGE", f"name a command (see '{path} --help')"
        return EXIT_USAGE, "USAGE", f"{exc.format_message()} (see '{path} --help')"
    if isinstance(exc, click.ClickException):
        return EXIT_USAGE, "INVALID_ARGUMENT", exc.format_message()
    if isinstance(exc, ConfigError):
        return EXIT_USAGE, "CONFIGURATION", f"configuration error: {exc}"
    library = _library_error(exc)
    if library is not None:
        return library
    database = _database_error(exc)
    if database is not None:
        return database
    network = _network_error(exc)
    if network is not None:
        return network
    if isinstance(exc, OSError):
        where = exc.filename or ""
        text = exc.strerror or str(exc)
        message = f"{where}: {text}" if where else text
        if isinstance(exc, FileNotFoundError):
            return EXIT_USAGE, "FILE_NOT_FOUND", message
        if isinstance(exc, PermissionError):
            return EXIT_USAGE, "FILE_NOT_ACCESSIBLE", message
        return EXIT_USAGE, "FILE_ERROR", message
    if isinstance(exc, UnicodeError):
        return EXIT_USAGE, "MALFORMED_INPUT", f"not valid text: {exc}"
    parse = _parse_error(exc)
    if parse is not None:
        return parse
    if isinstance(exc, ValueError):
        # cryptography ("Bad decrypt. Incorrect password?", "Could not deserialize key data"),
        # dates, numbers, enumerations: all bad input.
        reason = "WRONG_PASSWORD" if "password" in str(exc).lower() else "MALFORMED_INPUT"
        return EXIT_USAGE, reason, str(exc)
    if isinstance(exc, TypeError) and "password" in str(exc).lower():
        return EXIT_USAGE, "WRONG_PASSWORD", str(exc)
    return EXIT_REFUSED, "INTERNAL", f"unexpected error: {type(exc).__name__}: {exc}"


def _library_error(exc: BaseException) -> tuple[int, str, str] | None:
    import payments.errors as pe
    import signing.errors as se
    import vnid.errors as ve

    if not isinstance(exc, ve.VnidError | se.SigningError | pe.PaymentsError):
        try:
            from server.errors import ServerError
        except ImportError:  # pragma: no cover - the server extras are not installed
            return None
        if not isinstance(exc, ServerError):
            return None
    from server.errors import map_exception

    mapped = map_exception(exc, "cli")
    status = mapped.code.name
    message = str(getattr(exc, "message", "") or exc)
    extra = "".join(f" {k}={v}" for k, v in sorted(getattr(exc, "metadata", {}).items()))
    code = EXIT_UNAVAILABLE if mapped.reason in UNAVAILABLE_REASONS else \
        _STATUS_EXIT.get(status, EXIT_REFUSED)
    return code, mapped.reason, message + extra


def _database_error(exc: BaseException) -> tuple[int, str, str] | None:
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    orig = getattr(exc, "orig", None)
    sqlstate = str(getattr(orig, "sqlstate", None) or "")
    detail = str(orig or exc).strip()
    # psycopg reports a refused login without a SQLSTATE: read the server's message.
    login = ("password authentication failed", "no password supplied", "no pg_hba.conf entry",
             "authentication failed")
    if sqlstate.startswith("28") or any(t in detail for t in login) or (
            "FATAL:  role" in detail and "does not exist" in detail):
        return EXIT_USAGE, "DATABASE_LOGIN_FAILED", f"the database refused the login: {detail}"
    if sqlstate.startswith("3D") or ("FATAL:  database" in detail and "does not exist" in detail):
        return EXIT_USAGE, "DATABASE_NOT_FOUND", f"no such database: {detail}"
    if isinstance(exc, sa_exc.OperationalError) and (not sqlstate or sqlstate.startswith(("08", "57", "53"))):
        return EXIT_UNAVAILABLE, "DATABASE_UNAVAILABLE", f"cannot reach the database: {detail}"
    return None


def _network_error(exc: BaseException) -> tuple[int, str, str] | None:
    import socket
    import urllib.error

    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return EXIT_UNAVAILABLE, "UNAVAILABLE", f"cannot reach the server: {exc.reason}"
    if isinstance(exc, ConnectionError | socket.timeout | TimeoutError | socket.gaierror):
        return EXIT_UNAVAILABLE, "UNAVAILABLE", f"cannot reach the server: {exc}"
    try:
        import httpx
    except ImportError:  # pragma: no cover
        httpx = None  # type: ignore[assignment]
    if httpx is not None and isinstance(exc, httpx.TransportError):
        return EXIT_UNAVAILABLE, "UNAVAILABLE", f"cannot reach the server: {exc}"
    try:
        import grpc
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        status = exc.code()
        details = exc.details() if hasattr(exc, "details") else ""
        name = getattr(status, "name", "UNKNOWN")
        return _STATUS_EXIT.get(name, EXIT_REFUSED), name, f"the server answered {name}: {details}"
    return None


def _parse_error(exc: BaseException) -> tuple[int, str, str] | None:
    import tomllib

    import yaml

    if isinstance(exc, json.JSONDecodeError | yaml.YAMLError | tomllib.TOMLDecodeError):
        return EXIT_USAGE, "MALFORMED_INPUT", f"malformed input: {exc}"
    try:
        from lxml import etree
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, etree.XMLSyntaxError):
        return EXIT_USAGE, "MALFORMED_INPUT", f"malformed XML: {exc}"
    if isinstance(exc, KeyError):
        return EXIT_USAGE, "MALFORMED_INPUT", f"missing field {exc}"
    return None
