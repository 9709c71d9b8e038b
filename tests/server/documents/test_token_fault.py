"""Fault injection: the PKCS#11 token removed under a running server (SoftHSM2's token directory
taken away). Signing with an official's credential answers UNAVAILABLE / TOKEN_UNAVAILABLE with a
RetryInfo instead of INTERNAL, the call is audited, no signature leaves the server, and the server
keeps serving what does not need the token.

The server runs in a process of its own with a SoftHSM2 configuration of its own: SoftHSM2 reads
its token directory once per process, and the session's token must stay whole for other tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from server.audit import verify_chain
from server.documents.stores import add_credential, set_totp_secret
from server.storage.audit import AuditEventRow
from server.storage.db import Database
from signing.ca import CertificateSpec, KeyUsages, SubjectInfo, issue_certificate
from signing.sign.remote import SigningCredential
from tests.server.documents.test_faults import retry_of
from tests.server.documents.test_signing_service import CALLERS, OWNER, documents_section
from tests.signing.sign.docpki import AGENCY_CODE, DocumentPki
from tests.support.pki import TestPki
from tests.support.server import ROOT, ServerProcess, free_port, server_config_dict
from tests.support.softhsm import MODULE, SO_PIN, USER_PIN, SoftHsm
from vnegov.signing.v1 import documents_pb2 as pb
from vnegov.signing.v1 import documents_pb2_grpc

SECRET = pyotp.random_base32()


def own_token(directory: Path) -> tuple[Path, Path, bytes]:
    """A SoftHSM2 configuration with one token holding one P-256 key: (configuration, token
    directory, the key's public half in PEM)."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "fault",
                    "--pin", USER_PIN, "--so-pin", SO_PIN], check=True, capture_output=True,
                   env=env)
    script = (
        "from signing.pkcs11 import Token, TokenConfig\n"
        "from signing.ca import KeyAlgorithm\n"
        "from cryptography.hazmat.primitives import serialization as s\n"
        f"t = Token(TokenConfig({MODULE!r}, 'fault', {USER_PIN!r}))\n"
        "k = t.generate_key('official', KeyAlgorithm.EC_P256)\n"
        "print(k.public_key().public_bytes(s.Encoding.PEM,"
        " s.PublicFormat.SubjectPublicKeyInfo).decode())\n")
    public = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                            env=env, cwd=ROOT).stdout
    (token_dir,) = [p for p in tokens.iterdir() if p.is_dir()]
    return conf, token_dir, public


def register(db: Database, doc_pki: DocumentPki, public_pem: bytes) -> str:
    now = dt.datetime.now(dt.UTC)
    public = serialization.load_pem_public_key(public_pem)
    cert = issue_certificate(CertificateSpec(
        subject=x509.Name.from_rfc4514_string("CN=Nguyễn Văn An,O=UBND Thành phố Hồ Chí Minh,C=VN"),
        not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=30),
        key_usages=KeyUsages(digital_signature=True, content_commitment=True),
        subject_info=SubjectInfo(agency_code=AGENCY_CODE, personal_id=OWNER)),
        public, doc_pki.key("interm"), doc_pki.interm)  # type: ignore[arg-type]
    add_credential(db, SigningCredential("cred-fault", OWNER, "official", (cert, doc_pki.interm)),
                   AGENCY_CODE, at=now, actor="test")
    set_totp_secret(db, OWNER, SECRET, at=now, actor="test")
    return "cred-fault"


def audited(db: Database, method: str) -> list[tuple[str, str]]:
    with db.read() as session:
        return [(o, r) for o, r in session.execute(
            select(AuditEventRow.outcome, AuditEventRow.reason).where(
                AuditEventRow.action == f"/vnegov.signing.v1.SigningService/{method}")
            .order_by(AuditEventRow.seq)).all()]


@pytest.mark.slow
async def test_a_removed_token_is_unavailable_audited_and_signs_nothing(
        pki: TestPki, tmp_path: Path, sqlite_db: Database, doc_pki: DocumentPki,
        softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    conf, token_dir, public = own_token(tmp_path / "hsm")
    credential_id = register(sqlite_db, doc_pki, public)
    section = {**documents_section(doc_pki, softhsm, tmp_path / "documents"),
               "token_label": "fault"}
    config = server_config_dict(
        pki, tmp_path, sqlite_db.url.render_as_string(False), plaintext=True,
        grpc_port=free_port(), http_port=free_port(),
        extra={"documents": section, "auth": {"callers": CALLERS,
                                              "plaintext_caller": AGENCY_CODE}})
    server = ServerProcess(config, tmp_path)
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))  # for the server process only
    server.start(60)
    monkeypatch.undo()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    try:
        s = documents_pb2_grpc.SigningServiceStub(channel)
        totp = pyotp.TOTP(SECRET)
        now = dt.datetime.now(dt.UTC)
        sads = []
        for code in (totp.at(now), totp.at(now + dt.timedelta(seconds=30))):
            digest = hashlib.sha256(code.encode()).digest()
            auth = await s.AuthorizeCredential(pb.AuthorizeCredentialRequest(
                credential_id=credential_id, signer_id=OWNER, hashes=[digest],
                hash_algorithm="sha256", second_factor=pb.SecondFactor(totp=code)))
            sads.append((auth.sad, digest))

        signed = await s.SignHash(pb.SignHashRequest(  # the token works
            credential_id=credential_id, signer_id=OWNER, sad=sads[0][0], hashes=[sads[0][1]],
            hash_algorithm="sha256"))
        assert len(signed.signatures) == 1

        shutil.move(token_dir, token_dir.with_name("removed"))  # the token is pulled out
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await s.SignHash(pb.SignHashRequest(
                credential_id=credential_id, signer_id=OWNER, sad=sads[1][0],
                hashes=[sads[1][1]], hash_algorithm="sha256"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
        reason, retry = retry_of(err.value)
        assert reason == "TOKEN_UNAVAILABLE" and retry is not None and retry > 0

        # What does not need the token is still served.
        info = await s.GetCredentialInfo(pb.GetCredentialInfoRequest(
            credential_id=credential_id, signer_id=OWNER))
        assert info.status == "enabled"
    finally:
        await channel.close()
        server.kill()
    assert audited(sqlite_db, "SignHash") == [("OK", ""), ("UNAVAILABLE", "TOKEN_UNAVAILABLE")]
    with sqlite_db.read() as session:  # the SAD was spent (single use), and audited as such
        actions = list(session.execute(select(AuditEventRow.action).where(
            AuditEventRow.kind == "documents")).scalars())
    assert actions.count("remote_signing.sad_used") == 2
    assert verify_chain(sqlite_db).ok
