"""vnegov: the generated protocol buffer code of the API (``vnegov.identity.v1``,
``vnegov.signing.v1``, ``vnegov.payments.v1``, ``vnegov.admin.v1``, ``vnegov.common.v1``) and the
distribution's version.

The sources are the buf module in the repository's ``proto/`` folder; ``scripts/gen_proto.py``
writes the modules beside this file. This file is written by hand.
"""

from __future__ import annotations

__all__ = ["__version__"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vnegov")
    except PackageNotFoundError:  # a source checkout that was never installed: read pyproject.toml
        import re
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
        found = re.search(r'^version = "([^"]+)"', pyproject.read_text(encoding="utf-8"), re.M)
        return found.group(1) if found else "0+unknown"


__version__: str = _version()
