"""Ask the server who it thinks we are, as one of the sample systems of the development PKI.

    .venv/bin/python examples/get_caller.py                      # as the TP. Hồ Chí Minh system
    .venv/bin/python examples/get_caller.py --client national-portal

It connects over mutual TLS with the client certificate that `vnegov init` wrote to
data/pki/clients/, checks health, then calls AdminService.GetCaller.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
from _local import local
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc
from vnegov_client import secure_channel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        help="the server's data directory (default $VNEGOV_DATA_DIR or ./data)")
    parser.add_argument("--target", help="gRPC host:port (default: the data directory's "
                        "configuration)")
    parser.add_argument("--client", default="dvc-hcm",
                        choices=["dvc-hcm", "dvc-hanoi", "national-portal"])
    args = parser.parse_args()
    here = local(args.data_dir)
    args.data_dir, args.target = here.data_dir, args.target or here.target

    pki = args.data_dir / "pki"
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "root-ca.pem").read_bytes(),
        private_key=(pki / "clients" / f"{args.client}.key.pem").read_bytes(),
        certificate_chain=(pki / "clients" / f"{args.client}.pem").read_bytes(),
    )
    # The published service config: retries where safe (vnegov_client).
    with secure_channel(args.target, credentials) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        print("health:", health_pb2.HealthCheckResponse.ServingStatus.Name(health.status))
        caller = admin_pb2_grpc.AdminServiceStub(channel).GetCaller(admin_pb2.GetCallerRequest())
        print("display_name:", caller.display_name)
        print("agency_code:", caller.agency_code)
        print("province_code:", caller.province_code or "(national)")
        print("scopes:", ", ".join(caller.scopes))
        print("provinces:", ", ".join(caller.provinces))
        print("certificate:", caller.certificate_subject)


if __name__ == "__main__":
    main()
