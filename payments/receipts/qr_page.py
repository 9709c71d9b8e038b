"""The offline verification page for receipt QR codes: one self-contained HTML file.

It holds the trusted root(s), the published seal certificates and issuing CAs (untrusted, found
by thumbprint), a QR decoder and an X.509 library (vendored from npm, unmodified:
``verifier/vendor/``, licences in ``LICENSES.txt``) and the checks of
:func:`payments.receipts.qr_jws.verify_qr` written for WebCrypto (``verifier/verify.js``). It loads
nothing from anywhere: its Content-Security-Policy forbids every connection, so it works saved
on a phone or opened from a file, and a QR token in the URL's fragment (``page#<token>``, what
the receipts' QR codes hold) is verified without leaving the browser.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["verifier_page"]


def _asset(name: str) -> str:
    return resources.files("payments.receipts").joinpath("verifier", name).read_text("utf-8")


def _b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")


def verifier_page(roots: Sequence[x509.Certificate],
                  certificates: Sequence[x509.Certificate]) -> bytes:
    """The page trusting ``roots`` and knowing ``certificates`` (seals and issuing CAs)."""
    trust = json.dumps({"roots": [_b64(c) for c in roots],
                        "certificates": [_b64(c) for c in certificates]})
    parts = {
        "__ROOTS__": html.escape("; ".join(c.subject.rfc4514_string() for c in roots)),
        "__TRUST__": trust.replace("<", "\\u003c"),
        "__REFLECT__": _asset("vendor/Reflect.js"),
        "__X509__": _asset("vendor/x509.js"),
        "__JSQR__": _asset("vendor/jsQR.js"),
        "__APP__": _asset("verify.js"),
    }
    page = _asset("page.html")
    out = []
    rest = page
    while rest:
        found = [(rest.find(k), k) for k in parts if rest.find(k) >= 0]
        if not found:
            out.append(rest)
            break
        index, key = min(found)
        out.append(rest[:index])
        out.append(parts[key])
        rest = rest[index + len(key):]
    return "".join(out).encode("utf-8")
