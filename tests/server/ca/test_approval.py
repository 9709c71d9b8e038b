"""Without auto-approval, requests wait for the operator: approved (and carried out) or rejected,
with the timestamps the working-day service target is reported from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from server.storage.db import Database
from tests.server.ca.conftest import CaServer, CaServerFactory, database_url, error_reason, issue
from tests.support.pki import TestPki
from tests.support.server import running_server
from vnegov.signing.v1 import certificate_authority_pb2 as pb

R = pb.CertificateRequest


@pytest.fixture
async def manual(pki: TestPki, tmp_path: Path, sqlite_db: Database) -> AsyncIterator[CaServer]:
    port, extra = CaServerFactory(pki, tmp_path, database_url(sqlite_db)).config(
        auto_approve=False, holidays=["2025-09-02"])
    async with running_server(pki, tmp_path, database_url(sqlite_db), http_port=port,
                              extra=extra) as srv:
        yield CaServer(srv, pki, tmp_path)


async def test_operator_approves_or_rejects(manual: CaServer) -> None:
    hcm, portal = manual.stub(manual.pki.hcm), manual.stub()
    submitted, _ = await issue(manual, client=manual.pki.hcm)
    assert submitted.state == R.SUBMITTED and not submitted.result_certificate
    assert not submitted.HasField("approve_time") and submitted.within_service_target
    waiting = await hcm.ListCertificateRequests(pb.ListCertificateRequestsRequest(
        filter='state = "submitted"'))
    assert [r.name for r in waiting.certificate_requests] == [submitted.name]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hcm.ApproveCertificateRequest(pb.ApproveCertificateRequestRequest(
            name=submitted.name))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    approved = await portal.ApproveCertificateRequest(pb.ApproveCertificateRequestRequest(
        name=submitted.name))
    assert approved.state == R.COMPLETED and approved.result_certificate
    assert approved.approve_time.seconds and approved.complete_time.seconds
    seen_by_requester = await hcm.GetCertificateRequest(pb.GetCertificateRequestRequest(
        name=submitted.name))
    assert seen_by_requester.result_certificate == approved.result_certificate

    other, _ = await issue(manual, client=manual.pki.hcm)
    rejected = await portal.RejectCertificateRequest(pb.RejectCertificateRequestRequest(
        name=other.name, message="hồ sơ thiếu quyết định bổ nhiệm"))
    assert rejected.state == R.REJECTED and rejected.reject_time.seconds
    assert rejected.rejection_reason == "REJECTED_BY_OPERATOR"
    assert rejected.rejection_message == "hồ sơ thiếu quyết định bổ nhiệm"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await portal.ApproveCertificateRequest(pb.ApproveCertificateRequestRequest(
            name=other.name))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(err.value) == "INVALID_REQUEST_STATE"

    # Revocation does not wait for an operator.
    revoked = await hcm.RevokeCertificate(pb.RevokeCertificateRequest(
        name=approved.result_certificate, reason=pb.RevocationReason.KEY_COMPROMISE))
    assert revoked.state == R.COMPLETED
