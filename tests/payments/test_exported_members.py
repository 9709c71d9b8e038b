"""The public surface of the payments packages: curated, sorted, and importable."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["payments", "payments.fees", "payments.payments", "payments.channels",
            "payments.ledger", "payments.receipts", "payments.reconcile"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    # isort style: CONSTANTS, then Classes, then functions, each alphabetical.
    assert exported == sorted(exported, key=lambda n: (
        0 if n.isupper() else 1 if n[0].isupper() else 2, n))
    for member in exported:
        assert hasattr(module, member), f"{name}.{member}"


def test_library_imports_no_server_or_transport_code() -> None:
    import subprocess
    import sys

    code = ("import sys, payments, payments.fees, payments.payments, payments.channels, "
            "payments.ledger, payments.receipts, payments.reconcile, payments.webhooks; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "{'grpc', 'google', 'starlette', 'sqlalchemy', 'server', 'uvicorn', 'httpx'}]; "
            "print(','.join(sorted(bad)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""
