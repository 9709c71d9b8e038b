"""Fixtures shared by the document-signing tests (imported by each package's conftest)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.documents.transport import HttpTimeStampTransport
from signing.sign.revocation import TrustSettings
from tests.signing.sign.docpki import DocumentPki

FONT = Path("/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


@pytest.fixture(scope="session")
def doc_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentPki]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    pki = DocumentPki(tmp_path_factory.mktemp("doc-pki"))
    yield pki
    pki.close()


@pytest.fixture(scope="session")
def tsa(doc_pki: DocumentPki) -> Iterator[HttpTimeStampTransport]:
    transport = HttpTimeStampTransport(doc_pki.tsa_url)
    yield transport
    transport.close()


@pytest.fixture(scope="session")
def trust(doc_pki: DocumentPki) -> TrustSettings:
    return TrustSettings(trust_roots=[doc_pki.root])


@pytest.fixture(scope="session")
def font() -> bytes:
    if not FONT.exists():
        pytest.fail("Liberation Serif 2 is not installed (scripts/dev.sh installs "
                    "fonts-liberation2)")
    return FONT.read_bytes()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def nssdb(doc_pki: DocumentPki, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An NSS database (for pdfsig) trusting the test PKI's root."""
    directory = tmp_path_factory.mktemp("nssdb")
    root = directory / "root.pem"
    root.write_bytes(doc_pki.pem("root"))
    subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"],
                   check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{directory}", "-n", "root", "-t", "CT,C,C",
                    "-a", "-i", str(root)], check=True, capture_output=True)
    return f"sql:{directory}"
