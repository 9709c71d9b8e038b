"""Bridges between this package's ports and pyHanko's classes (internal)."""

from __future__ import annotations

from collections.abc import Iterable

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.signers.pdf_cms import Signer as PyHankoSignerBase
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.sign.signers import Signer, signature_size

__all__ = ["PyHankoSigner", "to_asn1", "to_crypto"]


def to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def to_crypto(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def store(certs: Iterable[x509.Certificate]) -> SimpleCertificateStore:
    result: SimpleCertificateStore = SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
        [to_asn1(c) for c in certs])
    return result


class PyHankoSigner(PyHankoSignerBase):
    """A pyHanko signer whose raw signatures come from a :class:`Signer`."""

    def __init__(self, signer: Signer) -> None:
        super().__init__(signing_cert=to_asn1(signer.certificate),
                         cert_registry=store(signer.chain), embed_roots=True)
        self._port = signer
        self._size = signature_size(signer.certificate)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str,
                             dry_run: bool = False) -> bytes:
        if dry_run:
            return bytes(self._size)
        return self._port.sign(data, digest_algorithm)
