"""The documentation site builds with warnings as errors, its code examples run and pass
(sphinx doctest), and the command line reference lists every command of the installed tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from server.cli import cli as vnegov_cli

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def sphinx(builder: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                           builder, "docs", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def commands(command: click.Command, path: tuple[str, ...] = ("vnegov",)
             ) -> list[tuple[str, ...]]:
    """Every command path of the click tree."""
    found = [path]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += commands(sub, (*path, name))
    return found


def test_html_builds_without_warnings_and_documents_every_command(tmp_path: Path) -> None:
    done = sphinx("html", tmp_path / "html")
    assert done.returncode == 0, done.stdout + done.stderr
    cli = (tmp_path / "html" / "reference" / "cli.html").read_text()
    tree = commands(vnegov_cli)
    assert len(tree) > 40
    for path in tree:
        assert " ".join(path) in cli, f"{' '.join(path)} is missing from the CLI reference"
    api = (tmp_path / "html" / "reference" / "api.html").read_text()
    for name in ("vnid.parse_personal_id", "signing.sign.sign_pdf", "payments.fees.quote"):
        assert f'id="{name}"' in api, name


def test_code_examples_in_the_docs_run(tmp_path: Path) -> None:
    done = sphinx("doctest", tmp_path / "doctest")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "doctest" / "output.txt").read_text()
    assert "0 failures in tests" in summary and " 0 tests" not in summary, summary
