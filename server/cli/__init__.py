"""The ``vnegov`` command line: one click command tree.

``commands`` holds the root group, the server's own commands (init, serve, migrate, audit,
completion) and :func:`main`; ``kit`` what every command shares (the error line
``vnegov: <message> [REASON]``, the exit codes 0/1/2/3, ``--json``, progress bars); one module
per domain adds its groups (``ca``, ``documents``, ``identity``, ``payments``, ``receipts``).
"""

from server.cli.commands import COMMAND_GROUPS, cli, load_config_for, main
from server.config import load_config  # the entry point is what reads configuration files

__all__ = ["COMMAND_GROUPS", "cli", "load_config", "load_config_for", "main"]
