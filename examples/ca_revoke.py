"""Revoke a certificate, then see the revocation in OCSP and in the CRL served over HTTP.

    .venv/bin/python examples/ca_revoke.py certificates/7                  # keyCompromise
    .venv/bin/python examples/ca_revoke.py certificates/7 --reason certificateHold
    .venv/bin/python examples/ca_revoke.py certificates/7 --release        # end a hold

(`examples/ca_issue.py` prints the name of the certificate it issued.) The request is made by the
sample TP. Hồ Chí Minh system, which manages the certificates issued for its agencies.
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
from cryptography.x509 import ocsp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from vnegov.signing.v1 import certificate_authority_pb2 as pb
from vnegov.signing.v1 import certificate_authority_pb2_grpc as pb_grpc
from vnegov_client import secure_channel

REASONS = {"keyCompromise": pb.RevocationReason.KEY_COMPROMISE,
           "affiliationChanged": pb.RevocationReason.AFFILIATION_CHANGED,
           "superseded": pb.RevocationReason.SUPERSEDED,
           "cessationOfOperation": pb.RevocationReason.CESSATION_OF_OPERATION,
           "certificateHold": pb.RevocationReason.CERTIFICATE_HOLD,
           "privilegeWithdrawn": pb.RevocationReason.PRIVILEGE_WITHDRAWN,
           "unspecified": pb.RevocationReason.UNSPECIFIED}


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
    parser.add_argument("certificate", help="certificates/{id}")
    parser.add_argument("--reason", default="keyCompromise", choices=sorted(REASONS))
    parser.add_argument("--release", action="store_true", help="end a certificateHold")
    parser.add_argument("--data-dir", type=Path,
                        help="the server's data directory (default $VNEGOV_DATA_DIR or ./data)")
    parser.add_argument("--target", help="gRPC host:port (default: the data directory's "
                        "configuration)")
    parser.add_argument("--http", help="the server's public URL (default: the data directory's "
                        "configuration)")
    parser.add_argument("--client", default="dvc-hcm")
    args = parser.parse_args()
    here = local(args.data_dir)
    args.data_dir, args.target = here.data_dir, args.target or here.target
    args.http = args.http or here.http

    pki = args.data_dir / "pki"
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "root-ca.pem").read_bytes(),
        private_key=(pki / "clients" / f"{args.client}.key.pem").read_bytes(),
        certificate_chain=(pki / "clients" / f"{args.client}.pem").read_bytes())
    # The published service config: retries where safe (vnegov_client).
    with secure_channel(args.target, credentials) as channel:
        ca = pb_grpc.CertificateAuthorityServiceStub(channel)
        try:
            if args.release:
                request = ca.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(
                    request_id=uuid.uuid4().hex, name=args.certificate))
            else:
                request = ca.RevokeCertificate(pb.RevokeCertificateRequest(
                    request_id=uuid.uuid4().hex, name=args.certificate,
                    reason=REASONS[args.reason]))
            print("request:", request.name, pb.CertificateRequest.State.Name(request.state),
                  request.rejection_reason)
            info = ca.GetCertificate(pb.GetCertificateRequest(name=args.certificate))
        except grpc.RpcError as err:
            return refused(err)
    print("status:", pb.Certificate.Status.Name(info.status))

    cert = x509.load_der_x509_certificate(info.der)
    issuer = x509.load_pem_x509_certificate((pki / "issuing-ca.pem").read_bytes())
    query = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    http = urllib.request.Request(f"{args.http}/pki/ocsp", data=query.public_bytes(
        serialization.Encoding.DER), headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(http) as response:
        answer = ocsp.load_der_ocsp_response(response.read())
    line = answer.certificate_status.name.lower()
    if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        line += f" since {answer.revocation_time_utc} ({answer.revocation_reason})"
    print("OCSP:", line)

    with urllib.request.urlopen(f"{args.http}/pki/crl/issuing-ca.crl") as response:
        crl = x509.load_der_x509_crl(response.read())
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    listed = crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    print(f"CRL #{number}:", "lists it" if listed else "does not list it")
    # A request the CA took but could not carry out (NOT_ON_HOLD, ALREADY_REVOKED, ...).
    return 1 if request.state == pb.CertificateRequest.REJECTED else 0


if __name__ == "__main__":
    sys.exit(main())
