"""The SoftHSM2 path: `vnegov ca token init` generates the issuing CA, OCSP and TSA keys inside
the token; the server then signs certificates, CRLs, OCSP answers and time stamps through
PKCS#11 (the root stays offline: its CRL is a file it signed)."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from pathlib import Path

import httpx
import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from server.ca.token_setup import initialise_token
from server.config import Config
from server.storage.db import Database
from signing.ca import build_full_crl, dump_encrypted_private_key
from signing.pkcs11 import Token, TokenConfig
from tests.server.ca.conftest import CALLERS, CaServer, database_url, issue
from tests.support.pki import PASSPHRASE, TestPki, pem
from tests.support.server import free_port, running_server, server_config_dict
from tests.support.softhsm import USER_PIN, SoftHsm
from vnegov.signing.v1 import certificate_authority_pb2 as pb


async def test_ca_keys_in_the_token_sign_everything(pki: TestPki, tmp_path: Path,
                                                    sqlite_db: Database,
                                                    softhsm: SoftHsm) -> None:
    d = tmp_path / "ca"
    d.mkdir()
    (d / "root.pem").write_bytes(pem(pki.root.cert))
    (d / "root.key.pem").write_bytes(dump_encrypted_private_key(pki.root.key, PASSPHRASE))
    (d / "passphrase").write_bytes(PASSPHRASE)
    (d / "pin").write_text(USER_PIN)
    now = dt.datetime.now(dt.UTC)
    root_crl = build_full_crl(pki.root.cert, pki.root.key, entries=[], number=1,
                              this_update=now, next_update=now + dt.timedelta(days=30))
    (d / "root.crl").write_bytes(root_crl.public_bytes(serialization.Encoding.DER))
    labels = {k: softhsm.unique_label(k) for k in ("issuing", "ocsp", "tsa")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    section = {
        "key_source": "pkcs11", "issuing_certificate": str(d / "issuing.pem"),
        "issuing_key": labels["issuing"], "ocsp_certificate": str(d / "ocsp.pem"),
        "ocsp_key": labels["ocsp"], "tsa_certificate": str(d / "tsa.pem"),
        "tsa_key": labels["tsa"], "root_certificate": str(d / "root.pem"),
        "root_crl": str(d / "root.crl"), "key_passphrase_file": str(d / "passphrase"),
        "pkcs11": {"module": softhsm.module, "token_label": softhsm.token_label,
                   "pin_file": str(d / "pin")},
    }
    extra = {"ca": section, "auth": {"callers": CALLERS}, "server": {"public_url": base}}
    config = Config.from_config(server_config_dict(pki, tmp_path, database_url(sqlite_db),
                                                   http_port=port, extra=extra))
    written = await asyncio.to_thread(initialise_token, config,
                                      root_key_file=str(d / "root.key.pem"))
    assert [p.name for p in written] == ["issuing.pem", "ocsp.pem", "tsa.pem"]
    token = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))
    with token.session() as s:
        for label in labels.values():
            key = s.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=label)
            assert key[pkcs11.Attribute.EXTRACTABLE] is False
            assert key[pkcs11.Attribute.SENSITIVE] is True
    issuing = x509.load_pem_x509_certificate((d / "issuing.pem").read_bytes())
    assert issuing.public_key() == token.key(labels["issuing"]).public_key()

    async with running_server(pki, tmp_path, database_url(sqlite_db), http_port=port,
                              extra=extra) as srv:
        ca = CaServer(srv, pki, tmp_path)
        req, _ = await issue(ca)
        cert_msg = await ca.stub().GetCertificate(pb.GetCertificateRequest(
            name=req.result_certificate))
        leaf = x509.load_der_x509_certificate(cert_msg.der)
        leaf.verify_directly_issued_by(issuing)
        (tmp_path / "leaf.pem").write_bytes(pem(leaf))
        (tmp_path / "chain.pem").write_bytes(pem(issuing, pki.root.cert))

        async def crls() -> Path:
            async with httpx.AsyncClient() as client:
                issuing_crl = (await client.get(f"{base}/pki/crl/issuing-ca.crl")).content
                root = (await client.get(f"{base}/pki/crl/root-ca.crl")).content
            crl = x509.load_der_x509_crl(issuing_crl)
            assert crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
            assert root == root_crl.public_bytes(serialization.Encoding.DER)
            path = tmp_path / "crls.pem"
            path.write_bytes(crl.public_bytes(serialization.Encoding.PEM)
                             + root_crl.public_bytes(serialization.Encoding.PEM))
            return path

        def verify(crl_file: Path) -> str:
            done = subprocess.run(["openssl", "verify", "-x509_strict", "-crl_check_all",
                                   "-CAfile", d / "root.pem", "-untrusted", d / "issuing.pem",
                                   "-CRLfile", crl_file, tmp_path / "leaf.pem"],
                                  capture_output=True, text=True)
            return done.stdout + done.stderr

        assert "leaf.pem: OK" in verify(await crls())
        ocsp = await asyncio.to_thread(
            subprocess.run, ["openssl", "ocsp", "-issuer", d / "issuing.pem", "-cert",
                             tmp_path / "leaf.pem", "-url", f"{base}/pki/ocsp", "-CAfile",
                             tmp_path / "chain.pem"], capture_output=True, text=True, timeout=30)
        assert "Response verify OK" in ocsp.stdout + ocsp.stderr
        assert "leaf.pem: good" in ocsp.stdout
        await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
            name=req.result_certificate, reason=pb.RevocationReason.KEY_COMPROMISE))
        assert "error 23" in verify(await crls())
