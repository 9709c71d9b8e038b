"""pkilint (DigiCert's linter) reports no error on the certificates of every profile, on the CA
certificates, and on OCSP responses."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

from signing.ca import (
    OcspResponder,
    ResponderIdentity,
    RevocationEntry,
    RevocationReason,
    StatusIndex,
    default_profiles,
)
from tests.signing.ca.hierarchy import make_hierarchy

LINT = Path(".venv/bin")


def _lint(tool: str, path: Path, *args: str) -> str:
    done = subprocess.run([str(LINT / tool), "lint", *args, "-s", "ERROR", str(path)],
                          capture_output=True, text=True)
    return (done.stdout + done.stderr).strip()


@pytest.fixture(scope="module")
def hierarchy():  # type: ignore[no-untyped-def]
    return make_hierarchy()


@pytest.mark.parametrize("profile_id", [p.id for p in default_profiles().latest()])
def test_each_profile_lints_clean(hierarchy, tmp_path: Path,  # type: ignore[no-untyped-def]
                                  profile_id: str) -> None:
    cert, _ = hierarchy.issue(profile_id)
    path = tmp_path / "cert.der"
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    assert _lint("lint_pkix_cert", path) == ""


def test_rsa_subscriber_lints_clean(hierarchy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = rsa.generate_private_key(65537, 3072)
    profile = default_profiles().get("organisation")
    from signing.ca import new_validity
    from tests.signing.ca.hierarchy import SUBJECTS
    cert = hierarchy.authority.issue(profile, SUBJECTS["organisation"], key.public_key(),
                                     new_validity(profile, now=hierarchy.now, days=None,
                                                  issuer_not_after=hierarchy.issuing
                                                  .not_valid_after_utc))
    path = tmp_path / "rsa.der"
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    assert _lint("lint_pkix_cert", path) == ""


def test_ca_certificates_lint_clean(hierarchy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name, cert in (("root", hierarchy.root), ("issuing", hierarchy.issuing)):
        path = tmp_path / f"{name}.der"
        path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        assert _lint("lint_pkix_cert", path) == "", name


def test_ocsp_responses_lint_clean(hierarchy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    index = StatusIndex()
    index.add_issuer(hierarchy.authority.key_id, hierarchy.issuing.subject)
    responder = OcspResponder([ResponderIdentity(hierarchy.issuing, hierarchy.ocsp,
                                                 hierarchy.ocsp_key)], index.lookup)
    good, _ = hierarchy.issue("device")
    revoked, _ = hierarchy.issue("device")
    index.set_good(hierarchy.authority.key_id, good.serial_number)
    index.set_revoked(hierarchy.authority.key_id, RevocationEntry(
        revoked.serial_number, dt.datetime.now(dt.UTC), RevocationReason.SUPERSEDED))
    for name, cert in (("good", good), ("revoked", revoked)):
        req = ocsp.OCSPRequestBuilder().add_certificate(cert, hierarchy.issuing, hashes.SHA1())
        answer = responder.respond(req.build().public_bytes(serialization.Encoding.DER),
                                   dt.datetime.now(dt.UTC))
        path = tmp_path / f"{name}.ocsp"
        path.write_bytes(answer.body)
        assert _lint("lint_ocsp_response", path) == "", name
