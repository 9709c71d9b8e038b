"""``cli-reference`` directive: the command line reference, generated from the click command tree
of ``vnegov`` (``server.cli.cli``), so it cannot drift from the commands: every command with its
help, usage, arguments and options."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def walk(command: click.Command, path: tuple[str, ...] = ("vnegov",)
         ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree, depth first, each group before its commands."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            if not sub.hidden:
                yield from walk(sub, (*path, name))


def _text(text: str | None) -> str:
    return " ".join((text or "").split())


def _param(ctx: click.Context, param: click.Parameter) -> list[str]:
    if isinstance(param, click.Argument):
        names = param.human_readable_name
    else:
        names = ", ".join((*param.opts, *param.secondary_opts))
        if isinstance(param, click.Option) and not param.is_flag:
            names += f" {param.make_metavar(ctx)}"
    notes = []
    if isinstance(param.type, click.Choice):
        notes.append("one of: " + ", ".join(map(str, param.type.choices)))
    if param.multiple:
        notes.append("repeatable")
    if param.required:
        notes.append("required")
    if isinstance(param, click.Option) and param.show_default and param.default not in (
            None, "", False, ()):
        notes.append(f"default {param.default}")
    text = _text(getattr(param, "help", None)) or "(no description)"
    if notes:
        text += f" ({'; '.join(notes)})"
    return [f"``{names}``", f"   {text}", ""]


def cli_rst() -> list[str]:
    from server.cli import cli

    lines: list[str] = []
    for path, command in walk(cli):
        title = " ".join(path)
        ctx = click.Context(command, info_name=title, terminal_width=100, max_content_width=100)
        lines += [title, "~" * len(title), ""]
        if command.help:
            lines += [line.strip() for line in command.help.strip().splitlines()] + [""]
        usage = f"{title} {' '.join(command.collect_usage_pieces(ctx))}"
        lines += [".. code-block:: text", "", f"   {usage}", ""]
        if command.epilog:
            lines += [".. code-block:: text", ""]
            lines += [f"   {line}" for line in command.epilog.replace("\b\n", "").splitlines()]
            lines.append("")
        for param in command.params:
            lines += _param(ctx, param)
    return lines


class CliReference(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(cli_rst(), "cli-reference"), container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True}
