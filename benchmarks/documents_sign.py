#!/usr/bin/env python3
"""Signing a 1-page PDF at PAdES B-B through the gRPC SigningService (a server process, mutual
TLS, audit log), beside, in the same run:

* the floor: pyHanko with the key parsed once, pyHanko's own signing path with its defaults
  (``signers.sign_pdf`` and a ``SimpleSigner`` whose private key is loaded once instead of at
  every signature, which is all "a cached key" changes);
* this library in this process (``signing.sign.pades.sign_pdf`` with a ``KeySigner``: the code
  the server runs, which also reserves the signature's space up front instead of pyHanko's
  trial signature), so that the server's own cost per call shows on its own;
* pyHanko's stock SimpleSigner (which parses the key again for every signature).

    .venv/bin/python benchmarks/documents_sign.py [--n 200] [--key rsa-3072|ec-p256]

Targets: gRPC p50 <= 1.2 x the floor's p50, and <= 50 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python")]

import grpc  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from signing.ca import (  # noqa: E402
    CertificateSpec,
    KeyAlgorithm,
    KeyUsages,
    SubjectInfo,
    generate_private_key,
    issue_certificate,
)
from signing.sign.pades import PadesOptions, sign_pdf  # noqa: E402
from signing.sign.signers import KeySigner  # noqa: E402
from tests.signing.sign.pdfs import decision_pdf  # noqa: E402
from tests.support.pki import TestPki, name, pem  # noqa: E402
from tests.support.server import ServerProcess, free_port, server_config_dict  # noqa: E402
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402
from vnegov.signing.v1 import documents_pb2 as pb  # noqa: E402
from vnegov.signing.v1 import documents_pb2_grpc  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.9)] * 1000,
            statistics.mean(ordered) * 1000)


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--key", choices=["rsa-3072", "ec-p256"], default="rsa-3072")
    args = parser.parse_args()

    pki = TestPki()
    key = generate_private_key(KeyAlgorithm(args.key))
    now = dt.datetime.now(dt.UTC)
    cert = issue_certificate(CertificateSpec(
        subject=name("UBND Thanh pho Ho Chi Minh"), not_before=now - dt.timedelta(hours=1),
        not_after=now + dt.timedelta(days=30),
        key_usages=KeyUsages(digital_signature=True, content_commitment=True),
        subject_info=SubjectInfo(agency_code="000.00.00.H29")),
        key.public_key(), pki.issuing.key, pki.issuing.cert)
    document = decision_pdf()
    print(f"document: 1-page PDF, {len(document)} bytes; key {args.key}; n={args.n}; "
          f"load average {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")

    from asn1crypto import keys as asn1_keys
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.general import get_pyca_cryptography_hash
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from signing.sign._pyhanko import to_asn1

    pkcs8 = asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    registry = SimpleCertificateStore.from_certs([to_asn1(pki.issuing.cert)])

    class CachedKeySimpleSigner(signers.SimpleSigner):
        """pyHanko's SimpleSigner with the key loaded once: its sign_raw loads the PKCS#8 key
        at every signature; this one signs as it does (PKCS#1 v1.5 or ECDSA) with a key object
        kept from the start."""

        def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
            hash_algo = get_pyca_cryptography_hash(digest_algorithm)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                return key.sign(data, ec.ECDSA(hash_algo))
            return key.sign(data, padding.PKCS1v15(), hash_algo)  # type: ignore[union-attr]

    cached = CachedKeySimpleSigner(signing_cert=to_asn1(cert), signing_key=pkcs8,
                                   cert_registry=registry)
    stock = signers.SimpleSigner(signing_cert=to_asn1(cert), signing_key=pkcs8,
                                 cert_registry=registry)

    def pyhanko_sign(with_signer: signers.Signer) -> None:
        signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(document)),
                         signers.PdfSignatureMetadata(field_name="Signature1"),
                         signer=with_signer)

    def floor() -> None:  # the floor: pyHanko, key parsed once
        pyhanko_sign(cached)

    def stock_sign() -> None:  # pyHanko's stock SimpleSigner: the key parsed at every signature
        pyhanko_sign(stock)

    # this library in this process: what the server runs for each call
    signer = KeySigner(key, cert, [pki.issuing.cert])

    def library() -> None:
        sign_pdf(io.BytesIO(document), io.BytesIO(), signer, at=dt.datetime.now(dt.UTC),
                 options=PadesOptions())

    for _ in range(5):
        floor()
        library()

    # through gRPC: a server process with the same key in a file
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "agency.pem").write_bytes(pem(cert, pki.issuing.cert))
        (directory / "agency.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        database = f"sqlite:///{directory / 'bench.db'}"
        config = server_config_dict(pki, directory, database, grpc_port=free_port(),
                                    http_port=free_port(), extra={
            "logging": {"level": "ERROR"},
            "auth": {"callers": [{"agency_code": "000.00.00.H29",
                                  "scopes": ["documents.sign"], "provinces": ["79"]}]},
            "documents": {"signers": [{"name": "ubnd-hcm", "agency_code": "000.00.00.H29",
                                       "certificate_file": str(directory / "agency.pem"),
                                       "key_file": str(directory / "agency.key")}]}})
        server = ServerProcess(config, directory)
        subprocess.run([sys.executable, "-m", "server", "--config", str(server.config_path),
                        "migrate"], cwd=ROOT, check=True, capture_output=True,
                       env={"PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}", "PATH": "/usr/bin:/bin"})
        server.start()
        try:
            creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem,
                                                 pki.hcm.chain_pem)
            with grpc.secure_channel(f"localhost:{server.grpc_port}", creds) as channel:
                stub = documents_pb2_grpc.SigningServiceStub(channel)
                header = pb.SignDocumentHeader(format=pb.PDF, agency_signer="ubnd-hcm")

                def through_grpc() -> None:
                    requests = iter([pb.SignDocumentRequest(header=header, chunk=document)])
                    out = b"".join(r.chunk for r in stub.SignDocument(requests))
                    assert out.startswith(b"%PDF")

                for _ in range(5):
                    through_grpc()
                admin = admin_pb2_grpc.AdminServiceStub(channel)

                def echo() -> None:  # the server's own per-call cost: auth, audit, mTLS
                    admin.GetCaller(admin_pb2.GetCallerRequest())

                # Interleaved, so that load from elsewhere on the machine hits all alike.
                floor_samples: list[float] = []
                library_samples: list[float] = []
                grpc_samples: list[float] = []
                stock_samples: list[float] = []
                echo_samples: list[float] = []
                for i in range(args.n):
                    floor_samples += timed(floor, 1)
                    library_samples += timed(library, 1)
                    grpc_samples += timed(through_grpc, 1)
                    echo_samples += timed(echo, 1)
                    if i % 10 == 0:
                        stock_samples += timed(stock_sign, 1)
        finally:
            server.signal()
            time.sleep(0.5)
            server.kill()

    rows = [("pyHanko, key parsed once (floor)", floor_samples),
            ("pyHanko stock SimpleSigner", stock_samples),
            ("this library in-process (KeySigner)", library_samples),
            ("gRPC SigningService (mTLS, audit)", grpc_samples),
            ("gRPC GetCaller, same channel (echo)", echo_samples)]
    base = percentiles(floor_samples)[0]
    own = percentiles(library_samples)[0]
    print(f"{'':38} {'p50 ms':>8} {'p90 ms':>8} {'mean ms':>8} {'p50/floor':>10} "
          f"{'p50/library':>12}")
    for label, samples in rows:
        p50, p90, mean = percentiles(samples)
        print(f"{label:38} {p50:8.1f} {p90:8.1f} {mean:8.1f} {p50 / base:10.2f} "
              f"{p50 / own:12.2f}")
    p50 = percentiles(grpc_samples)[0]
    echo = percentiles(echo_samples)[0]
    print(f"the server's cost over this library in-process: {p50 - own:.1f} ms "
          f"({p50 / own:.2f} x), of which a whole audited mTLS call (echo) is {echo:.1f} ms")
    print(f"target: gRPC p50 <= 1.2 x floor ({1.2 * base:.1f} ms) and <= 50 ms: "
          f"{'met' if p50 <= 1.2 * base and p50 <= 50 else 'NOT met'} ({p50:.1f} ms, "
          f"{p50 / base:.2f} x)")


if __name__ == "__main__":
    main()
