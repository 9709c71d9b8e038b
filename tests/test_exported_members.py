"""The public surface of each library package is its sorted ``__all__``, and only that."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["vnid", "signing", "payments", "signing.ca"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    for member in exported:
        assert hasattr(module, member), f"{name}.{member} is exported but missing"


@pytest.mark.parametrize("name", ["vnid", "signing", "payments"])
def test_library_packages_do_not_import_the_server_or_transports(name: str) -> None:
    import subprocess
    import sys

    code = (f"import sys, {name}, pkgutil, importlib\n"
            f"for m in pkgutil.walk_packages({name}.__path__, '{name}.'):\n"
            f"    importlib.import_module(m.name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'grpc', 'server', 'starlette', 'sqlalchemy', 'uvicorn', 'google'})\n"
            "print(','.join(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"{name} pulls in {done.stdout.strip()}"
