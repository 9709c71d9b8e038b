"""A :class:`signing.sign.remote.CscClient` over gRPC (``SigningService`` CSC methods): lets a
signature creation application hold the document and send only hashes to the server's keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import grpc
from cryptography import x509
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from signing.sign.errors import ApprovalPending, AuthorisationFailed
from signing.sign.remote import ApprovalStart, CredentialInfo, SecondFactor
from vnegov.signing.v1 import documents_pb2 as pb
from vnegov.signing.v1 import documents_pb2_grpc

__all__ = ["GrpcCscClient"]


def _reason(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
    for detail in status.details if status is not None else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


class GrpcCscClient:
    def __init__(self, channel: grpc.Channel, signer_id: str) -> None:
        self._stub = documents_pb2_grpc.SigningServiceStub(channel)
        self._signer_id = signer_id

    def list_credentials(self) -> list[str]:
        response = self._stub.ListCredentials(pb.ListCredentialsRequest(signer_id=self._signer_id))
        return list(response.credential_ids)

    def credential_info(self, credential_id: str) -> CredentialInfo:
        info = self._stub.GetCredentialInfo(pb.GetCredentialInfoRequest(
            credential_id=credential_id, signer_id=self._signer_id))
        return CredentialInfo(
            credential_id=info.credential_id, description=info.description,
            enabled=info.status == "enabled",
            certificates=tuple(x509.load_der_x509_certificate(c) for c in info.certificates),
            key_algorithm=info.key_algorithm, key_length=info.key_length,
            auth_mode=info.auth_mode, scal=info.scal, multisign=info.multisign)

    def authorize(self, credential_id: str, hashes: Sequence[bytes], hash_algorithm: str,
                  factor: SecondFactor) -> str:
        if factor.kind == "totp":
            second = pb.SecondFactor(totp=factor.value)
        elif factor.kind == "approval":
            second = pb.SecondFactor(approval=factor.value)
        else:
            raise AuthorisationFailed(f"a {factor.kind} second factor cannot be sent")
        try:
            response = self._stub.AuthorizeCredential(pb.AuthorizeCredentialRequest(
                credential_id=credential_id, signer_id=self._signer_id, hashes=list(hashes),
                hash_algorithm=hash_algorithm, second_factor=second))
        except grpc.RpcError as err:
            if _reason(err) == ApprovalPending.reason:
                raise ApprovalPending("the official has not approved yet") from None
            raise
        return str(response.sad)

    def start_approval(self, credential_id: str, hashes: Sequence[bytes],
                       hash_algorithm: str) -> ApprovalStart:
        response = self._stub.StartCredentialApproval(pb.StartCredentialApprovalRequest(
            credential_id=credential_id, signer_id=self._signer_id, hashes=list(hashes),
            hash_algorithm=hash_algorithm))
        return ApprovalStart(approval_id=response.approval_id,
                             binding_message=response.binding_message,
                             approval_code=response.approval_code,
                             expires_at=response.expire_time.ToDatetime(dt.UTC),
                             interval=response.interval)

    def sign_hash(self, credential_id: str, sad: str, hashes: Sequence[bytes],
                  hash_algorithm: str) -> list[bytes]:
        response = self._stub.SignHash(pb.SignHashRequest(
            credential_id=credential_id, signer_id=self._signer_id, sad=sad, hashes=list(hashes),
            hash_algorithm=hash_algorithm))
        return list(response.signatures)
