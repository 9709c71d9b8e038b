"""The CLI reference (Markdown), generated from the click command tree: every command with its
help, arguments and options. ``python -m server.cli_reference > docs/cli-reference.md`` writes it;
a test keeps the committed page in step with the code."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

__all__ = ["render_markdown", "walk"]


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                click.Command]]:
    """Every command of the tree, depth first, groups before their commands."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            if not sub.hidden:
                yield from walk(sub, (*path, name))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _option_row(ctx: click.Context, param: click.Parameter) -> str:
    names = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
    if isinstance(param, click.Option) and not param.is_flag:
        names += f" `{param.make_metavar(ctx)}`"
    extra = []
    if isinstance(param.type, click.Choice):
        extra.append("one of " + ", ".join(f"`{c}`" for c in param.type.choices))
    if param.multiple:
        extra.append("repeatable")
    if param.required:
        extra.append("required")
    default = param.default if isinstance(param, click.Option) and param.show_default else None
    if default not in (None, "", False, ()):
        extra.append(f"default `{default}`")
    help_text = _cell(getattr(param, "help", "") or "")
    if extra:
        help_text += f" ({'; '.join(extra)})"
    return f"| {names} | {help_text} |"


def render_markdown(root: click.Group, prog: str = "vnegov") -> str:
    lines = [f"# `{prog}` command reference", "",
             "Generated from the command tree (`python -m server.cli_reference`); do not edit.",
             ""]
    ctx = click.Context(root, info_name=prog, terminal_width=100, max_content_width=100,
                        help_option_names=["-h", "--help"])
    lines += [root.help or "", "", "```text", ctx.get_help(), "```", ""]
    for path, command in walk(root):
        if not path:
            continue
        name = " ".join((prog, *path))
        sub_ctx = click.Context(command, info_name=name)
        lines += [f"{'#' * min(len(path) + 1, 4)} `{name}`", ""]
        lines += [f"`{name} {' '.join(command.collect_usage_pieces(sub_ctx))}`", ""]
        lines += [(command.help or command.short_help or "").strip(), ""]
        params = [p for p in command.params if p.name not in ("help",)]
        arguments = [p for p in params if isinstance(p, click.Argument)]
        options = [p for p in params if isinstance(p, click.Option)]
        if arguments:
            lines += ["| Argument | |", "|---|---|"]
            lines += [f"| `{p.human_readable_name}` | {_cell(getattr(p, 'help', '') or '')} |"
                      for p in arguments]
            lines.append("")
        if options:
            lines += ["| Option | |", "|---|---|"]
            lines += [_option_row(sub_ctx, p) for p in options]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    from server.cli import cli

    sys.stdout.write(render_markdown(cli))
