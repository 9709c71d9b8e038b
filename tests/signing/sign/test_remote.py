"""Remote signing with CSC v2 semantics: keys in SoftHSM2, TOTP as second factor, SADs bound to
the exact hashes, single use, short-lived. The attacks must fail."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import subprocess
from pathlib import Path

import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from signing.ca import CertificateSpec, KeyAlgorithm, KeyUsages, SubjectInfo, issue_certificate
from signing.pkcs11 import Token, TokenConfig
from signing.sign.errors import AuthorisationFailed, CredentialNotPermitted, SigningRefused
from signing.sign.pades import PadesOptions, sign_pdf
from signing.sign.remote import (
    InMemorySadStore,
    LocalCscClient,
    RemoteSigner,
    RemoteSigningService,
    SecondFactor,
    SigningCredential,
    TotpAuthoriser,
)
from signing.sign.signers import TokenSigner
from tests.signing.sign.docpki import AGENCY_CODE, DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.support.softhsm import USER_PIN, SoftHsm

OWNER = "079084000123"  # the official's personal ID number
SECRET = pyotp.random_base32()


class Credentials:
    def __init__(self, *credentials: SigningCredential) -> None:
        self.by_id = {c.credential_id: c for c in credentials}

    def credentials_of(self, owner: str) -> list[SigningCredential]:
        return [c for c in self.by_id.values() if c.owner == owner]

    def credential(self, credential_id: str) -> SigningCredential | None:
        return self.by_id.get(credential_id)


class TokenKeys:
    def __init__(self, token: Token) -> None:
        self.token = token

    def signer_for(self, credential: SigningCredential) -> TokenSigner:
        return TokenSigner(self.token, credential.key_label, credential.certificate,
                           credential.certificates[1:])


@pytest.fixture(scope="module")
def service(doc_pki: DocumentPki, softhsm: SoftHsm) -> RemoteSigningService:
    token = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))
    now = dt.datetime.now(dt.UTC)

    def credential(cid: str, owner: str, enabled: bool = True) -> SigningCredential:
        label = softhsm.unique_label("csc")
        key = token.generate_key(label, KeyAlgorithm.EC_P256)
        cert = issue_certificate(CertificateSpec(
            subject=x509.Name.from_rfc4514_string(
                "CN=Nguyễn Văn An,2.5.4.12=Chủ tịch,O=UBND Thành phố Hồ Chí Minh,C=VN"),
            not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=30),
            key_usages=KeyUsages(digital_signature=True, content_commitment=True),
            subject_info=SubjectInfo(agency_code=AGENCY_CODE, personal_id=owner)),
            key.public_key(), doc_pki.key("interm"), doc_pki.interm)  # type: ignore[arg-type]
        return SigningCredential(cid, owner, label, (cert, doc_pki.interm), enabled=enabled,
                                 description="Chữ ký số của Chủ tịch")

    store = Credentials(credential("cred-an", OWNER), credential("cred-other", "001190000042"),
                        credential("cred-off", OWNER, enabled=False))
    secrets = {OWNER: SECRET}
    return RemoteSigningService(store, InMemorySadStore(), TotpAuthoriser(secrets.get),
                                TokenKeys(token))


def clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_list_and_info(service: RemoteSigningService) -> None:
    assert sorted(service.list_credentials(OWNER)) == ["cred-an", "cred-off"]
    info = service.credential_info(OWNER, "cred-an")
    assert (info.key_algorithm, info.key_length, info.scal, info.auth_mode) == \
        ("ec", 256, "2", "explicit")
    assert info.certificates[0].subject.rfc4514_string().startswith("CN=Nguyễn Văn An")


def test_remote_pades_signature_verifies_with_pdfsig(service: RemoteSigningService,
                                                     doc_pki: DocumentPki,
                                                     tmp_path: Path) -> None:
    totp = pyotp.TOTP(SECRET)
    codes = iter([totp.now()])
    signer = RemoteSigner(LocalCscClient(service, OWNER, clock), "cred-an",
                          lambda: SecondFactor("totp", next(codes)))
    out = io.BytesIO()
    sign_pdf(io.BytesIO(decision_pdf()), out, signer, at=clock(), options=PadesOptions())
    path = tmp_path / "remote.pdf"
    path.write_bytes(out.getvalue())
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    db = tmp_path / "nss"
    db.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "root", "-t", "CT,C,C", "-a",
                    "-i", str(tmp_path / "root.pem")], check=True)
    done = subprocess.run(["pdfsig", "-nssdir", f"sql:{db}", str(path)], capture_output=True,
                          text=True)
    assert "Signature is Valid." in done.stdout and "Certificate is Trusted." in done.stdout


def authorise(service: RemoteSigningService, hashes: list[bytes], at: dt.datetime,
              code: str | None = None) -> str:
    sad, _ = service.authorize(OWNER, "cred-an", hashes, "sha256",
                               SecondFactor("totp", code or pyotp.TOTP(SECRET).at(at)), at=at)
    return sad


def later(minutes: int) -> dt.datetime:
    # each test uses its own TOTP time step: a code is accepted once
    return clock() + dt.timedelta(minutes=minutes)


def test_signature_over_the_authorised_hash(service: RemoteSigningService) -> None:
    at = later(10)
    digest = hashlib.sha256(b"van ban").digest()
    sad = authorise(service, [digest], at)
    [signature] = service.sign_hash(OWNER, "cred-an", sad, [digest], "sha256", at=at)
    public = service.credential_info(OWNER, "cred-an").certificates[0].public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_wrong_and_replayed_codes_are_refused(service: RemoteSigningService) -> None:
    at = later(20)
    digest = hashlib.sha256(b"x").digest()
    good = pyotp.TOTP(SECRET).at(at)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    with pytest.raises(AuthorisationFailed):
        authorise(service, [digest], at, wrong)
    authorise(service, [digest], at, good)
    with pytest.raises(AuthorisationFailed):  # the same code again
        authorise(service, [digest], at, good)


def test_sad_is_bound_to_the_hashes_single_use_and_short_lived(
        service: RemoteSigningService) -> None:
    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    at = later(30)
    sad = authorise(service, [a], at)
    with pytest.raises(AuthorisationFailed):  # another document's hash
        service.sign_hash(OWNER, "cred-an", sad, [b], "sha256", at=at)
    with pytest.raises(AuthorisationFailed):  # the SAD was used up by the failed attempt
        service.sign_hash(OWNER, "cred-an", sad, [a], "sha256", at=at)
    at = later(31)
    sad = authorise(service, [a], at)
    service.sign_hash(OWNER, "cred-an", sad, [a], "sha256", at=at)
    with pytest.raises(AuthorisationFailed):  # twice
        service.sign_hash(OWNER, "cred-an", sad, [a], "sha256", at=at)
    at = later(32)
    sad = authorise(service, [a], at)
    with pytest.raises(AuthorisationFailed):  # expired
        service.sign_hash(OWNER, "cred-an", sad, [a], "sha256", at=at + dt.timedelta(minutes=6))
    with pytest.raises(AuthorisationFailed):  # made up
        service.sign_hash(OWNER, "cred-an", "not-a-sad", [a], "sha256", at=at)


def test_other_peoples_credentials_look_like_missing_ones(service: RemoteSigningService) -> None:
    at = later(40)
    digest = hashlib.sha256(b"x").digest()
    for cid in ("cred-other", "no-such-credential"):
        with pytest.raises(CredentialNotPermitted) as caught:
            service.credential_info(OWNER, cid)
        assert caught.value.message == "the credential is not available to this signer"
        with pytest.raises(CredentialNotPermitted):
            service.authorize(OWNER, cid, [digest], "sha256",
                              SecondFactor("totp", pyotp.TOTP(SECRET).at(at)), at=at)


def test_disabled_credential_and_bad_requests(service: RemoteSigningService) -> None:
    at = later(50)
    digest = hashlib.sha256(b"x").digest()
    with pytest.raises(SigningRefused):
        service.authorize(OWNER, "cred-off", [digest], "sha256",
                          SecondFactor("totp", pyotp.TOTP(SECRET).at(at)), at=at)
    with pytest.raises(Exception, match="length"):
        service.authorize(OWNER, "cred-an", [b"short"], "sha256",
                          SecondFactor("totp", pyotp.TOTP(SECRET).at(at)), at=at)
    with pytest.raises(Exception, match="hashes may be signed"):
        service.authorize(OWNER, "cred-an", [digest, hashlib.sha256(b"y").digest()], "sha256",
                          SecondFactor("totp", pyotp.TOTP(SECRET).at(at)), at=at)
    assert "123456" not in repr(SecondFactor("totp", "123456"))
