"""Keys in a real PKCS#11 token (SoftHSM2): generated inside, never exported, signing through it."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from signing.ca import CA_KEY_USAGES, CertificateSpec, KeyAlgorithm, issue_certificate
from signing.pkcs11 import Token, TokenConfig, TokenError
from tests.support.pki import name
from tests.support.softhsm import USER_PIN, SoftHsm

NOW = dt.datetime.now(dt.UTC)


def token(softhsm: SoftHsm) -> Token:
    return Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384,
                                       KeyAlgorithm.RSA_2048])
def test_ca_key_generated_in_token_signs_a_certificate_openssl_accepts(
        softhsm: SoftHsm, tmp_path: Path, algorithm: KeyAlgorithm) -> None:
    tok = token(softhsm)
    key = tok.generate_key(softhsm.unique_label(), algorithm)
    root = issue_certificate(CertificateSpec(
        subject=name("Token Root"), not_before=NOW - dt.timedelta(hours=1),
        not_after=NOW + dt.timedelta(days=365), key_usages=CA_KEY_USAGES, is_ca=True,
    ), key.public_key(), key)
    path = tmp_path / "root.pem"
    path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", path, path],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
    root.verify_directly_issued_by(root)


def test_private_key_never_leaves_the_token(softhsm: SoftHsm) -> None:
    tok = token(softhsm)
    label = softhsm.unique_label()
    key = tok.generate_key(label, KeyAlgorithm.EC_P256)
    with pytest.raises(Exception, match="cannot be exported"):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    with tok.session() as s:
        private = s.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=label)
        assert private[pkcs11.Attribute.SENSITIVE] is True
        assert private[pkcs11.Attribute.EXTRACTABLE] is False


def test_rsa_pss_and_pkcs1_signatures_verify(softhsm: SoftHsm) -> None:
    tok = token(softhsm)
    key = tok.generate_key(softhsm.unique_label(), KeyAlgorithm.RSA_2048)
    data = b"Quyet dinh so 123/QD-UBND"
    sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    key.public_key().verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    sig = key.sign(data, pss, hashes.SHA256())
    key.public_key().verify(sig, data, pss, hashes.SHA256())


def test_ecdsa_through_raw_mechanism_when_token_lacks_hash_and_sign(softhsm: SoftHsm) -> None:
    tok = token(softhsm)
    assert "ECDSA_SHA256" not in tok.mechanisms  # SoftHSM2: only raw CKM_ECDSA
    key = tok.generate_key(softhsm.unique_label(), KeyAlgorithm.EC_P256)
    sig = key.sign(b"data", ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(sig, b"data", ec.ECDSA(hashes.SHA256()))


def test_key_survives_reopening_the_token(softhsm: SoftHsm) -> None:
    label = softhsm.unique_label()
    first = Token(TokenConfig(softhsm.module, softhsm.second_token_label, USER_PIN))
    public = first.generate_key(label, KeyAlgorithm.EC_P256).public_key()
    first.close()
    again = Token(TokenConfig(softhsm.module, softhsm.second_token_label, USER_PIN)).key(label)
    assert again.public_key() == public


def test_wrong_pin_and_unknown_token_are_clear_errors(softhsm: SoftHsm) -> None:
    label = softhsm.pin_test_token_label
    with pytest.raises(TokenError, match="refused the PIN"):
        Token(TokenConfig(softhsm.module, label, "000000"))
    with pytest.raises(TokenError, match="no single token"):
        Token(TokenConfig(softhsm.module, "no-such-token", USER_PIN))
    assert "123456" not in repr(TokenConfig(softhsm.module, label, USER_PIN))


def test_same_label_twice_is_refused(softhsm: SoftHsm) -> None:
    tok = token(softhsm)
    label = softhsm.unique_label()
    tok.generate_key(label, KeyAlgorithm.EC_P256)
    with pytest.raises(Exception, match="already holds"):
        tok.generate_key(label, KeyAlgorithm.EC_P256)


def test_x509_chain_from_token_key(softhsm: SoftHsm) -> None:
    tok = token(softhsm)
    ca = tok.generate_key(softhsm.unique_label(), KeyAlgorithm.EC_P256)
    root = issue_certificate(CertificateSpec(
        subject=name("R"), not_before=NOW - dt.timedelta(hours=1),
        not_after=NOW + dt.timedelta(days=30), key_usages=CA_KEY_USAGES, is_ca=True,
    ), ca.public_key(), ca)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    from signing.ca import KeyUsages
    leaf = issue_certificate(CertificateSpec(
        subject=name("L"), not_before=NOW - dt.timedelta(hours=1),
        not_after=NOW + dt.timedelta(days=10), key_usages=KeyUsages(digital_signature=True),
    ), leaf_key.public_key(), ca, root)
    leaf.verify_directly_issued_by(root)
    assert isinstance(leaf, x509.Certificate)
