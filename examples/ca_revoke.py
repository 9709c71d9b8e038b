"""Revoke a certificate, then see the revocation in OCSP and in the CRL served over HTTP.

    .venv/bin/python examples/ca_revoke.py certificates/7                  # keyCompromise
    .venv/bin/python examples/ca_revoke.py certificates/7 --reason certificateHold
    .venv/bin/python examples/ca_revoke.py certificates/7 --release        # end a hold

(`examples/ca_issue.py` prints the name of the certificate it issued.) The request is made by the
sample TP. Hồ Chí Minh system, which manages the certificates issued for its agencies.
"""

from __future__ import annotations

import argparse
import urllib.request
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from vnegov.signing.v1 import certificate_authority_pb2 as pb
from vnegov.signing.v1 import certificate_authority_pb2_grpc as pb_grpc

REASONS = {"keyCompromise": pb.RevocationReason.KEY_COMPROMISE,
           "affiliationChanged": pb.RevocationReason.AFFILIATION_CHANGED,
           "superseded": pb.RevocationReason.SUPERSEDED,
           "cessationOfOperation": pb.RevocationReason.CESSATION_OF_OPERATION,
           "certificateHold": pb.RevocationReason.CERTIFICATE_HOLD,
           "privilegeWithdrawn": pb.RevocationReason.PRIVILEGE_WITHDRAWN,
           "unspecified": pb.RevocationReason.UNSPECIFIED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("certificate", help="certificates/{id}")
    parser.add_argument("--reason", default="keyCompromise", choices=sorted(REASONS))
    parser.add_argument("--release", action="store_true", help="end a certificateHold")
    parser.add_argument("--data-dir", default="data", type=Path)
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--http", default="http://127.0.0.1:8080")
    parser.add_argument("--client", default="dvc-hcm")
    args = parser.parse_args()

    pki = args.data_dir / "pki"
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "root-ca.pem").read_bytes(),
        private_key=(pki / "clients" / f"{args.client}.key.pem").read_bytes(),
        certificate_chain=(pki / "clients" / f"{args.client}.pem").read_bytes())
    with grpc.secure_channel(args.target, credentials) as channel:
        ca = pb_grpc.CertificateAuthorityServiceStub(channel)
        if args.release:
            request = ca.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(
                name=args.certificate))
        else:
            request = ca.RevokeCertificate(pb.RevokeCertificateRequest(
                name=args.certificate, reason=REASONS[args.reason]))
        print("request:", request.name, pb.CertificateRequest.State.Name(request.state),
              request.rejection_reason)
        info = ca.GetCertificate(pb.GetCertificateRequest(name=args.certificate))
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


if __name__ == "__main__":
    main()
