"""The CA, OCSP and TSA keys in a PKCS#11 token (SoftHSM2): generated inside the token, never
exported, and signing certificates, CRLs, OCSP responses and time stamps that openssl accepts."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from signing.ca import (
    KeyAlgorithm,
    OcspResponder,
    ResponderIdentity,
    RevocationEntry,
    RevocationReason,
    StatusIndex,
    build_full_crl,
    default_profiles,
    new_validity,
)
from signing.pkcs11 import Token, TokenConfig, TokenKeySource
from signing.tsa import TimeStampAuthority
from tests.signing.ca.hierarchy import SUBJECTS, make_hierarchy, pem
from tests.support.softhsm import USER_PIN, SoftHsm


def test_token_keys_run_the_whole_ca(softhsm: SoftHsm, tmp_path: Path) -> None:
    token = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))
    labels = {p: softhsm.unique_label(p) for p in ("issuing", "ocsp", "tsa")}
    token.generate_key(labels["issuing"], KeyAlgorithm.EC_P256)
    token.generate_key(labels["ocsp"], KeyAlgorithm.EC_P256)
    token.generate_key(labels["tsa"], KeyAlgorithm.RSA_2048)
    keys = TokenKeySource(token)
    h = make_hierarchy(issuing_key=keys.signing_key(labels["issuing"]))
    assert keys.signing_key(labels["issuing"]) is keys.signing_key(labels["issuing"])
    profiles = default_profiles()
    issue = lambda pid, key: h.authority.issue(  # noqa: E731
        profiles.get(pid), SUBJECTS[pid], key.public_key(),
        new_validity(profiles.get(pid), now=h.now, days=None,
                     issuer_not_after=h.issuing.not_valid_after_utc))
    ocsp_key, tsa_key = keys.signing_key(labels["ocsp"]), keys.signing_key(labels["tsa"])
    ocsp_cert = issue("ocsp-responder", ocsp_key)
    tsa_cert = issue("timestamping", tsa_key)
    leaf, _ = h.issue("individual")
    revoked, _ = h.issue("organisation")
    crl = build_full_crl(h.issuing, h.issuing_key, entries=[RevocationEntry(
        revoked.serial_number, h.now, RevocationReason.KEY_COMPROMISE)], number=1,
        this_update=h.now, next_update=h.now + dt.timedelta(days=1))
    root_crl = build_full_crl(h.root, h.root_key, entries=[], number=1, this_update=h.now,
                              next_update=h.now + dt.timedelta(days=1))
    files = h.write(tmp_path)
    (tmp_path / "crls.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM)
                                        + root_crl.public_bytes(serialization.Encoding.PEM))
    for name, cert in (("leaf", leaf), ("revoked", revoked), ("ocsp", ocsp_cert)):
        (tmp_path / f"{name}.pem").write_bytes(pem(cert))

    def verify(name: str) -> str:
        done = subprocess.run(["openssl", "verify", "-x509_strict", "-crl_check_all", "-CAfile",
                               files["root"], "-untrusted", files["issuing"], "-CRLfile",
                               tmp_path / "crls.pem", tmp_path / f"{name}.pem"],
                              capture_output=True, text=True)
        return done.stdout + done.stderr

    assert "leaf.pem: OK" in verify("leaf")
    assert "error 23" in verify("revoked")

    index = StatusIndex()
    index.add_issuer(h.authority.key_id, h.issuing.subject)
    index.set_good(h.authority.key_id, leaf.serial_number)
    responder = OcspResponder([ResponderIdentity(h.issuing, ocsp_cert, ocsp_key)], index.lookup)
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, h.issuing, hashes.SHA1()).build()
    (tmp_path / "req.der").write_bytes(request.public_bytes(serialization.Encoding.DER))
    (tmp_path / "resp.der").write_bytes(
        responder.respond((tmp_path / "req.der").read_bytes(), h.now).body)
    done = subprocess.run(["openssl", "ocsp", "-respin", tmp_path / "resp.der", "-reqin",
                           tmp_path / "req.der", "-issuer", files["issuing"], "-CAfile",
                           files["chain"], "-cert", tmp_path / "leaf.pem"],
                          capture_output=True, text=True)
    assert "Response verify OK" in done.stdout + done.stderr

    tsa = TimeStampAuthority(tsa_cert, tsa_key, chain=(h.issuing,))
    (tmp_path / "doc").write_bytes(b"doc")
    subprocess.run(["openssl", "ts", "-query", "-data", tmp_path / "doc", "-sha256", "-cert",
                    "-out", tmp_path / "q.tsq"], check=True, capture_output=True)
    (tmp_path / "r.tsr").write_bytes(tsa.respond((tmp_path / "q.tsq").read_bytes(), h.now).body)
    done = subprocess.run(["openssl", "ts", "-verify", "-in", tmp_path / "r.tsr", "-queryfile",
                           tmp_path / "q.tsq", "-CAfile", files["root"]], capture_output=True,
                          text=True)
    assert "Verification: OK" in done.stdout, done.stdout + done.stderr
