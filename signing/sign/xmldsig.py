"""Enveloped XML Signatures (W3C XML Signature Syntax and Processing 1.1) in the convention of
Vietnamese tax e-documents (Decision 1271/QĐ-CT: e-invoices, e-receipts, messages to the tax
authority), built with signxml.

A signature made here looks like this (``Id`` values chosen by the caller)::

    <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="NBan">   (ds: prefixes omitted)
      <SignedInfo>
        <CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>
        <SignatureMethod Algorithm="...rsa-sha256 | ecdsa-sha256"/>
        <Reference URI="#DLBLai">                 <!-- or "" for the whole document -->
          <Transforms><Transform Algorithm="...#enveloped-signature"/>
                      <Transform Algorithm="http://www.w3.org/2006/12/xml-c14n11"/></Transforms>
          <DigestMethod Algorithm="...#sha256"/><DigestValue>...</DigestValue>
        </Reference>
        <Reference URI="#NBan-SigningTime">       <!-- the signing time is signed too -->
          <Transforms><Transform Algorithm="http://www.w3.org/2006/12/xml-c14n11"/></Transforms>
          ...
        </Reference>
      </SignedInfo>
      <SignatureValue>...</SignatureValue>
      <KeyInfo><X509Data>
        <X509SubjectName>CN=...,O=...,C=VN</X509SubjectName>
        <X509Certificate>signer</X509Certificate><X509Certificate>issuing CA</X509Certificate>
      </X509Data></KeyInfo>
      <Object Id="NBan-SigningTime"><SignatureProperties>
        <SignatureProperty Target="#NBan"><SigningTime>2025-07-01T09:30:00</SigningTime>
        </SignatureProperty></SignatureProperties></Object>
    </Signature>

``SigningTime`` sits in the XMLDSig namespace, as in the tax authority's documents (which declare
it as the default namespace; this module writes the ``ds:`` prefix, which signxml round-trips
reliably and any XMLDSig verifier treats the same); strictly the XMLDSig schema wants a foreign
element there, so schema validation of the signature is replaced by explicit structure checks
when verifying.

``SigningTime`` is written as ``YYYY-MM-DDThh:mm:ss`` in Vietnam time (GMT+7), like every
date-time of these documents, and read back as such. Canonicalisation is C14N 1.1 (inclusive):
exclusive C14N produced digests that other verifiers rejected. ``Id`` attributes are XML IDs only
when a verifier is told so (``xmlsec1 --id-attr:Id <element>``, signxml ``id_attribute``).

The key may be any cryptography private key, including a PKCS#11 token key
(:mod:`signing.pkcs11`): signxml hands it the canonical SignedInfo to sign.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidInput as SignxmlInvalidInput
from signxml.exceptions import SignXMLException
from signxml.signer import SignatureReference, XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from signing.errors import InvalidInput
from signing.sign._aio import run
from signing.sign.errors import (
    DocumentInvalid,
    SignatureInvalid,
    SignatureWrapped,
    SignerMismatch,
    SignerNotExpected,
)
from signing.sign.expected import ExpectedSigner, check_signer

__all__ = [
    "DS_NAMESPACE",
    "ExpectedSigner",
    "SignedElement",
    "VerifiedXmlSignature",
    "XmlDsigSigner",
    "inspect_xml",
    "parse_signing_time",
    "signed_tree",
    "verify_xml",
]

DS_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
_C14N = CanonicalizationMethod.CANONICAL_XML_1_1
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_PATH_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _ds(tag: str) -> str:
    return f"{{{DS_NAMESPACE}}}{tag}"


def _parser() -> etree.XMLParser:
    # No DTD entities, no network, no huge trees: documents come from outside.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=False)


def _parse(document: bytes) -> etree._Element:
    try:
        root = etree.fromstring(document, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise DocumentInvalid("the document is not well-formed XML") from exc
    if root is None:
        raise DocumentInvalid("the document is empty")
    if root.getroottree().docinfo.doctype:
        # E-documents have no DTD; one could only serve entity tricks or ID redefinitions.
        raise DocumentInvalid("documents with a DTD (DOCTYPE) are not accepted")
    return root


def _algorithm(key: PrivateKey) -> SignatureMethod:
    if isinstance(key, rsa.RSAPrivateKey):
        return SignatureMethod.RSA_SHA256
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return SignatureMethod.ECDSA_SHA384 if key.curve.key_size >= 384 \
            else SignatureMethod.ECDSA_SHA256
    raise InvalidInput("XML signatures need an RSA or ECDSA key", reason="UNSUPPORTED_KEY")


def format_signing_time(at: dt.datetime) -> str:
    if at.tzinfo is None:
        raise InvalidInput("signing_time must be timezone-aware", reason="NAIVE_DATETIME")
    return at.astimezone(VIETNAM).strftime(_TIME_FORMAT)


def parse_signing_time(text: str) -> dt.datetime:
    """A ``SigningTime`` value as an aware UTC instant (values without an offset are GMT+7)."""
    value = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput("malformed SigningTime", reason="INVALID_SIGNING_TIME") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=VIETNAM)
    return parsed.astimezone(dt.UTC)


class _EnvelopedSigner(XMLSigner):
    """signxml's enveloped signer, plus a signed ``Object`` holding the signing time.

    The ``Object`` travels inside the signature placeholder so that its digest is computed in its
    final namespace context; its reference gets only the C14N transform (the enveloped-signature
    transform would remove it), and it is moved behind ``KeyInfo`` before ``SignedInfo`` is signed,
    as the XMLDSig schema orders a signature's children.
    """

    def __init__(self, method: SignatureMethod, signature_id: str, properties_uri: str,
                 document: etree._Element) -> None:
        super().__init__(method=SignatureConstructionMethod.enveloped, signature_algorithm=method,
                         digest_algorithm=DigestAlgorithm.SHA256, c14n_algorithm=_C14N)
        self._signature_id = signature_id
        self._properties_uri = properties_uri
        self._document = document
        self.signature_annotators.append(self._finish)

    def get_root(self, data: etree._Element) -> etree._Element:
        # signxml copies the document it is given (serialised and parsed again) before putting
        # the signature into the copy, and copies it once more for a default reference list
        # that a signer with references never uses. The document here is the signer's own
        # parse, signed in place; what a reference covers is still isolated (copied) as
        # signxml does, so the digests and the signature are the same as before.
        if data is self._document:
            return data
        copied: etree._Element = super().get_root(data)  # type: ignore[no-untyped-call]
        return copied

    def _build_transforms_for_reference(self, *, transforms_node: etree._Element,
                                        reference: SignatureReference,
                                        exclude_c14n_transform_element: bool = True) -> None:
        if reference.URI == self._properties_uri:
            assert reference.c14n_method is not None
            etree.SubElement(transforms_node, _ds("Transform"),
                             Algorithm=reference.c14n_method.value)
            return
        super()._build_transforms_for_reference(
            transforms_node=transforms_node, reference=reference,
            exclude_c14n_transform_element=exclude_c14n_transform_element)

    def _get_c14n_inputs_from_references(
            self, doc_root: etree._Element, references: list[SignatureReference]
    ) -> tuple[list[etree._Element], list[SignatureReference]]:
        inputs: list[etree._Element] = []
        refs: list[SignatureReference] = []
        for reference in references:
            if reference.URI == "":  # the whole document (signxml would look for an Id "")
                # A copy (the placeholder is removed from it, not from the document): of the
                # root element, which inherits no namespace declarations, lxml's deep copy is
                # exact and costs a fraction of signxml's serialise-and-parse.
                inputs.append(copy.deepcopy(doc_root))
                refs.append(reference)
            else:
                more, more_refs = super()._get_c14n_inputs_from_references(doc_root, [reference])
                inputs += more
                refs += more_refs
        return inputs, refs

    def _finish(self, sig_root: etree._Element, signing_settings: object) -> None:
        for obj in sig_root.findall(_ds("Object")):
            sig_root.remove(obj)
            sig_root.append(obj)
        sig_root.set("Id", self._signature_id)


def _key_info(chain: Sequence[x509.Certificate]) -> etree._Element:
    key_info = etree.Element(_ds("KeyInfo"), nsmap={"ds": DS_NAMESPACE})
    data = etree.SubElement(key_info, _ds("X509Data"))
    etree.SubElement(data, _ds("X509SubjectName")).text = chain[0].subject.rfc4514_string()
    for cert in chain:
        der = cert.public_bytes(serialization.Encoding.DER)
        etree.SubElement(data, _ds("X509Certificate")).text = base64.b64encode(der).decode()
    return key_info


def _find_or_create(root: etree._Element, path: str) -> etree._Element:
    node = root
    for part in (p for p in path.split("/") if p):
        if not _PATH_PART.fullmatch(part):
            raise InvalidInput("signature_parent must be element names separated by '/'",
                               reason="INVALID_SIGNATURE_PARENT")
        child = next((c for c in node if isinstance(c.tag, str)
                      and etree.QName(c).localname == part), None)
        if child is None:
            child = etree.SubElement(node, part)
        node = child
    return node


class XmlDsigSigner:
    """Makes enveloped XML signatures with one key and its certificate chain.

    ``certificate_chain`` starts with the signer's certificate; issuing CAs may follow (they are
    written into ``KeyInfo``). The key may live in a PKCS#11 token.
    """

    def __init__(self, key: PrivateKey, certificate_chain: Sequence[x509.Certificate]) -> None:
        if not certificate_chain:
            raise InvalidInput("the certificate chain is empty", reason="EMPTY_CHAIN")
        if key.public_key() != certificate_chain[0].public_key():
            raise SignerMismatch("the key does not belong to the signer's certificate")
        self._key = key
        self._chain = tuple(certificate_chain)
        self._method = _algorithm(key)
        self._key_info = _key_info(self._chain)  # built once, a copy goes into each signature

    @property
    def certificate(self) -> x509.Certificate:
        return self._chain[0]

    def sign_xml(self, document: bytes, *, signing_time: dt.datetime,
                 reference_id: str | None = None, signature_id: str = "signature",
                 signature_parent: str = "") -> bytes:
        """Sign ``document`` and return it with the signature inside.

        ``reference_id``: the ``Id`` of the element to sign (e.g. ``DLBLai``); by default the whole
        document (``URI=""``). ``signature_parent``: where the signature goes, as element names
        from the root separated by ``/`` (e.g. ``DSCKS/NBan``), created when missing; by default
        the root element. The document is otherwise left byte-for-byte as parsed: callers that
        strip whitespace between tags (as the tax authority requires) do so before signing.
        """
        signed = self.sign_tree(_parse(document), signing_time=signing_time,
                                reference_id=reference_id, signature_id=signature_id,
                                signature_parent=signature_parent)
        out: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
        return out

    def sign_tree(self, root: etree._Element, *, signing_time: dt.datetime,
                  reference_id: str | None = None, signature_id: str = "signature",
                  signature_parent: str = "") -> etree._Element:
        """:meth:`sign_xml` on a document already parsed (entities unresolved, no network, as
        :meth:`sign_xml` parses), for callers that look into the document before signing it
        without parsing it twice: the signature is added to ``root`` in place, and ``root``
        returned."""
        for value, what in ((signature_id, "signature_id"), (reference_id, "reference_id")):
            if value is not None and not _ID.fullmatch(value):
                raise InvalidInput(f"{what} must be an XML name of at most 64 characters",
                                   reason="INVALID_ID")
        when = format_signing_time(signing_time)
        if root.getroottree().docinfo.doctype:
            raise DocumentInvalid("documents with a DTD (DOCTYPE) are not accepted")
        properties_id = f"{signature_id}-SigningTime"
        ids = [str(v) for v in root.xpath("//@Id")]  # one pass over the document
        for taken in (signature_id, properties_id):
            if taken in ids:
                raise InvalidInput(f"the document already has an element with Id {taken!r}",
                                   reason="ID_TAKEN")
        if reference_id is not None and ids.count(reference_id) != 1:
            raise InvalidInput(f"the document has no single element with Id {reference_id!r}",
                               reason="REFERENCE_NOT_FOUND")

        parent = _find_or_create(root, signature_parent)
        placeholder = etree.SubElement(parent, _ds("Signature"), nsmap={"ds": DS_NAMESPACE},
                                       Id="placeholder")
        obj = etree.SubElement(placeholder, _ds("Object"), Id=properties_id)
        props = etree.SubElement(obj, _ds("SignatureProperties"))
        prop = etree.SubElement(props, _ds("SignatureProperty"), Target=f"#{signature_id}")
        # In the XMLDSig namespace, as the tax authority's documents have it.
        etree.SubElement(prop, _ds("SigningTime")).text = when

        properties_uri = f"#{properties_id}"
        signer = _EnvelopedSigner(self._method, signature_id, properties_uri, root)
        references = [SignatureReference(URI=f"#{reference_id}" if reference_id else ""),
                      SignatureReference(URI=properties_uri)]
        try:
            signed: etree._Element = signer.sign(
                root, key=self._key, reference_uri=references,
                key_info=copy.deepcopy(self._key_info), id_attribute="Id")
        except SignxmlInvalidInput as exc:
            raise DocumentInvalid(f"the document cannot be signed: {exc}") from exc
        return signed


@dataclass(frozen=True, slots=True)
class SignedElement:
    """The element a signature's document reference covers, as found in the document.

    ``path``: where it is, from the root (``/BLai/DLBLai``; positions ``[n]`` where a name repeats,
    ``ds:`` for the XMLDSig namespace, ``{uri}`` for other namespaced elements); ``/`` for a
    reference to the whole document. ``digest``: the reference's ``DigestValue`` (base64, with
    ``digest_algorithm``); ``sha256``: hex SHA-256 of the canonical signed data.
    """

    uri: str
    path: str
    id: str | None
    digest_algorithm: str
    digest: str
    sha256: str


@dataclass(frozen=True, slots=True)
class VerifiedXmlSignature:
    """What a verified XML signature covers and who made it.

    ``signed_data`` is the canonical form of what the document reference covers: applications read
    it (or :meth:`signed_tree`), never the document as received, so that data outside the signed
    element (signature wrapping) or comments inside it cannot change what they read.
    ``signed_element`` says which element that is. ``imitations`` lists data outside the signed
    element that imitates it (empty when the document is clean; :func:`verify_xml` raises
    :class:`SignatureWrapped` otherwise). ``notes`` are remarks that do not fail the signature
    (comments inside the signed element, which the signature does not cover and readers of
    ``signed_data`` never see). The certificate chain is as given in ``KeyInfo``; path validation
    to trust anchors is :mod:`signing.validate`'s job, or done by :func:`verify_xml` when
    ``trust_roots`` are given.
    """

    signer: x509.Certificate
    certificates: tuple[x509.Certificate, ...]
    signing_time: dt.datetime | None
    signature_id: str | None
    signed_data: bytes
    reference_uri: str
    signed_element: SignedElement | None = None
    imitations: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def signed_tree(self) -> etree._Element:
        """The signed data parsed for reading: comments and processing instructions dropped, so
        ``<TgTien>100<!---->000</TgTien>`` reads ``100000``. A fresh tree on each call."""
        return signed_tree(self.signed_data)


def signed_tree(signed_data: bytes) -> etree._Element:
    """Parse canonical signed data for reading (no comments, no processing instructions)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(signed_data, parser=parser)
    except etree.XMLSyntaxError as exc:  # a reference to a text node set, not an element
        raise DocumentInvalid("the signed data is not a single XML element") from exc
    if root is None:
        raise DocumentInvalid("the signed data is empty")
    return root


def _certificates(signature: etree._Element) -> list[x509.Certificate]:
    certs = []
    for node in signature.iterfind(f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}"):
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode(node.text or "")))
        except ValueError as exc:
            raise SignatureInvalid() from exc
    return certs


def verify_xml(document: bytes, *, signature_id: str | None = None, id_attribute: str = "Id",
               trust_roots: Sequence[x509.Certificate] | None = None,
               at: dt.datetime | None = None,
               expected_signer: ExpectedSigner | None = None,
               expected_path: str | None = None) -> list[VerifiedXmlSignature]:
    """Verify the enveloped signature(s) of ``document``.

    Checks each signature with the first certificate of its ``KeyInfo`` (the signer's), that it has
    exactly one document reference plus, when present, the reference covering its signing time,
    and returns what each covers. Raises :class:`SignatureWrapped` when data outside a signed
    element imitates it, or when the signed element is not at ``expected_path`` (e.g.
    ``/BLai/DLBLai``); :class:`SignerNotExpected` when a signer's certificate does not match
    ``expected_signer``. With ``trust_roots``, also that the signer's certificate chains
    to one of them and is valid for signing at ``at`` (default: the signed signing time; one of
    the two is required). Raises :class:`SignatureInvalid` (opaque) when anything else fails.
    Revocation and the EN 319 102-1 report: :func:`signing.validate.validate_xml`.
    """
    results = inspect_xml(document, signature_id=signature_id, id_attribute=id_attribute)
    for result in results:
        if result.imitations:
            raise SignatureWrapped()
        if expected_path is not None and (result.signed_element is None
                                          or result.signed_element.path != expected_path):
            raise SignatureWrapped("the signed element is not where the document's data is read")
        if expected_signer is not None and not check_signer(result.signer, expected_signer).ok:
            raise SignerNotExpected()
    if trust_roots is not None:
        for result in results:
            moment = at or result.signing_time
            if moment is None:
                raise InvalidInput("verifying trust needs `at` or a signed signing time",
                                   reason="NO_VALIDATION_TIME")
            if not _chains_to(result, trust_roots, moment):
                raise SignatureInvalid()
    return results


def inspect_xml(document: bytes, *, signature_id: str | None = None,
                id_attribute: str = "Id") -> list[VerifiedXmlSignature]:
    """Verify the signature(s) cryptographically and say what each covers, including imitations
    of the signed data, without judging them (:func:`verify_xml` does). Raises
    :class:`SignatureInvalid` when a signature or digest does not verify."""
    root = _parse(document)
    signatures = root.findall(f".//{_ds('Signature')}")
    if signature_id is not None:
        signatures = [s for s in signatures if s.get("Id") == signature_id]
    if not signatures:
        raise SignatureInvalid("the document has no XML signature")
    return [_verify_one(document, root, s, id_attribute) for s in signatures]


def _chains_to(result: VerifiedXmlSignature, roots: Sequence[x509.Certificate],
               at: dt.datetime) -> bool:
    from asn1crypto import x509 as asn1_x509
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import PathError, ValidationError

    def load(cert: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    context = ValidationContext(trust_roots=[load(c) for c in roots], moment=at,
                                allow_fetching=False, revocation_mode="soft-fail")
    validator = CertificateValidator(load(result.signer),
                                     [load(c) for c in result.certificates[1:]],
                                     validation_context=context)
    try:
        run(validator.async_validate_usage({"digital_signature"}))  # type: ignore[no-untyped-call]
    except (PathError, ValidationError, ValueError):
        return False
    return True


def _verify_one(document: bytes, root: etree._Element, signature: etree._Element,
                id_attribute: str) -> VerifiedXmlSignature:
    certs = _certificates(signature)
    if not certs:
        raise SignatureInvalid()
    sig_id = signature.get("Id")
    refs = signature.findall(f"{_ds('SignedInfo')}/{_ds('Reference')}")
    objects = {o.get("Id"): o for o in signature.findall(_ds("Object")) if o.get("Id")}
    time_uris = [r.get("URI", "") for r in refs if r.get("URI", "")[1:] in objects]
    if len(refs) - len(time_uris) != 1 or len(time_uris) > 1:
        raise SignatureInvalid()
    if len(root.findall(f".//{_ds('Signature')}")) == 1:
        location = ".//"
    else:  # several signatures: say which one (signxml takes the first one it finds)
        parent = signature.getparent()
        location = _location(root, parent) if parent is not None else "./"
    # Whether the certificate was valid when it mattered is for path validation to judge, at the
    # caller's time; signxml would check it against the clock, so show it a time inside the
    # certificate's validity.
    config = SignatureConfiguration(expect_references=len(refs), location=location,
                                    default_reference_c14n_method=_C14N,
                                    verification_time=certs[0].not_valid_before_utc)
    try:
        # Schema validation off: the tax convention puts SigningTime in the XMLDSig namespace,
        # which the XMLDSig schema does not allow inside SignatureProperty. The structure that
        # matters (one document reference, one signing-time reference) is checked above.
        verified = XMLVerifier().verify(document, x509_cert=certs[0], id_attribute=id_attribute,
                                        expect_config=config, parser=_parser(),
                                        validate_schema=False)
    except (SignXMLException, ValueError) as exc:
        raise SignatureInvalid() from exc
    results = verified if isinstance(verified, list) else [verified]
    doc_ref = next(r for r in refs if r.get("URI", "") not in time_uris)
    doc_uri = doc_ref.get("URI", "")
    signing_time = None
    doc_data = b""
    if results and results[0].signature_xml.get("Id") != sig_id:
        raise SignatureInvalid()
    for ref, result in zip(refs, results, strict=True):
        if ref.get("URI", "") in time_uris:
            node = result.signed_xml
            found = None if node is None else next(iter(node.xpath(
                ".//*[local-name()='SignatureProperty']/*[local-name()='SigningTime']")), None)
            if found is None or found.text is None:
                raise SignatureInvalid()
            try:
                signing_time = parse_signing_time(found.text)
            except InvalidInput as exc:
                raise SignatureInvalid() from exc
        else:
            doc_data = result.signed_data
    element, imitations, notes = _what_is_signed(root, signature, doc_ref, doc_data, id_attribute)
    return VerifiedXmlSignature(signer=certs[0], certificates=tuple(certs),
                                signing_time=signing_time, signature_id=sig_id,
                                signed_data=doc_data, reference_uri=doc_uri,
                                signed_element=element, imitations=imitations, notes=notes)


def _referenced(root: etree._Element, uri: str, id_attribute: str) -> etree._Element | None:
    if uri == "":
        return root
    if not uri.startswith("#"):
        return None
    # As signxml resolves it (any namespace prefix on the attribute); it refused ambiguity.
    found = root.xpath(f"//*[@*[local-name() = '{id_attribute}']=$v]", v=uri[1:])
    return found[0] if len(found) == 1 else None


def _path(node: etree._Element) -> str:
    parts = []
    current: etree._Element | None = node
    while current is not None:
        parent = current.getparent()
        qname = etree.QName(current)
        if qname.namespace == DS_NAMESPACE:
            name = f"ds:{qname.localname}"
        elif qname.namespace:
            name = f"{{{qname.namespace}}}{qname.localname}"
        else:
            name = qname.localname
        if parent is not None:
            same = [c for c in parent if c.tag == current.tag]
            if len(same) > 1:
                name += f"[{same.index(current) + 1}]"
        parts.append(name)
        current = parent
    return "/" + "/".join(reversed(parts))


def _inside(node: etree._Element, ancestor: etree._Element) -> bool:
    current: etree._Element | None = node
    while current is not None:
        if current is ancestor:
            return True
        current = current.getparent()
    return False


def _has_data(node: etree._Element) -> bool:
    """Whether an element outside the XMLDSig namespace carries text of its own or below."""
    if etree.QName(node).namespace == DS_NAMESPACE:
        return False
    return bool(str(node.xpath("string()")).strip())


def _what_is_signed(root: etree._Element, signature: etree._Element, reference: etree._Element,
                    signed_data: bytes, id_attribute: str
                    ) -> tuple[SignedElement | None, tuple[str, ...], tuple[str, ...]]:
    """Locate the signed element and look for data imitating it outside what is signed.

    Imitations (signature wrapping, W3C XMLDSig Best Practices §2.3): the signed element hidden
    inside a ``ds:Signature`` (in an ``Object``, where readers do not look) while readers find
    other data; another element of the signed element's name outside every signed element (a
    forged copy where applications read; copies that another signature in the document signs
    are not imitations); data inside a ``ds:Signature`` that no reference covers.
    """
    uri = reference.get("URI", "")
    node = _referenced(root, uri, id_attribute)
    if node is None:
        return None, ("the signed element cannot be located in the document",), ()
    method = reference.find(f"{_ds('DigestMethod')}")
    value = reference.find(f"{_ds('DigestValue')}")
    algorithm = (method.get("Algorithm", "") if method is not None else "").rsplit("#", 1)[-1]
    element = SignedElement(uri=uri, path="/" if uri == "" else _path(node),
                            id=uri[1:] if uri.startswith("#") else None,
                            digest_algorithm=algorithm,
                            digest=(value.text or "").strip() if value is not None else "",
                            sha256=hashlib.sha256(signed_data).hexdigest())
    imitations: list[str] = []
    signatures = root.findall(f".//{_ds('Signature')}")
    # Everything any signature in the document covers (other signatures' elements are signed too).
    covered: list[etree._Element] = []
    for sig in signatures:
        for ref in sig.findall(f"{_ds('SignedInfo')}/{_ds('Reference')}"):
            target = _referenced(root, ref.get("URI", ""), id_attribute)
            if target is not None and target is not root:
                covered.append(target)
    if uri != "":
        holder = next((s for s in signatures if _inside(node, s)), None)
        if holder is not None:
            imitations.append(f"the signed element {element.path} is inside a signature, where "
                              "applications do not read the document's data")
        for other in root.iter(node.tag):
            if other is node or _inside(other, node) or _inside(node, other):
                continue
            if any(other is c for c in covered):
                continue
            imitations.append(f"{_path(other)} imitates the signed element {element.path} "
                              "outside the signed data")
    for sig in signatures:
        for child in sig.iter(etree.Element):
            if child is sig or not _has_data(child):
                continue
            parent = child.getparent()
            if parent is not None and etree.QName(parent).namespace != DS_NAMESPACE:
                continue  # reported with its outermost foreign ancestor
            if any(_inside(child, c) for c in covered):
                continue
            imitations.append(f"{_path(child)} holds data inside a signature that no reference "
                              "covers")
    notes: list[str] = []
    comments = sum(1 for n in node.iter(etree.Comment)
                   if not any(_inside(n, s) for s in signatures))
    if comments and "WithComments" not in "".join(
            t.get("Algorithm", "") for t in reference.iter(_ds("Transform"))):
        notes.append(f"{comments} comment(s) inside the signed element are not signed; "
                     "the signed data is read without them")
    return element, tuple(imitations), tuple(notes)


def _location(root: etree._Element, parent: etree._Element) -> str:
    parts = []
    node: etree._Element | None = parent
    while node is not None and node is not root:
        index = 1 + sum(1 for s in node.itersiblings(preceding=True) if s.tag == node.tag)
        parts.append(f"{node.tag}[{index}]" if index > 1 else str(node.tag))
        node = node.getparent()
    return "./" + "".join(f"{p}/" for p in reversed(parts))
