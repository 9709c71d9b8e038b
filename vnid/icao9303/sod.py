"""The Document Security Object (ICAO 9303 part 10, 4.6.2) and the CSCA trust it is checked against.

The SOD (tag ``77``) wraps a CMS SignedData whose content is the LDS security object: the hash
algorithm and one hash per data group. Verifying it means: the signed attributes' message digest
is the hash of the content; the document signer's (DS) signature over the signed attributes
verifies with the DS certificate the SOD carries; the DS certificate was issued by a CSCA in the
configured trust list, was valid at the time asked about, and is not on that CSCA's CRL; and each
presented data group hashes to the value the SOD lists for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from asn1crypto import algos, cms
from asn1crypto import core as asn1
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from vnid.icao9303.errors import ChipError
from vnid.icao9303.lds import check_nesting, read_tlv

__all__ = ["CscaTrustList", "LdsSecurityObject", "SodVerification", "parse_sod", "verify_sod"]

LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
CSCA_MASTER_LIST = "2.23.136.1.1.2"


class _DataGroupHash(asn1.Sequence):  # type: ignore[misc]
    _fields = [("data_group_number", asn1.Integer), ("data_group_hash_value", asn1.OctetString)]


class _DataGroupHashes(asn1.SequenceOf):  # type: ignore[misc]
    _child_spec = _DataGroupHash


class _LdsVersionInfo(asn1.Sequence):  # type: ignore[misc]
    _fields = [("lds_version", asn1.PrintableString), ("unicode_version", asn1.PrintableString)]


class _LdsSecurityObject(asn1.Sequence):  # type: ignore[misc]
    _fields = [("version", asn1.Integer),
               ("hash_algorithm", algos.DigestAlgorithm),
               ("data_group_hash_values", _DataGroupHashes),
               ("lds_version_info", _LdsVersionInfo, {"optional": True})]


class _CertificateSet(asn1.SetOf):  # type: ignore[misc]
    _child_spec = cms.Certificate


class _CscaMasterList(asn1.Sequence):  # type: ignore[misc]
    _fields = [("version", asn1.Integer), ("cert_list", _CertificateSet)]


_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512}


@dataclass(frozen=True, slots=True)
class LdsSecurityObject:
    """The SOD's content: the hash algorithm and the hash of each data group."""

    hash_algorithm: str  # "sha256", ...
    hashes: Mapping[int, bytes]


@dataclass(frozen=True, slots=True)
class SodVerification:
    """What a verified SOD proved."""

    lds: LdsSecurityObject
    ds_certificate: x509.Certificate
    csca_certificate: x509.Certificate
    signing_time: dt.datetime | None


@dataclass(frozen=True)
class CscaTrustList:
    """The country signing CAs trusted for chips, with their CRLs (ICAO 9303 part 12)."""

    certificates: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    @classmethod
    def from_pem(cls, pem: bytes, crls: Iterable[bytes] = ()) -> CscaTrustList:
        """Certificates from a PEM bundle; CRLs in PEM or DER."""
        certs = tuple(x509.load_pem_x509_certificates(pem))
        return cls(certs, tuple(_load_crl(c) for c in crls))

    @classmethod
    def from_master_list(cls, data: bytes, crls: Iterable[bytes] = (), *,
                         signer_issuers: Sequence[x509.Certificate]) -> CscaTrustList:
        """The CSCA certificates of an ICAO master list (a CMS SignedData of a CscaMasterList),
        after checking the list's signature by its signer, whose certificate must have been issued
        by one of ``signer_issuers``: CSCA certificates trusted out of band, those of the country
        that publishes the list (ICAO Doc 9303 part 12: a master list signer is issued by its
        country's CSCA). What a list holds cannot vouch for the list itself: anyone can put a
        CSCA of their own in a list and sign it with a signer that CSCA issued."""
        if not signer_issuers:
            raise ValueError("a master list is trusted only through the CSCA that issued its "
                             "signer, trusted out of band (signer_issuers)")
        check_nesting(data)
        try:
            info = cms.ContentInfo.load(data)
            signed = info["content"]
            content = signed["encap_content_info"]
            if content["content_type"].dotted != CSCA_MASTER_LIST:
                raise ChipError("not a CSCA master list", reason="CHIP_MALFORMED")
            raw = bytes(content["content"].parsed.dump()) if hasattr(
                content["content"], "parsed") else bytes(content["content"].native)
            listed = _CscaMasterList.load(raw)
            certs = tuple(x509.load_der_x509_certificate(c.dump())
                          for c in listed["cert_list"])
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise ChipError("the master list cannot be decoded") from exc
        signer = _verify_signed_data(signed, raw)
        if not any(_issued_by(signer, ca) for ca in signer_issuers):
            raise ChipError("the master list's signer was not issued by a CSCA trusted to "
                            "publish master lists", reason="CHIP_DS_UNTRUSTED")
        return cls(certs, tuple(_load_crl(c) for c in crls))

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The trusted CSCA that issued ``cert`` (its signature checked), or None."""
        key = cert.fingerprint(hashes.SHA256())
        cache: dict[bytes, x509.Certificate | None] = self.__dict__.setdefault("_issuers", {})
        try:
            return cache[key]
        except KeyError:
            pass
        # Computed and returned without reading the cache back: another thread may clear it
        # in between (many distinct, untrusted DS certificates fill it).
        found = next((ca for ca in self.certificates if _issued_by(cert, ca)), None)
        if len(cache) >= 4096:
            cache.clear()
        cache[key] = found
        return found

    def revoked(self, cert: x509.Certificate, ca: x509.Certificate) -> dt.datetime | None:
        """When ``cert`` was revoked according to a CRL signed by ``ca``, or None."""
        for crl in self.crls:
            if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
                continue
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None:
                return entry.revocation_date_utc
        return None


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def parse_sod(data: bytes) -> cms.SignedData:
    """The CMS SignedData inside an EF.SOD (tag 77)."""
    outer = read_tlv(data)
    if outer.tag != 0x77:
        raise ChipError("the SOD does not start with tag 77")
    check_nesting(outer.value)
    try:
        info = cms.ContentInfo.load(outer.value)
        if info["content_type"].native != "signed_data":
            raise ChipError("the SOD is not a CMS SignedData")
        signed = info["content"]
        # Decode the parts verification reads now, so malformed input fails here.
        signed["encap_content_info"]["content_type"].dotted  # noqa: B018
        for signer in signed["signer_infos"]:
            signer["sid"].chosen  # noqa: B018
            signer["signed_attrs"].native  # noqa: B018
        for cert in signed["certificates"] or []:
            cert.chosen.dump()
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise ChipError("the SOD cannot be decoded") from exc
    return signed


def _econtent(signed: cms.SignedData, want: str) -> bytes:
    content = signed["encap_content_info"]
    if content["content_type"].dotted != want:
        raise ChipError("the SOD does not hold an LDS security object")
    value = content["content"]
    if value is None or isinstance(value, asn1.Void):
        raise ChipError("the SOD's content is missing")
    return bytes(value.contents if isinstance(value, asn1.OctetString) else value.native)


def _verify_signed_data(signed: cms.SignedData, econtent: bytes) -> x509.Certificate:
    infos = signed["signer_infos"]
    if len(infos) != 1:
        raise ChipError("the SOD must have exactly one signer", reason="CHIP_SOD_INVALID")
    info = infos[0]
    certs = [c.chosen for c in signed["certificates"] or []
             if isinstance(c.chosen, asn1_x509.Certificate)]
    sid = info["sid"]
    signer_asn1 = None
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            iss = sid.chosen
            if (cert.serial_number == iss["serial_number"].native
                    and cert["tbs_certificate"]["issuer"].dump() == iss["issuer"].dump()):
                signer_asn1 = cert
        elif cert.key_identifier == sid.chosen.native:
            signer_asn1 = cert
    if signer_asn1 is None:
        raise ChipError("the SOD does not carry its signer's certificate",
                        reason="CHIP_SOD_INVALID")
    signer = x509.load_der_x509_certificate(signer_asn1.dump())
    digest_name = info["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise ChipError(f"unsupported digest {digest_name}", reason="CHIP_SOD_INVALID")
    attrs = info["signed_attrs"]
    if not attrs:
        raise ChipError("the SOD has no signed attributes", reason="CHIP_SOD_INVALID")
    found = {a["type"].native: a["values"] for a in attrs}
    digest = found.get("message_digest")
    if digest is None or digest[0].native != hashlib.new(digest_name, econtent).digest():
        raise ChipError("the SOD's message digest does not match its content",
                        reason="CHIP_SOD_INVALID")
    ctype = found.get("content_type")
    if ctype is None or ctype[0].dotted != signed["encap_content_info"]["content_type"].dotted:
        raise ChipError("the SOD's content-type attribute does not match",
                        reason="CHIP_SOD_INVALID")
    to_verify = b"\x31" + attrs.dump()[1:]
    _check_signature(signer, info, to_verify, _HASHES[digest_name]())
    return signer


def _check_signature(signer: x509.Certificate, info: cms.SignerInfo, data: bytes,
                     digest: hashes.HashAlgorithm) -> None:
    algo = info["signature_algorithm"]
    name = algo.signature_algo
    signature = info["signature"].native
    key = signer.public_key()
    try:
        if name == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = algo["parameters"]
            pss_hash = _HASHES[params["hash_algorithm"]["algorithm"].native]()
            key.verify(signature, data, padding.PSS(padding.MGF1(pss_hash),
                                                    params["salt_length"].native), pss_hash)
        elif name == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), digest)
        elif name == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            hash_name = algo.hash_algo if algo["algorithm"].native != "ecdsa" else None
            key.verify(signature, data, ec.ECDSA(_HASHES[hash_name]() if hash_name else digest))
        else:
            raise ChipError(f"unsupported signature algorithm {name}",
                            reason="CHIP_SOD_INVALID")
    except InvalidSignature:
        raise ChipError("the SOD's signature does not verify with its document signer",
                        reason="CHIP_SOD_INVALID") from None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def verify_sod(data: bytes, trust: CscaTrustList, data_groups: Mapping[int, bytes], *,
               at: dt.datetime, required: Sequence[int] = (1,)) -> SodVerification:
    """Verify an EF.SOD and the presented data groups against it (see the module's notes).

    ``at`` is the time the document signer must have been valid and unrevoked at (the time the
    chip was read; for re-verification, the time it was read then). Raises :class:`ChipError`
    with the reason of the first check that fails."""
    signed = parse_sod(data)
    econtent = _econtent(signed, LDS_SECURITY_OBJECT)
    check_nesting(econtent)
    try:
        lso = _LdsSecurityObject.load(econtent)
        algorithm = lso["hash_algorithm"]["algorithm"].native
        pairs = [(int(h["data_group_number"].native), bytes(h["data_group_hash_value"].native))
                 for h in lso["data_group_hash_values"]]
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise ChipError("the LDS security object cannot be decoded") from exc
    listed = dict(pairs)
    if len(listed) != len(pairs):
        # Two hashes for one data group make "the" data group ambiguous.
        raise ChipError("the SOD lists a data group more than once", reason="CHIP_SOD_INVALID")
    if algorithm not in _HASHES:
        raise ChipError(f"unsupported data-group hash {algorithm}", reason="CHIP_SOD_INVALID")
    ds = _verify_signed_data(signed, econtent)
    csca = trust.issuer_of(ds)
    if csca is None:
        raise ChipError("the document signer was not issued by a trusted CSCA",
                        reason="CHIP_DS_UNTRUSTED")
    at = _aware(at)
    if not ds.not_valid_before_utc <= at <= ds.not_valid_after_utc:
        raise ChipError("the document signer's certificate was not valid at that time",
                        reason="CHIP_DS_EXPIRED")
    if not csca.not_valid_before_utc <= at <= csca.not_valid_after_utc:
        raise ChipError("the CSCA certificate was not valid at that time",
                        reason="CHIP_DS_EXPIRED")
    revoked = trust.revoked(ds, csca)
    if revoked is not None:
        raise ChipError("the document signer's certificate is revoked",
                        reason="CHIP_DS_REVOKED", metadata={"revoked_at": revoked.isoformat()})
    for number in required:
        if number not in data_groups:
            raise ChipError(f"DG{number} was not presented", reason="CHIP_DATA_GROUP_MISSING")
    for number, content in data_groups.items():
        expected = listed.get(number)
        if expected is None:
            raise ChipError(f"DG{number} is not covered by the SOD",
                            reason="CHIP_DATA_GROUP_ALTERED")
        if hashlib.new(algorithm, content).digest() != expected:
            raise ChipError(f"DG{number} was altered: its hash is not the SOD's",
                            reason="CHIP_DATA_GROUP_ALTERED", metadata={"data_group": str(number)})
    signing_time = None
    for attr in signed["signer_infos"][0]["signed_attrs"]:
        if attr["type"].native == "signing_time":
            signing_time = attr["values"][0].native
    return SodVerification(LdsSecurityObject(algorithm, listed), ds, csca, signing_time)
