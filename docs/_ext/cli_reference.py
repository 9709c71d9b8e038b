"""``cli-reference`` directive: the command line reference, generated from the parser tree of
``vnegov`` (server.cli.build_parser), so it cannot drift from the commands."""

from __future__ import annotations

import argparse
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def _walk(parser: argparse.ArgumentParser, path: list[str]
          ) -> list[tuple[list[str], argparse.ArgumentParser, str]]:
    found = [(path, parser, parser.description or "")]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                sub.description = sub.description or helps.get(name, "")
                found += _walk(sub, [*path, name])
    return found


def cli_rst() -> list[str]:
    from server.cli import build_parser

    lines: list[str] = []
    for path, parser, description in _walk(build_parser(), ["vnegov"]):
        title = " ".join(path)
        lines += [title, "~" * len(title), ""]
        if description:
            lines += [description.strip(), ""]
        usage = parser.format_usage().replace("usage: ", "").strip()
        lines += [".. code-block:: text", ""] + [f"   {u}" for u in usage.splitlines()] + [""]
        options = [a for a in parser._actions
                   if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)]
        for action in options:
            names = ", ".join(action.option_strings) or action.dest
            if action.metavar and action.option_strings:
                names += f" {action.metavar}"
            text = (action.help or "").replace("%(default)s", str(action.default))
            if action.choices:
                text += f" (one of: {', '.join(map(str, action.choices))})"
            lines += [f"``{names}``", f"   {text.strip() or '(no description)'}", ""]
    return lines


class CliReference(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(cli_rst(), "cli-reference"), container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True}
