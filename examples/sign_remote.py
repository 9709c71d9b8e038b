"""Remote signing with CSC API v2 semantics: the document stays here, only its hash goes to the
server, where the official's key lives in the PKCS#11 token; the official authorises exactly that
hash, by approving it in the citizen app (level-2 identity) or with a TOTP code.

    # once, on the server: a token key and certificate for the official, linked to the
    # official's level-2 identity account (whose app approves); or a TOTP secret instead
    vnegov documents credential-add --credential-id an-2025 --owner 079084000123 \\
        --agency-code 000.00.00.H29 --key-label an-2025 --cert-file an-chain.pem
    vnegov documents credential-link --credential-id an-2025
    vnegov documents totp --owner 079084000123          # scan the URI into an authenticator

    # then, as the agency's system (mutual TLS) on behalf of the official:
    .venv/bin/python examples/sign_remote.py decision.pdf --signer-id 079084000123 --approve \\
        [--credential-id an-2025] [--tsa http://127.0.0.1:8080/tsa]
    .venv/bin/python examples/sign_remote.py decision.pdf --signer-id 079084000123 \\
        [--code 123456]                                 # TOTP instead of the app
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python")]

import grpc  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from server.documents.csc_client import GrpcCscClient  # noqa: E402
from server.documents.transport import HttpTimeStampTransport  # noqa: E402
from signing.errors import SigningError  # noqa: E402
from signing.sign import PadesLevel, PadesOptions, RemoteSigner, SecondFactor, sign_pdf  # noqa: E402
from signing.sign.remote import ApprovalStart  # noqa: E402
from vnegov_client import secure_channel  # noqa: E402


def refused(err: grpc.RpcError) -> int:
    """Say why the server refused: status code, message, and the ErrorInfo reason."""
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = err.details() if isinstance(err, grpc.Call) else str(err)
    print(f"refused: {code.name}: {message}", file=sys.stderr)
    status = rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
    for detail in status.details if status is not None else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            print(f"reason: {info.reason}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf", type=Path)
    parser.add_argument("--signer-id", required=True, help="the official's personal ID number")
    parser.add_argument("--credential-id")
    factor = parser.add_mutually_exclusive_group()
    factor.add_argument("--approve", action="store_true",
                        help="the official approves in the citizen app (shows the code to compare)")
    factor.add_argument("--code", help="the official's current TOTP code (asked if missing)")
    parser.add_argument("--tsa")
    parser.add_argument("--data-dir", default="data", type=Path)
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--client", default="dvc-hcm")
    args = parser.parse_args()

    pki = args.data_dir / "pki"
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "root-ca.pem").read_bytes(),
        private_key=(pki / "clients" / f"{args.client}.key.pem").read_bytes(),
        certificate_chain=(pki / "clients" / f"{args.client}.pem").read_bytes())
    # The published service config: retries where safe (vnegov_client).
    with secure_channel(args.target, credentials) as channel:
        try:
            return sign(args, GrpcCscClient(channel, args.signer_id))
        except grpc.RpcError as err:
            return refused(err)
        except SigningError as err:
            print(f"refused: {err.message} [{err.reason}]", file=sys.stderr)
            return 1


def sign(args: argparse.Namespace, client: GrpcCscClient) -> int:
    """Sign ``args.pdf`` here with the official's remote key: only the hash travels."""
    credential_id = args.credential_id or client.list_credentials()[0]
    info = client.credential_info(credential_id)
    print(f"credential {credential_id}: {info.certificates[0].subject.rfc4514_string()} "
          f"({info.key_algorithm}-{info.key_length}, SCAL{info.scal})")

    def second_factor() -> SecondFactor:
        return SecondFactor("totp", args.code or input("TOTP code: ").strip())

    def show(start: ApprovalStart) -> None:
        # The app shows the same code: the official approves only if the two agree.
        print(f"approve in the app: {start.binding_message} (until "
              f"{start.expires_at.astimezone().strftime('%H:%M:%S')})", flush=True)

    if args.approve:
        signer = RemoteSigner.with_approval(client, credential_id, on_start=show)
    else:
        signer = RemoteSigner(client, credential_id, second_factor)
    out = args.pdf.with_name(args.pdf.stem + "-remote-signed.pdf")
    tsa = HttpTimeStampTransport(args.tsa) if args.tsa else None
    part = out.with_name(out.name + ".part")  # renamed once complete: a refused signature
    try:  # leaves an earlier output as it was
        with args.pdf.open("rb") as src, part.open("w+b") as dst:
            result = sign_pdf(src, dst, signer, at=dt.datetime.now(dt.UTC),
                              options=PadesOptions(
                                  level=PadesLevel.B_T if tsa else PadesLevel.B_B),
                              timestamps=tsa)
        part.replace(out)
    finally:
        part.unlink(missing_ok=True)
    print(f"signed {out} ({result.level}, field {result.field_name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
