"""Detached CMS signatures (RFC 5652) in the CAdES baseline profile (ETSI EN 319 122-1) for any
file: B-B (signing-certificate-v2, signing time, content type, message digest) and B-T (plus an
RFC 3161 signature time-stamp). The file is hashed in chunks: its size does not matter.

The result is the DER ``ContentInfo`` of a ``.p7s`` file. ``openssl cms -verify -binary -inform DER
-in file.p7s -content file`` verifies it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from enum import StrEnum
from typing import IO

from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes

from signing.errors import InvalidInput
from signing.sign._aio import run
from signing.sign._pyhanko import PyHankoSigner
from signing.sign.signers import Signer, hash_for
from signing.sign.timestamps import PortTimeStamper, TimeStampTransport

__all__ = ["CadesLevel", "digest_stream", "sign_detached"]

CHUNK = 1 << 20


class CadesLevel(StrEnum):
    """The level of a detached CMS (CAdES) signature: basic, or with a signature time stamp."""
    B_B = "B-B"
    B_T = "B-T"


def digest_stream(source: IO[bytes], hash_algorithm: str = "sha256") -> bytes:
    """Hash a binary stream in 1 MiB chunks."""
    hash_for(hash_algorithm)
    h = hashlib.new(hash_algorithm)
    while chunk := source.read(CHUNK):
        h.update(chunk)
    return h.digest()


def sign_detached(source: IO[bytes], signer: Signer, *, at: dt.datetime,
                  level: CadesLevel = CadesLevel.B_B,
                  timestamps: TimeStampTransport | None = None,
                  hash_algorithm: str = "sha256") -> bytes:
    """A detached CAdES signature over the bytes read from ``source``."""
    return sign_digest(digest_stream(source, hash_algorithm), signer, at=at, level=level,
                       timestamps=timestamps, hash_algorithm=hash_algorithm)


def sign_digest(digest: bytes, signer: Signer, *, at: dt.datetime,
                level: CadesLevel = CadesLevel.B_B,
                timestamps: TimeStampTransport | None = None,
                hash_algorithm: str = "sha256") -> bytes:
    """A detached CAdES signature over content whose ``hash_algorithm`` digest is ``digest``
    (for callers that hashed the content themselves, e.g. while streaming it in)."""
    if at.tzinfo is None:
        raise InvalidInput("`at` must be timezone-aware", reason="NAIVE_DATETIME")
    if len(digest) != hash_for(hash_algorithm).digest_size:
        raise InvalidInput("the digest does not match the hash algorithm", reason="BAD_DIGEST")
    if level is CadesLevel.B_T and timestamps is None:
        raise InvalidInput("CAdES B-T needs a time-stamping authority", reason="TSA_REQUIRED")
    timestamper = PortTimeStamper(timestamps) if level is CadesLevel.B_T and timestamps else None

    async def make() -> bytes:
        content_info = await PyHankoSigner(signer).async_sign(
            digest, hash_algorithm, timestamper=timestamper, is_pdf_sig=False,
            signed_attr_settings=PdfCMSSignedAttributes(signing_time=at))
        return bytes(content_info.dump())

    return run(make())
