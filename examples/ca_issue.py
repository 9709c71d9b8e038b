"""Issue a certificate for an official through the CA's gRPC API, then ask OCSP about it.

    scripts/dev.sh serve                                  # in another terminal
    .venv/bin/python examples/ca_issue.py                 # as the TP. Hồ Chí Minh system
    .venv/bin/python examples/ca_issue.py --out an.pem --key-out an.key.pem

The key pair is generated here and never leaves this process: the CA gets a PKCS#10 request
(proof of possession) and returns the certificate. The request is made by the sample TP. Hồ Chí
Minh system (agency 000.00.00.H29), the managing body of the official's unit.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
import uuid
from pathlib import Path

import grpc
from _local import local
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from vnegov.signing.v1 import certificate_authority_pb2 as pb
from vnegov.signing.v1 import certificate_authority_pb2_grpc as pb_grpc
from vnegov_client import secure_channel


def refused(err: grpc.RpcError) -> int:
    """Say why the server refused the call: the gRPC status code, its message, and the machine-
    readable reason the server puts in a google.rpc.ErrorInfo (NOT_MANAGING_BODY,
    WEAK_OR_UNSUPPORTED_KEY, ...), which is what a program should act on."""
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = err.details() if isinstance(err, grpc.Call) else str(err)
    print(f"refused: {code.name}: {message}", file=sys.stderr)
    status = rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
    for detail in status.details if status is not None else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            print(f"reason: {info.reason}", *(f"{k}={v}" for k, v in sorted(info.metadata.items())),
                  file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        help="the server's data directory (default $VNEGOV_DATA_DIR or ./data)")
    parser.add_argument("--target", help="gRPC host:port (default: the data directory's "
                        "configuration)")
    parser.add_argument("--http", help="the server's public URL (default: the data directory's "
                        "configuration)")
    parser.add_argument("--client", default="dvc-hcm")
    parser.add_argument("--out", type=Path, help="write the certificate (PEM) here")
    parser.add_argument("--key-out", type=Path, help="write the private key (PEM) here")
    args = parser.parse_args()
    here = local(args.data_dir)
    args.data_dir, args.target = here.data_dir, args.target or here.target
    args.http = args.http or here.http

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Nguyễn Văn An")]))
           .sign(key, hashes.SHA256()))
    subject = pb.CertificateSubject(
        full_name="Nguyễn Văn An", title="Chuyên viên", unit="Phòng Văn hóa - Xã hội",
        parent_body="UBND Phường Sài Gòn", agency_code="000.40.01.H29", province_code="79",
        personal_id="079084000999", email="nvan@hochiminhcity.gov.vn")

    pki = args.data_dir / "pki"
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "root-ca.pem").read_bytes(),
        private_key=(pki / "clients" / f"{args.client}.key.pem").read_bytes(),
        certificate_chain=(pki / "clients" / f"{args.client}.pem").read_bytes())
    # The published service config: retries where safe (vnegov_client).
    with secure_channel(args.target, credentials) as channel:
        ca = pb_grpc.CertificateAuthorityServiceStub(channel)
        try:
            # A fresh request_id makes a retried call (service config) return the first result.
            request = ca.CreateCertificateRequest(pb.CreateCertificateRequestRequest(
                request_id=uuid.uuid4().hex, profile="individual", subject=subject,
                csr=csr.public_bytes(serialization.Encoding.PEM)))
            print("request:", request.name, pb.CertificateRequest.State.Name(request.state),
                  f"({request.working_days:.3f} working days)")
            if request.state == pb.CertificateRequest.REJECTED:
                print("not issued:", request.rejection_reason, request.rejection_message)
                return 1
            if request.state != pb.CertificateRequest.COMPLETED:
                print("waiting for the CA operator's approval:", request.name)
                return 0
            issued = ca.GetCertificate(pb.GetCertificateRequest(
                name=request.result_certificate))
        except grpc.RpcError as err:
            return refused(err)
    cert = x509.load_der_x509_certificate(issued.der)
    print("certificate:", issued.name, "serial", issued.serial_number)
    print("subject:", issued.subject_dn)
    print("valid until:", cert.not_valid_after_utc.isoformat())

    issuer = x509.load_pem_x509_certificate((pki / "issuing-ca.pem").read_bytes())
    query = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    http = urllib.request.Request(f"{args.http}/pki/ocsp", data=query.public_bytes(
        serialization.Encoding.DER), headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(http) as response:
        answer = ocsp.load_der_ocsp_response(response.read())
    print("OCSP:", answer.certificate_status.name.lower())

    if args.out:
        args.out.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + issued.chain_pem.encode())
        print("wrote", args.out)
    if args.key_out:
        args.key_out.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        args.key_out.chmod(0o600)
        print("wrote", args.key_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
