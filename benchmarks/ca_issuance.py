#!/usr/bin/env python3
"""Certificate issuance per second through gRPC (mutual TLS, CreateCertificateRequest with a
PKCS#10 CSR, auto-approved, persisted with its request, audit events and the call's own audit
record), beside raw cryptography doing the same cryptographic work in one thread, and beside
the server's cheapest authenticated call (GetCaller), all measured in the same run.

    .venv/bin/python benchmarks/ca_issuance.py [--count 3000] [--in-flight 64]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]

The CA key is ECDSA P-256 in an encrypted PKCS#8 file (the embedded deployment ``vnegov init``
makes); the client is the development PKI's national-portal system. CSRs (each with its own key:
the CA refuses to certify a key twice) are made before timing starts.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
import urllib.request
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent),
                str(Path(__file__).resolve().parent.parent / "gen" / "python")]

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from benchmarks._ca_server import BenchServer  # noqa: E402
from signing.ca import load_private_key  # noqa: E402
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402
from vnegov.signing.v1 import certificate_authority_pb2 as pb  # noqa: E402
from vnegov.signing.v1 import certificate_authority_pb2_grpc as pb_grpc  # noqa: E402

SUBJECT = {"system_name": "he-thong-mot-cua", "parent_body": "UBND Thành phố Hồ Chí Minh",
           "agency_code": "000.00.00.H29", "province_code": "79"}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def make_csrs(n: int) -> list[bytes]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    out = []
    for _ in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        out.append(x509.CertificateSigningRequestBuilder().subject_name(name).sign(
            key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    return out


def raw_rate(csrs: list[bytes], issuer: x509.Certificate,
             key: ec.EllipticCurvePrivateKey) -> float:
    """Parse and verify the CSR, build a certificate with the same extensions, sign (P-256)."""
    now = dt.datetime.now(dt.UTC)
    issuer_public = issuer.public_key()
    start = time.perf_counter()
    for data in csrs:
        csr = x509.load_der_x509_csr(data)
        assert csr.is_signature_valid
        public = csr.public_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                             x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME,
                                                "TP. Hồ Chí Minh"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, SUBJECT["parent_body"]),
                             x509.NameAttribute(NameOID.COMMON_NAME, SUBJECT["system_name"])])
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject)
                   .public_key(public).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + dt.timedelta(days=825))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                                False, False), True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer_public), False)  # type: ignore[arg-type]
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                         ExtendedKeyUsageOID.SERVER_AUTH]), False)
                   .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                       [x509.UniformResourceIdentifier("http://127.0.0.1/pki/crl/a.crl")],
                       None, None, None)]), False)
                   .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                       x509.oid.AuthorityInformationAccessOID.OCSP,
                       x509.UniformResourceIdentifier("http://127.0.0.1/pki/ocsp"))]), False))
        builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return len(csrs) / (time.perf_counter() - start)


async def grpc_rate(server: BenchServer, csrs: list[bytes], in_flight: int,
                    warmup: int) -> tuple[float, float, float]:
    pki = server.pki
    creds = grpc.ssl_channel_credentials(
        (pki / "root-ca.pem").read_bytes(),
        (pki / "clients" / "national-portal.key.pem").read_bytes(),
        (pki / "clients" / "national-portal.pem").read_bytes())
    async with grpc.aio.secure_channel(f"localhost:{server.grpc_port}", creds) as channel:
        ca = pb_grpc.CertificateAuthorityServiceStub(channel)
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        semaphore = asyncio.Semaphore(in_flight)

        async def one(csr: bytes) -> None:
            async with semaphore:
                request = await ca.CreateCertificateRequest(pb.CreateCertificateRequestRequest(
                    profile="device", subject=pb.CertificateSubject(**SUBJECT), csr=csr,
                    managing_body="000.00.00.H29"))
                if request.state != pb.CertificateRequest.COMPLETED:
                    raise RuntimeError(f"not issued: {request}")

        async def caller() -> None:
            async with semaphore:
                await admin.GetCaller(admin_pb2.GetCallerRequest())

        await asyncio.gather(*(one(c) for c in csrs[:warmup]))
        cpu0, t0, me0 = server.cpu_seconds(), time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(c) for c in csrs[warmup:]))
        elapsed = time.perf_counter() - t0
        issued = (len(csrs) - warmup) / elapsed
        cpu = (server.cpu_seconds() - cpu0) / elapsed
        client_cpu = (time.process_time() - me0) / elapsed
        with urllib.request.urlopen(f"{server.http}/metrics") as r:
            metrics = r.read().decode()
        count = _metric(metrics, "vnegov_ca_issuance_batch_size_count")
        total = _metric(metrics, "vnegov_ca_issuance_batch_size_sum")
        print(f"  (client process used {client_cpu:.2f} cores; certificates per write "
              f"transaction: {total / max(count, 1):.1f})")
        t0 = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(len(csrs) - warmup)))
        echo = (len(csrs) - warmup) / (time.perf_counter() - t0)
    return issued, cpu, echo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    warmup = min(200, args.count // 10)
    server = BenchServer(args.database_url)
    csrs = make_csrs(args.count + warmup)
    passphrase = (server.data / "secrets" / "pki-passphrase").read_bytes().strip()
    issuer = x509.load_pem_x509_certificate((server.pki / "issuing-ca.pem").read_bytes())
    key = load_private_key((server.pki / "issuing-ca.key.pem").read_bytes(), passphrase)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    raw = raw_rate(make_csrs(1000), issuer, key)
    server.start()
    try:
        issued, cpu, echo = asyncio.run(grpc_rate(server, csrs, args.in_flight, warmup))
    finally:
        server.stop()
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"Issuance, ECDSA P-256 CA key, {db}, {os.cpu_count()} cores, "
          f"{args.count} certificates, {args.in_flight} in flight")
    print(f"  gRPC CreateCertificateRequest     {issued:8.0f}/s   server used {cpu:.2f} cores "
          f"-> {issued / max(cpu, 1e-9):.0f}/s per core")
    print(f"  raw cryptography (one thread)     {raw:8.0f}/s   gRPC / raw = {issued / raw:.2f}")
    print(f"  gRPC GetCaller (cheapest call)    {echo:8.0f}/s   issuance / GetCaller = "
          f"{issued / echo:.2f}")
    print("target: >= 300 issuances/s on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
