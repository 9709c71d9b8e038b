"""Remote signing on a server whose set-up is wrong (no token, a credential whose key the token
does not hold): FAILED_PRECONDITION, and the official's authorisation (TOTP code, SAD) is not used
up by a refusal the official could not cause."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pyotp
import pytest
from cryptography import x509

from server.documents.runtime import TokenKeys
from signing.ca import CertificateSpec, KeyAlgorithm, KeyUsages, SubjectInfo, issue_certificate
from signing.errors import FailedPrecondition
from signing.pkcs11 import Token, TokenConfig
from signing.sign.remote import (
    InMemorySadStore,
    RemoteSigningService,
    SecondFactor,
    SigningCredential,
    TotpAuthoriser,
)
from tests.signing.sign.docpki import AGENCY_CODE, DocumentPki
from tests.support.softhsm import USER_PIN, SoftHsm

OWNER = "079084000123"
SECRET = pyotp.random_base32()


class Credentials:
    def __init__(self, *credentials: SigningCredential) -> None:
        self.by_id = {c.credential_id: c for c in credentials}

    def credentials_of(self, owner: str) -> list[SigningCredential]:
        return [c for c in self.by_id.values() if c.owner == owner]

    def credential(self, credential_id: str) -> SigningCredential | None:
        return self.by_id.get(credential_id)


@pytest.fixture(scope="module")
def setup(doc_pki: DocumentPki, softhsm: SoftHsm) -> tuple[RemoteSigningService, Token]:
    token = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))
    now = dt.datetime.now(dt.UTC)
    label = softhsm.unique_label("setup")
    key = token.generate_key(label, KeyAlgorithm.EC_P256)
    cert = issue_certificate(CertificateSpec(
        subject=x509.Name.from_rfc4514_string("CN=Nguyễn Văn An,O=UBND Thành phố Hồ Chí Minh,C=VN"),
        not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=30),
        key_usages=KeyUsages(digital_signature=True, content_commitment=True),
        subject_info=SubjectInfo(agency_code=AGENCY_CODE, personal_id=OWNER)),
        key.public_key(), doc_pki.key("interm"), doc_pki.interm)  # type: ignore[arg-type]
    good = SigningCredential("cred-good", OWNER, label, (cert, doc_pki.interm))
    missing = dataclasses.replace(good, credential_id="cred-missing-key",
                                  key_label=softhsm.unique_label("never-generated"))
    service = RemoteSigningService(Credentials(good, missing), InMemorySadStore(),
                                   TotpAuthoriser({OWNER: SECRET}.get), TokenKeys(token))
    return service, token


def code(at: dt.datetime) -> str:
    return pyotp.TOTP(SECRET).at(at)


def test_no_token_refuses_sign_hash_without_using_up_the_sad(
        setup: tuple[RemoteSigningService, Token]) -> None:
    service, _ = setup
    at = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    digest = hashlib.sha256(b"decision 1").digest()
    sad, _ = service.authorize(OWNER, "cred-good", [digest], "sha256",
                               SecondFactor("totp", code(at)), at=at)
    unconfigured = dataclasses.replace(service, keys=TokenKeys(None))  # same SAD store
    with pytest.raises(FailedPrecondition) as err:
        unconfigured.sign_hash(OWNER, "cred-good", sad, [digest], "sha256", at=at)
    assert err.value.reason == "TOKEN_NOT_CONFIGURED"
    # Once the server is set up, the official's authorisation still signs.
    assert len(service.sign_hash(OWNER, "cred-good", sad, [digest], "sha256", at=at)) == 1


def test_missing_key_refuses_authorize_without_using_up_the_code(
        setup: tuple[RemoteSigningService, Token]) -> None:
    service, _ = setup
    at = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    digest = hashlib.sha256(b"decision 2").digest()
    with pytest.raises(FailedPrecondition) as err:
        service.authorize(OWNER, "cred-missing-key", [digest], "sha256",
                          SecondFactor("totp", code(at)), at=at)
    assert err.value.reason == "CREDENTIAL_KEY_UNAVAILABLE"
    # The same one-time code is still good for a credential that works.
    sad, _ = service.authorize(OWNER, "cred-good", [digest], "sha256",
                               SecondFactor("totp", code(at)), at=at)
    assert sad
