"""The PKI for document-signing tests, declared once with certomancer (pyHanko's own test-PKI tool)
and served live on a loopback port: OCSP, CRLs and an RFC 3161 time-stamping authority.

Government-style hierarchy: a root, an issuing CA for state bodies with its own OCSP responder, a
TSA under the root; signers are officials (with a title) and agencies (an organisation), each with
the agency-code extension of :mod:`signing.ca.extensions`; plus the odd ones the negative tests
need (revoked, expired, without any revocation pointer) and a root nobody trusts.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from asn1crypto import x509 as asn1_x509
from certomancer.integrations.animator import Animator, AnimatorArchStore
from certomancer.registry import CertomancerConfig, PKIArchitecture
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.serving import BaseWSGIServer, make_server

from signing.ca import SubjectInfo
from signing.ca.extensions import OID_VNEGOV_SUBJECT_INFO
from tests.support.server import free_port

ARCH = "vn-gov"
AGENCY_CODE = "000.00.00.H29"

SIGNERS: dict[str, dict[str, str]] = {
    # label: subject attributes (certomancer entity config)
    "official": {"common-name": "Nguyễn Văn An", "title": "Chủ tịch",
                 "organizational-unit-name": "Ủy ban nhân dân",
                 "organization-name": "UBND Thành phố Hồ Chí Minh"},
    "deputy": {"common-name": "Trần Thị Bình", "title": "Phó Chủ tịch",
               "organizational-unit-name": "Ủy ban nhân dân",
               "organization-name": "UBND Thành phố Hồ Chí Minh"},
    "clerk": {"common-name": "Lê Văn Cường", "title": "Chánh Văn phòng",
              "organizational-unit-name": "Văn phòng",
              "organization-name": "UBND Thành phố Hồ Chí Minh"},
    "agency": {"common-name": "Ủy ban nhân dân Thành phố Hồ Chí Minh",
               "organization-name": "UBND Thành phố Hồ Chí Minh"},
    "revoked": {"common-name": "Phạm Văn Dũng", "title": "Chuyên viên",
                "organization-name": "UBND Thành phố Hồ Chí Minh"},
    "expired": {"common-name": "Hoàng Thị Em", "title": "Chuyên viên",
                "organization-name": "UBND Thành phố Hồ Chí Minh"},
    "orphan": {"common-name": "Không có OCSP", "title": "Chuyên viên",
               "organization-name": "UBND Thành phố Hồ Chí Minh"},
    # revoked ten days from now (key compromise found later): for long-term validation
    "revoked-later": {"common-name": "Đỗ Văn Giang", "title": "Chuyên viên",
                      "organization-name": "UBND Thành phố Hồ Chí Minh"},
}

REVOKED_LATER_AFTER = dt.timedelta(days=10)
SHORT_TSA_LIFETIME = dt.timedelta(days=1)


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _key_file(directory: Path, name: str, kind: str) -> str:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" \
        else ec.generate_private_key(ec.SECP256R1())
    path = directory / f"{name}.key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path.name


def _subject_info_der() -> bytes:
    return SubjectInfo(agency_code=AGENCY_CODE, province_code="79").to_der()


def build_config(directory: Path, url: str, now: dt.datetime) -> dict[str, object]:
    key_names = ["root", "interm", "interm-ocsp", "tsa", "tsa-short", "untrusted-root", *SIGNERS]
    keys = {n: {"path": _key_file(directory, n, "rsa" if n == "official" else "ec")}
            for n in key_names}
    long = {"valid-from": _utc(now - dt.timedelta(days=365)),
            "valid-to": _utc(now + dt.timedelta(days=3650))}
    leaf = {"valid-from": _utc(now - dt.timedelta(days=30)),
            "valid-to": _utc(now + dt.timedelta(days=700))}
    ca_ext = [
        {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
        {"id": "key_usage", "critical": True,
         "smart-value": {"schema": "key-usage",
                         "params": ["digital_signature", "key_cert_sign", "crl_sign"]}},
    ]
    signer_ext = [
        {"id": "key_usage", "critical": True,
         "smart-value": {"schema": "key-usage",
                         "params": ["digital_signature", "non_repudiation"]}},
        {"id": "authority_information_access",
         "smart-value": {"schema": "aia-urls", "params": {"ocsp-responder-names": ["interm"]}}},
        {"id": "crl_distribution_points",
         "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": ["interm"]}}},
        {"id": OID_VNEGOV_SUBJECT_INFO.dotted_string, "value": _subject_info_der()},
    ]
    root_crl = {"id": "crl_distribution_points",
                "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": ["root"]}}}
    certs: dict[str, object] = {
        "root": {"subject": "root", "issuer": "root", "validity": long, "extensions": ca_ext},
        "interm": {"subject": "interm", "issuer": "root", "validity": long,
                   "extensions": [*ca_ext, root_crl]},
        "interm-ocsp": {"subject": "interm-ocsp", "issuer": "interm", "validity": leaf,
                        "extensions": [
                            {"id": "key_usage", "critical": True,
                             "smart-value": {"schema": "key-usage",
                                             "params": ["digital_signature"]}},
                            {"id": "extended_key_usage", "critical": True,
                             "value": ["ocsp_signing"]},
                            {"id": "ocsp_no_check"}]},
        "tsa": {"subject": "tsa", "issuer": "root", "validity": long,
                "extensions": [
                    {"id": "key_usage", "critical": True,
                     "smart-value": {"schema": "key-usage", "params": ["digital_signature"]}},
                    {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
                    root_crl]},
        # a TSA whose certificate expires tomorrow (archive renewal must outlive it)
        "tsa-short": {"subject": "tsa-short", "issuer": "root",
                      "validity": {"valid-from": _utc(now - dt.timedelta(days=30)),
                                   "valid-to": _utc(now + SHORT_TSA_LIFETIME)},
                      "extensions": [
                          {"id": "key_usage", "critical": True,
                           "smart-value": {"schema": "key-usage",
                                           "params": ["digital_signature"]}},
                          {"id": "extended_key_usage", "critical": True,
                           "value": ["time_stamping"]},
                          root_crl]},
        "untrusted-root": {"subject": "untrusted-root", "issuer": "untrusted-root",
                           "validity": long, "extensions": ca_ext},
    }
    for name in SIGNERS:
        spec: dict[str, object] = {"subject": name, "issuer": "interm", "validity": leaf,
                                   "extensions": signer_ext}
        if name == "revoked":
            spec["revocation"] = {"revoked-since": _utc(now - dt.timedelta(days=1)),
                                  "reason": "key_compromise"}
        if name == "revoked-later":
            spec["revocation"] = {"revoked-since": _utc(now + REVOKED_LATER_AFTER),
                                  "reason": "key_compromise"}
        if name == "expired":
            spec["validity"] = {"valid-from": _utc(now - dt.timedelta(days=400)),
                                "valid-to": _utc(now - dt.timedelta(days=2))}
        if name == "orphan":
            spec["extensions"] = [signer_ext[0], signer_ext[3]]
        certs[name] = spec
    entities: dict[str, object] = {
        "root": {"common-name": "RootCA chuyên dùng Chính phủ (thử nghiệm)"},
        "interm": {"common-name": "CA phục vụ các cơ quan Nhà nước (thử nghiệm)"},
        "interm-ocsp": {"common-name": "OCSP CA phục vụ các cơ quan Nhà nước (thử nghiệm)"},
        "tsa": {"common-name": "Dịch vụ cấp dấu thời gian (thử nghiệm)"},
        "tsa-short": {"common-name": "Dịch vụ cấp dấu thời gian sắp hết hạn (thử nghiệm)"},
        "untrusted-root": {"common-name": "Untrusted Root", "organization-name": "Elsewhere"},
        **SIGNERS,
    }
    return {
        "external-url-prefix": url,
        "keysets": {ARCH: {"path-prefix": str(directory), "keys": keys}},
        "pki-architectures": {ARCH: {
            "keyset": ARCH,
            "entity-defaults": {"country-name": "VN",
                                "organization-name": "Ban Cơ yếu Chính phủ (thử nghiệm)"},
            "entities": entities,
            "certs": certs,
            "services": {
                "ocsp": {"interm": {"for-issuer": "interm", "responder-cert": "interm-ocsp",
                                    "signing-key": "interm-ocsp"}},
                "crl-repo": {
                    "root": {"for-issuer": "root", "signing-key": "root",
                             "simulated-update-schedule": "P90D"},
                    "interm": {"for-issuer": "interm", "signing-key": "interm",
                               "simulated-update-schedule": "P30D"},
                },
                "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"},
                                  "tsa-short": {"signing-key": "tsa-short",
                                                "signing-cert": "tsa-short"}},
            },
        }},
    }


def _ocsp_get(app: Any) -> Any:
    """Certomancer answers OCSP over POST only; RFC 6960 A.1 also allows GET (base64 request in
    the path), which NSS (so pdfsig) uses. Turn such a GET into the equivalent POST. Requests
    are answered one at a time: certomancer's responders share parsed certificates, and two
    time-stamps built at once (signers in parallel threads) corrupted each other."""
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            return list(serve(environ, start_response))

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        parts = environ.get("PATH_INFO", "").split("/")
        if environ.get("REQUEST_METHOD") == "GET" and len(parts) >= 5 and parts[2] == "ocsp":
            body = base64.b64decode(unquote("/".join(parts[4:])))
            environ = {**environ, "REQUEST_METHOD": "POST", "PATH_INFO": "/".join(parts[:4]),
                       "CONTENT_LENGTH": str(len(body)),
                       "CONTENT_TYPE": "application/ocsp-request",
                       "wsgi.input": io.BytesIO(body)}
        return app(environ, start_response)

    return wrapped


class _WholeSecondAnimator(Animator):  # type: ignore[misc]
    """Responses stamped to the whole second: NSS rejects fractional seconds in OCSP times."""

    def at_time(self, request: Any) -> dt.datetime:
        return super().at_time(request).replace(microsecond=0)  # type: ignore[no-any-return]


def _crypto(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


@dataclass
class Credential:
    label: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate]  # issuing CA(s), not the root


class DocumentPki:
    """The live test PKI. ``tsa_url``, ``root`` and ``credential(label)`` are what tests use."""

    __test__ = False

    def __init__(self, directory: Path, now: dt.datetime | None = None) -> None:
        self.now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        config = CertomancerConfig(build_config(directory, self.url, self.now),
                                   key_search_dir=str(directory))
        self.arch: PKIArchitecture = config.get_pki_arch(ARCH)
        self.animator = _WholeSecondAnimator(AnimatorArchStore({ARCH: self.arch}), with_web_ui=False)
        self._app = _ocsp_get(self.animator)
        self._server: BaseWSGIServer = make_server("127.0.0.1", self.port, self._app,
                                                   threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="certomancer-animator")
        self._thread.start()
        self.directory = directory

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def offline(self) -> Iterator[None]:
        """The responders are down (for checks that must use embedded data only)."""
        self.close()
        try:
            yield
        finally:
            self._server = make_server("127.0.0.1", self.port, self._app, threaded=True)
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                            name="certomancer-animator")
            self._thread.start()

    @property
    def tsa_url(self) -> str:
        return f"{self.url}/{ARCH}/tsa/tsa"

    @property
    def short_tsa_url(self) -> str:
        """The TSA whose certificate expires a day after :attr:`now`."""
        return f"{self.url}/{ARCH}/tsa/tsa-short"

    def crl(self, issuer: str, at: dt.datetime) -> bytes:
        """The CRL of ``issuer`` ("interm" or "root") as the CA would publish it at ``at``."""
        data: bytes = self.arch.service_registry.get_crl(issuer, at_time=at).dump()
        return data

    def cert(self, label: str) -> x509.Certificate:
        return _crypto(self.arch.get_cert(label))

    @property
    def root(self) -> x509.Certificate:
        return self.cert("root")

    @property
    def interm(self) -> x509.Certificate:
        return self.cert("interm")

    @property
    def untrusted_root(self) -> x509.Certificate:
        return self.cert("untrusted-root")

    def key(self, label: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(
            (self.directory / f"{label}.key.pem").read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        return key

    def credential(self, label: str) -> Credential:
        return Credential(label, self.cert(label), self.key(label), [self.interm])

    def pem(self, *labels: str) -> bytes:
        return b"".join(self.cert(label).public_bytes(serialization.Encoding.PEM)
                        for label in labels)


def document_pki(directory: Path) -> Iterator[DocumentPki]:
    pki = DocumentPki(directory)
    try:
        yield pki
    finally:
        pki.close()
