"""Full and delta CRLs: openssl accepts the chain with them and reports revocation (error 23);
pkilint finds no error in them."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signing.ca import (
    CrlChange,
    RevocationEntry,
    RevocationReason,
    build_delta_crl,
    build_full_crl,
)
from tests.signing.ca.hierarchy import Hierarchy, make_hierarchy, pem

DAY = dt.timedelta(days=1)


def _write_crl(path: Path, crl: x509.CertificateRevocationList) -> Path:
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


def _verify(h: Hierarchy, tmp: Path, leaf: x509.Certificate, crls: list[Path],
            *extra: str) -> subprocess.CompletedProcess[str]:
    files = h.write(tmp)
    (tmp / "leaf.pem").write_bytes(pem(leaf))
    crl_bundle = tmp / "crls.pem"
    crl_bundle.write_bytes(b"".join(p.read_bytes() for p in crls))
    return subprocess.run(["openssl", "verify", "-x509_strict", "-crl_check_all", *extra,
                           "-CAfile", str(files["root"]), "-untrusted", str(files["issuing"]),
                           "-CRLfile", str(crl_bundle), str(tmp / "leaf.pem")],
                          capture_output=True, text=True)


def _root_crl(h: Hierarchy) -> x509.CertificateRevocationList:
    return build_full_crl(h.root, h.root_key, entries=[], number=1, this_update=h.now,
                          next_update=h.now + 30 * DAY)


def test_openssl_accepts_the_chain_and_reports_a_revoked_certificate(tmp_path: Path) -> None:
    h = make_hierarchy()
    good, _ = h.issue("individual")
    bad, _ = h.issue("organisation")
    crl = build_full_crl(h.issuing, h.issuing_key, entries=[
        RevocationEntry(bad.serial_number, h.now, RevocationReason.KEY_COMPROMISE)],
        number=7, this_update=h.now, next_update=h.now + DAY,
        delta_url="http://127.0.0.1:8080/pki/crl/issuing-ca-delta.crl")
    crls = [_write_crl(tmp_path / "root.crl", _root_crl(h)),
            _write_crl(tmp_path / "issuing.crl", crl)]
    ok = _verify(h, tmp_path, good, crls)
    assert ok.returncode == 0 and "leaf.pem: OK" in ok.stdout, ok.stdout + ok.stderr
    revoked = _verify(h, tmp_path, bad, crls)
    assert revoked.returncode != 0
    assert "error 23 at 0 depth lookup: certificate revoked" in revoked.stdout + revoked.stderr
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    entry = crl.get_revoked_certificate_by_serial_number(bad.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.key_compromise
    assert crl.is_signature_valid(h.issuing.public_key())  # type: ignore[arg-type]


def test_without_the_issuing_crl_openssl_refuses(tmp_path: Path) -> None:
    h = make_hierarchy()
    good, _ = h.issue("device")
    done = _verify(h, tmp_path, good, [_write_crl(tmp_path / "root.crl", _root_crl(h))])
    assert "error 3 at 0 depth lookup: unable to get certificate CRL" in done.stdout + done.stderr


def test_delta_crl_carries_new_revocations_and_released_holds(tmp_path: Path) -> None:
    h = make_hierarchy()
    held, _ = h.issue("individual")
    later, _ = h.issue("device")
    base = build_full_crl(h.issuing, h.issuing_key, entries=[
        RevocationEntry(held.serial_number, h.now, RevocationReason.CERTIFICATE_HOLD)],
        number=10, this_update=h.now, next_update=h.now + DAY,
        delta_url="http://127.0.0.1:8080/pki/crl/issuing-ca-delta.crl")  # openssl needs it
    delta = build_delta_crl(h.issuing, h.issuing_key, changes=[
        CrlChange(removed_serial=held.serial_number, removed_at=h.now + dt.timedelta(hours=1)),
        CrlChange(entry=RevocationEntry(later.serial_number, h.now + dt.timedelta(hours=1),
                                        RevocationReason.SUPERSEDED)),
    ], number=11, base_number=10, this_update=h.now + dt.timedelta(hours=1),
        next_update=h.now + DAY)
    ind = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert ind.critical and ind.value.crl_number == 10
    reasons = {e.serial_number: e.extensions.get_extension_for_class(x509.CRLReason).value.reason
               for e in delta}
    assert reasons == {held.serial_number: x509.ReasonFlags.remove_from_crl,
                       later.serial_number: x509.ReasonFlags.superseded}
    crls = [_write_crl(tmp_path / "root.crl", _root_crl(h)),
            _write_crl(tmp_path / "issuing.crl", base), _write_crl(tmp_path / "delta.crl", delta)]
    # With deltas, openssl sees the hold released and the new revocation.
    assert _verify(h, tmp_path, held, crls, "-use_deltas").returncode == 0
    later_done = _verify(h, tmp_path, later, crls, "-use_deltas")
    assert "error 23" in later_done.stdout + later_done.stderr
    # Without them, the base CRL still says "on hold".
    held_done = _verify(h, tmp_path, held, crls[:2])
    assert "error 23" in held_done.stdout + held_done.stderr


def test_pkilint_finds_no_error_in_full_and_delta_crls(tmp_path: Path) -> None:
    h = make_hierarchy()
    cert, _ = h.issue("individual")
    full = build_full_crl(h.issuing, h.issuing_key, entries=[
        RevocationEntry(cert.serial_number, h.now, RevocationReason.AFFILIATION_CHANGED),
        RevocationEntry(cert.serial_number + 1, h.now, RevocationReason.UNSPECIFIED)],
        number=3, this_update=h.now, next_update=h.now + DAY,
        delta_url="http://127.0.0.1:8080/pki/crl/issuing-ca-delta.crl")
    delta = build_delta_crl(h.issuing, h.issuing_key, changes=[
        CrlChange(removed_serial=cert.serial_number + 2)], number=4, base_number=3,
        this_update=h.now, next_update=h.now + DAY)
    for name, crl in (("full", full), ("delta", delta)):
        path = tmp_path / f"{name}.crl"
        path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
        done = subprocess.run([".venv/bin/lint_crl", "lint", "-t", "CRL", "-p", "PKIX", "-s",
                               "ERROR", str(path)], capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.strip() == "", (name, done.stdout,
                                                                    done.stderr)
