"""IdentityService over gRPC, and client-credentials access tokens as gRPC bearer credentials."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import update

from server.storage.identity import TokenRow
from tests.server.identity.harness import Browser, IdentityServer, callback_params
from tests.server.identity.raw import RawClient
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import Issued, TestPki, pem
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc
from vnegov.identity.v1 import identity_pb2 as pb
from vnegov.identity.v1 import identity_pb2_grpc
from vnid.oidc.records import handle_hash

CALLERS = [
    {"agency_code": "000.00.00.H29", "name": "dvc-hcm",
     "scopes": ["identity.read", "identity.manage"], "provinces": ["79"]},
    {"agency_code": "000.00.00.H26", "scopes": ["identity.read", "identity.manage"],
     "provinces": ["01"]},
    {"agency_code": "000.00.00.G22", "scopes": ["identity.read", "identity.manage", "audit.read"],
     "provinces": ["*"]},
]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                               marks=pytest.mark.postgres)])
def idp(request: pytest.FixtureRequest, pki: TestPki, postgres_templates: PostgresTemplates,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityServer]:
    directory = tmp_path_factory.mktemp("idp-grpc")
    with fresh_database(request.param, postgres_templates, directory) as db:
        with IdentityServer(pki, directory, db.url.render_as_string(False),
                            callers=CALLERS) as server:
            server.db = db  # type: ignore[attr-defined]
            yield server


def channel(idp: IdentityServer, pki: TestPki, who: Issued | None) -> grpc.Channel:
    root = pem(pki.root.cert)
    creds = grpc.ssl_channel_credentials(root) if who is None else \
        grpc.ssl_channel_credentials(root, who.key_pem, who.chain_pem)
    return grpc.secure_channel(idp.grpc_target, creds)


def reason(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    return str(info.reason)


@pytest.fixture(scope="module")
def service(idp: IdentityServer) -> Iterator[RawClient]:
    client = RawClient(idp, "svc-hcm")
    yield client
    client.close()


def service_token(service: RawClient, *, dpop: bool = False) -> str:
    r = service.post("/token", {"grant_type": "client_credentials", "scope": "identity.read",
                                **service.auth()}, dpop=True if dpop else None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == ("DPoP" if dpop else "Bearer")
    return str(body["access_token"])


# ------------------------------------------------------------------------- bearer tokens


def test_client_credentials_token_authorises_a_grpc_call(idp: IdentityServer, pki: TestPki,
                                                         service: RawClient) -> None:
    token = service_token(service)
    with channel(idp, pki, None) as ch:
        caller = admin_pb2_grpc.AdminServiceStub(ch).GetCaller(
            admin_pb2.GetCallerRequest(), metadata=[("authorization", f"Bearer {token}")])
        assert caller.authentication_method == admin_pb2.Caller.BEARER_TOKEN
        assert (caller.agency_code, caller.province_code) == ("000.00.00.H29", "79")
        assert list(caller.scopes) == ["identity.read"] and list(caller.provinces) == ["79"]
        info = identity_pb2_grpc.IdentityServiceStub(ch).IntrospectToken(
            pb.IntrospectTokenRequest(token=token), metadata=[("authorization", f"Bearer {token}")])
        assert info.active and info.client_id == "svc-hcm" and info.token_type == "Bearer"


def _refused(idp: IdentityServer, pki: TestPki, token: str) -> str:
    with channel(idp, pki, None) as ch:
        with pytest.raises(grpc.RpcError) as err:
            admin_pb2_grpc.AdminServiceStub(ch).GetCaller(
                admin_pb2.GetCallerRequest(), metadata=[("authorization", f"Bearer {token}")])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return reason(err.value)


def test_expired_token_is_unauthenticated(idp: IdentityServer, pki: TestPki,
                                          service: RawClient) -> None:
    token = service_token(service)
    with idp.db.write() as s:  # type: ignore[attr-defined]
        s.execute(update(TokenRow).where(TokenRow.token_hash == handle_hash(token)).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert _refused(idp, pki, token) == "UNAUTHENTICATED"


def test_forged_token_is_unauthenticated(idp: IdentityServer, pki: TestPki) -> None:
    _refused(idp, pki, "vnat_" + "A" * 43)


def test_revoked_token_is_unauthenticated(idp: IdentityServer, pki: TestPki,
                                          service: RawClient) -> None:
    token = service_token(service)
    with channel(idp, pki, None) as ch:
        admin_pb2_grpc.AdminServiceStub(ch).GetCaller(
            admin_pb2.GetCallerRequest(), metadata=[("authorization", f"Bearer {token}")])
    r = service.post("/revoke", {"token": token, **service.auth()}, dpop=None)
    assert r.status_code == 200
    _refused(idp, pki, token)


def test_dpop_bound_and_citizen_tokens_are_not_grpc_credentials(
        idp: IdentityServer, pki: TestPki, service: RawClient) -> None:
    _refused(idp, pki, service_token(service, dpop=True))
    citizen = idp.citizen("079084000701", level2=False, totp=False)
    hcm = RawClient(idp, "dvc-hcm")
    browser = Browser(idp.issuer)
    try:
        r = hcm.par()
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        tokens = hcm.redeem(callback_params(browser.login(citizen))["code"]).json()
    finally:
        browser.close()
        hcm.close()
    _refused(idp, pki, tokens["access_token"])


# ------------------------------------------------------------------------- accounts


def test_officials_manage_accounts_in_their_province(idp: IdentityServer, pki: TestPki) -> None:
    with channel(idp, pki, pki.hcm) as hcm_ch, channel(idp, pki, pki.hanoi) as hanoi_ch:
        hcm = identity_pb2_grpc.IdentityServiceStub(hcm_ch)
        hanoi = identity_pb2_grpc.IdentityServiceStub(hanoi_ch)
        request = pb.CreateAccountRequest(
            request_id="create-0001-abcdef", kind=pb.CITIZEN, identifier="079304000111",
            full_name="Phạm Thị Dung", date_of_birth="2004-09-10", sex=pb.FEMALE,
            province_code="79")
        account = hcm.CreateAccount(request)
        assert account.level == pb.LEVEL_1 and account.status == pb.ACTIVE
        assert hcm.CreateAccount(request) == account  # idempotent retry
        with pytest.raises(grpc.RpcError) as err:
            hcm.CreateAccount(pb.CreateAccountRequest(
                request_id="create-0001-abcdef", kind=pb.CITIZEN, identifier="079304000112",
                full_name="X", date_of_birth="2004-09-10", sex=pb.FEMALE, province_code="79"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # Another province: denied, and the same answer as for an account that does not exist.
        with pytest.raises(grpc.RpcError) as err:
            hanoi.GetAccount(pb.GetAccountRequest(name=account.name))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as missing:
            hanoi.GetAccount(pb.GetAccountRequest(name="accounts/00000000-no-such"))
        assert missing.value.code() == grpc.StatusCode.PERMISSION_DENIED
        proofed = hcm.RecordProofing(pb.RecordProofingRequest(
            request_id="proof-0001-abcdef", name=account.name, proofing=pb.ProofingRecord(
                evidence_type="chip_id_card", method="in_person_chip_and_face",
                place="Công an phường Sài Gòn", officer="CA-7", evidence_valid_until="2029-09-09")))
        assert proofed.level == pb.LEVEL_2 and proofed.card_valid_until == "2029-09-09"
        assert proofed.proofing.officer == "CA-7"
        locked = hcm.LockAccount(pb.LockAccountRequest(name=account.name, reason="mất thẻ"))
        assert locked.status == pb.LOCKED and locked.locked_reason == "mất thẻ"
        assert hcm.UnlockAccount(pb.UnlockAccountRequest(name=account.name)).status == pb.ACTIVE
        page = hcm.ListAccounts(pb.ListAccountsRequest(filter="level = 2"))
        assert account.name in [a.name for a in page.accounts]
        assert all(a.province_code == "79" for a in page.accounts)
        with pytest.raises(grpc.RpcError) as err:
            hanoi.ListAccounts(pb.ListAccountsRequest(filter='province_code = "79"'))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_invalid_personal_id_is_invalid_argument(idp: IdentityServer, pki: TestPki) -> None:
    with channel(idp, pki, pki.portal) as ch:
        with pytest.raises(grpc.RpcError) as err:
            identity_pb2_grpc.IdentityServiceStub(ch).CreateAccount(pb.CreateAccountRequest(
                kind=pb.CITIZEN, identifier="079184000111", full_name="Sai Giới Tính",
                date_of_birth="1984-01-01", sex=pb.MALE))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason(err.value) == "INVALID_PERSONAL_ID"


def test_consented_profile_and_withdrawal(idp: IdentityServer, pki: TestPki) -> None:
    citizen = idp.citizen("079084000702", totp=False, level2=False)
    hcm = RawClient(idp, "dvc-hcm")
    browser = Browser(idp.issuer)
    try:
        r = hcm.par()
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        tokens = hcm.redeem(callback_params(browser.login(citizen))["code"]).json()
        info = hcm.userinfo(tokens["access_token"]).json()
    finally:
        browser.close()
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        profile = stub.GetCitizenProfile(pb.GetCitizenProfileRequest(
            client_id="dvc-hcm", subject=info["sub"]))
        assert profile.claims["SoDinhDanh"] == "079084000702"
        assert "national_id" in profile.consented_scopes
        with channel(idp, pki, pki.hanoi) as other:
            with pytest.raises(grpc.RpcError) as err:
                identity_pb2_grpc.IdentityServiceStub(other).GetCitizenProfile(
                    pb.GetCitizenProfileRequest(client_id="dvc-hcm", subject=info["sub"]))
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        stub.WithdrawConsent(pb.WithdrawConsentRequest(
            name=f"accounts/{citizen.account_id}/consents/dvc-hcm"))
        with pytest.raises(grpc.RpcError) as err:
            stub.GetCitizenProfile(pb.GetCitizenProfileRequest(client_id="dvc-hcm",
                                                               subject=info["sub"]))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert hcm.userinfo(tokens["access_token"]).status_code == 401  # tokens revoked with it
    hcm.close()


def test_devices_and_card_renewal_over_grpc(idp: IdentityServer, pki: TestPki) -> None:
    from tests.server.identity.harness import CitizenApp

    citizen = idp.citizen("079084000703", totp=False)
    name = f"accounts/{citizen.account_id}"
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        enrolment = stub.CreateDeviceEnrolment(pb.CreateDeviceEnrolmentRequest(parent=name))
        phone = CitizenApp(idp.issuer)
        with httpx.Client() as http:
            phone.enrol(http, enrolment.enrolment_code)
        (device,) = stub.ListDevices(pb.ListDevicesRequest(parent=name)).devices
        assert device.active and device.name == f"{name}/devices/{phone.device_id}"
        revoked = stub.RevokeDevice(pb.RevokeDeviceRequest(name=device.name))
        assert not revoked.active and revoked.HasField("revoke_time")
        renewed = stub.RenewIdentityCard(pb.RenewIdentityCardRequest(
            name=name, valid_until="2044-05-16"))
        assert renewed.card_valid_until == "2044-05-16" and renewed.level == pb.LEVEL_2
        with pytest.raises(grpc.RpcError) as err:
            stub.ListDevices(pb.ListDevicesRequest(parent="nonsense"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_retries_of_one_request_id_create_one_account(idp: IdentityServer,
                                                                  pki: TestPki) -> None:
    """The claim, the work and the stored answer commit together: concurrent copies of a request
    wait for the first and get its answer; none of them runs the work again."""
    from concurrent.futures import ThreadPoolExecutor

    request = pb.CreateAccountRequest(
        request_id="create-concurrent-01", kind=pb.CITIZEN, identifier="079204000131",
        full_name="Lê Văn Tám", date_of_birth="2004-01-02", sex=pb.MALE, province_code="79")
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: stub.CreateAccount(request), range(8)))
    assert len({a.name for a in answers}) == 1
    assert all(a == answers[0] for a in answers)


def test_a_failed_request_leaves_its_request_id_free(idp: IdentityServer, pki: TestPki) -> None:
    """A request that fails inside its transaction leaves nothing behind: retrying the same
    request_id runs it again instead of reporting it as still running."""
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        lock = pb.LockAccountRequest(request_id="lock-missing-000001",
                                     name="accounts/00000000-no-such", reason="test")
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as err:
                stub.LockAccount(lock)
            assert err.value.code() in {grpc.StatusCode.NOT_FOUND,
                                        grpc.StatusCode.PERMISSION_DENIED}
