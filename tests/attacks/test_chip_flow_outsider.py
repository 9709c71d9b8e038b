"""An outsider's attacks on the chip-proofing flow over gRPC, on SQLite and PostgreSQL: data copied
from a chip must not become "verified" claims; another province's caller cannot use a challenge;
two submissions of one challenge at once give one winner."""

from __future__ import annotations

import datetime as dt
import json
import threading

import grpc
import pytest

from tests.server.identity.harness import Browser, IdentityServer, callback_params
from tests.server.identity.raw import RawClient
from tests.server.identity.test_chip_proofing import (  # noqa: F401 - fixtures
    citizen_with_phone,
    csca,
    ds,
    idp,
    submission,
)
from tests.server.identity.test_grpc import channel, reason
from tests.support import icao
from tests.support.pki import TestPki
from vnegov.identity.v1 import identity_pb2 as pb
from vnegov.identity.v1 import identity_pb2_grpc
from vnid.icao9303 import CscaTrustList
from vnid.proofing import ChipProofing


def test_weak_chip_evidence_is_not_released_as_verified_claims(
        idp: IdentityServer, pki: TestPki, ds: icao.Authority) -> None:  # noqa: F811
    """A copy of a chip's data (no active authentication: anyone who once read the card, or a
    chip without DG15 read by someone else) is recorded as weak evidence and leaves the account at
    level 1. Relying parties must not be told its claims were verified from the ID card."""
    citizen, phone, person = citizen_with_phone(idp, pki)
    name = f"accounts/{citizen.account_id}"
    copy = icao.make_chip(ds, person, aa=None)
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        challenge = stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        result = stub.SubmitChipProofing(pb.SubmitChipProofingRequest(
            statement=submission(phone, copy, challenge, answer=b"")))
        assert result.evidence.strength == "weak" and result.account.level == pb.LEVEL_1
    hcm = RawClient(idp, "dvc-hcm")
    browser = Browser(idp.issuer)
    try:
        r = hcm.par()
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        tokens = hcm.redeem(callback_params(browser.login(citizen))["code"]).json()
        info = hcm.userinfo(tokens["access_token"]).json()
    finally:
        browser.close()
        hcm.close()
    assert "verified_claims" not in info
    with channel(idp, pki, pki.hcm) as ch:
        profile = identity_pb2_grpc.IdentityServiceStub(ch).GetCitizenProfile(
            pb.GetCitizenProfileRequest(client_id="dvc-hcm", subject=info["sub"]))
    assert "verified_claims" not in profile.claims


def test_another_province_cannot_challenge_or_submit_for_an_account(
        idp: IdentityServer, pki: TestPki, ds: icao.Authority) -> None:  # noqa: F811
    citizen, phone, person = citizen_with_phone(idp, pki)
    name = f"accounts/{citizen.account_id}"
    chip = icao.make_chip(ds, person)
    with channel(idp, pki, pki.hcm) as ch:
        challenge = identity_pb2_grpc.IdentityServiceStub(ch).CreateChipChallenge(
            pb.CreateChipChallengeRequest(name=name))
    statement = submission(phone, chip, challenge)
    with channel(idp, pki, pki.hanoi) as other:
        stub = identity_pb2_grpc.IdentityServiceStub(other)
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        assert err.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitChipProofing(pb.SubmitChipProofingRequest(statement=statement))
        assert err.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
        with pytest.raises(grpc.RpcError) as err:
            stub.ListChipEvidence(pb.ListChipEvidenceRequest(name=name))
        assert err.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
    # The challenge was not spent by the other province's attempt: its owner still succeeds.
    with channel(idp, pki, pki.hcm) as ch:
        result = identity_pb2_grpc.IdentityServiceStub(ch).SubmitChipProofing(
            pb.SubmitChipProofingRequest(statement=statement))
    assert result.account.level == pb.LEVEL_2


def test_two_submissions_of_one_challenge_at_once_have_one_winner(
        idp: IdentityServer, pki: TestPki, ds: icao.Authority) -> None:  # noqa: F811
    citizen, phone, person = citizen_with_phone(idp, pki)
    name = f"accounts/{citizen.account_id}"
    chip = icao.make_chip(ds, person)
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        challenge = stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        statement = submission(phone, chip, challenge)
        barrier = threading.Barrier(4)
        outcomes: list[str] = []

        def go() -> None:
            barrier.wait()
            try:
                stub.SubmitChipProofing(pb.SubmitChipProofingRequest(statement=statement))
                outcomes.append("ok")
            except grpc.RpcError as exc:
                outcomes.append(reason(exc))

        threads = [threading.Thread(target=go) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["CHIP_CHALLENGE_USED"] * 3 + ["ok"]
        evidence = stub.ListChipEvidence(pb.ListChipEvidenceRequest(name=name)).evidence
        assert len(evidence) == 1
        assert json.dumps(dict(evidence[0].data_group_hashes))


def test_a_revoked_document_signer_that_has_since_expired_still_lowers_the_account(
        idp: IdentityServer, pki: TestPki, csca: icao.Authority) -> None:  # noqa: F811
    """A document signer's key leaks; forged chips raise accounts to level 2; by the time the
    CSCA revokes it and the evidence is re-checked, its certificate has also expired. Expiry must
    not hide the revocation: the evidence is re-checked as of the time the chip was read."""
    short = icao.make_ds(csca, "DS soon expired", not_after=icao.NOW + dt.timedelta(days=2))
    citizen, phone, person = citizen_with_phone(idp, pki)
    name = f"accounts/{citizen.account_id}"
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        challenge = stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        stub.SubmitChipProofing(pb.SubmitChipProofingRequest(
            statement=submission(phone, icao.make_chip(short, person), challenge)))
        assert stub.GetAccount(pb.GetAccountRequest(name=name)).level == pb.LEVEL_2
    assert idp.app is not None
    service: ChipProofing = idp.app.context.registry["identity_chip"]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=20)
    trust = CscaTrustList.from_pem(csca.pem, [icao.make_crl(csca, [(short.cert, icao.NOW)])])
    (outcome,) = service.reverify(citizen.account_id, later, trust=trust)
    assert outcome.reason == "CHIP_DS_REVOKED" and outcome.level_lowered
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        assert stub.GetAccount(pb.GetAccountRequest(name=name)).level == pb.LEVEL_1


@pytest.mark.parametrize("payload", [b"[" * 100000, b'{"challenge":' * 50000])
def test_a_deeply_nested_submission_is_a_clear_error(idp: IdentityServer, pki: TestPki,  # noqa: F811
                                                     payload: bytes) -> None:
    """The submission's payload is read (to find the challenge) before its signature is checked:
    JSON nested deeper than the parser's recursion limit must be refused, not crash the call."""
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(b'{"alg":"ES256"}')
    statement = f"{header}.{b64(payload)}.{b64(b'x' * 64)}"
    with channel(idp, pki, pki.hcm) as ch:
        with pytest.raises(grpc.RpcError) as err:
            identity_pb2_grpc.IdentityServiceStub(ch).SubmitChipProofing(
                pb.SubmitChipProofingRequest(statement=statement))
    assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.FAILED_PRECONDITION), err.value.details()
    assert "Traceback" not in (err.value.details() or "")


def test_a_deeply_nested_header_for_a_real_challenge_is_a_clear_error(
        idp: IdentityServer, pki: TestPki) -> None:  # noqa: F811
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    citizen, _phone, _person = citizen_with_phone(idp, pki)
    name = f"accounts/{citizen.account_id}"
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        challenge = stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        header = b64(b'{"alg":"ES256","x":' + b"[" * 100000 + b"]" * 100000 + b"}")
        payload = b64(json.dumps({"challenge": challenge.challenge_id}).encode())
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitChipProofing(pb.SubmitChipProofingRequest(
                statement=f"{header}.{payload}.{b64(b'x' * 64)}"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert reason(err.value) == "DEVICE_SIGNATURE_INVALID"


def test_an_account_changed_while_its_chip_is_checked_is_checked_again(
        idp: IdentityServer, pki: TestPki, ds: icao.Authority,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An official changes the account's personal ID number while the chip submitted for it is
    being verified: the evidence must not be attached to the changed account."""
    from sqlalchemy import update

    import vnid.proofing.chip as chip_module
    from server.storage.identity import AccountRow

    citizen, phone, person = citizen_with_phone(idp, pki)
    name = f"accounts/{citizen.account_id}"
    real_verify = chip_module.verify_chip

    def verify_then_change(**kwargs: object) -> object:
        evidence = real_verify(**kwargs)  # type: ignore[arg-type]
        with idp.db.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(update(AccountRow).where(AccountRow.account_id == citizen.account_id)
                         .values(identifier="079084888888"))
        return evidence

    monkeypatch.setattr(chip_module, "verify_chip", verify_then_change)
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        challenge = stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitChipProofing(pb.SubmitChipProofingRequest(
                statement=submission(phone, icao.make_chip(ds, person), challenge)))
        assert reason(err.value) == "CHIP_DATA_MISMATCH"
        account = stub.GetAccount(pb.GetAccountRequest(name=name))
        assert account.level == pb.LEVEL_1
        assert list(stub.ListChipEvidence(pb.ListChipEvidenceRequest(name=name)).evidence) == []
