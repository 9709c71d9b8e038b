"""Level 2 from the chip over gRPC: a synthetic genuine chip read by the citizen app takes a level-1
account to level 2, the profile comes from DG13, userinfo and the citizen profile mark the claims
verified; each attack fails with its own reason and leaves the account unchanged. On SQLite and
PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import tomli_w
from sqlalchemy import func, select

from server.cli import main
from server.storage.identity import AccountRow, ChipEvidenceRow
from tests.server.identity.harness import (
    Browser,
    Citizen,
    CitizenApp,
    IdentityServer,
    callback_params,
)
from tests.server.identity.raw import RawClient
from tests.server.identity.test_grpc import channel, reason
from tests.support import icao
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki
from tests.support.server import server_config_dict
from vnegov.identity.v1 import identity_pb2 as pb
from vnegov.identity.v1 import identity_pb2_grpc
from vnid.personal_id import Sex
from vnid.proofing import STATEMENT_TYPE, ChipProofing

CALLERS = [
    {"agency_code": "000.00.00.H29", "name": "dvc-hcm",
     "scopes": ["identity.read", "identity.manage", "identity.chip"], "provinces": ["79"]},
    {"agency_code": "000.00.00.H26", "scopes": ["identity.read", "identity.manage",
                                                "identity.chip"], "provinces": ["01"]},
    {"agency_code": "000.00.00.G22", "scopes": ["identity.read", "audit.read"],
     "provinces": ["*"]},
]
BORN = dt.date(1984, 5, 17)


@pytest.fixture(scope="module")
def csca() -> icao.Authority:
    return icao.make_csca()


@pytest.fixture(scope="module")
def ds(csca: icao.Authority) -> icao.Authority:
    return icao.make_ds(csca)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                               marks=pytest.mark.postgres)])
def idp(request: pytest.FixtureRequest, pki: TestPki, postgres_templates: PostgresTemplates,
        tmp_path_factory: pytest.TempPathFactory, csca: icao.Authority) -> Iterator[IdentityServer]:
    directory = tmp_path_factory.mktemp("idp-chip")
    (directory / "csca.pem").write_bytes(csca.pem)
    with fresh_database(request.param, postgres_templates, directory) as db:
        with IdentityServer(pki, directory, db.url.render_as_string(False), callers=CALLERS,
                            extra_identity={"chip": {"csca_file": str(directory / "csca.pem")}}
                            ) as server:
            server.db = db  # type: ignore[attr-defined]
            yield server


_counter = iter(range(100, 999))


def citizen_with_phone(idp: IdentityServer, pki: TestPki) -> tuple[Citizen, CitizenApp, icao.Person]:
    number = f"079084000{next(_counter)}"
    citizen = idp.citizen(number, name="NGUYEN VAN AN", born=BORN, sex=Sex.MALE, level2=False,
                          totp=False)
    with channel(idp, pki, pki.hcm) as ch:
        enrolment = identity_pb2_grpc.IdentityServiceStub(ch).CreateDeviceEnrolment(
            pb.CreateDeviceEnrolmentRequest(parent=f"accounts/{citizen.account_id}"))
    phone = CitizenApp(idp.issuer)
    with httpx.Client() as http:
        phone.enrol(http, enrolment.enrolment_code)
    person = icao.Person(personal_id=number, full_name="Nguyễn Văn An", date_of_birth=BORN)
    return citizen, phone, person


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def submission(phone: CitizenApp, chip: icao.Chip, challenge: pb.ChipChallenge, *,
               answer: bytes | None = None, **extra: Any) -> str:
    claims: dict[str, Any] = {
        "challenge": challenge.challenge_id, "sod": b64(chip.sod),
        "data_groups": {str(n): b64(v) for n, v in chip.groups.items()},
        "aa_signature": b64(answer if answer is not None else chip.answer(challenge.nonce)),
        "face_match": {"result": "match", "score": 0.93, "sdk": "app-liveness 2.1"}, **extra}
    return phone.statement(STATEMENT_TYPE, claims)


def state(idp: IdentityServer, account_id: str) -> tuple[Any, ...]:
    with idp.db.engine.connect() as conn:  # type: ignore[attr-defined]
        row = conn.execute(select(AccountRow.__table__).where(
            AccountRow.account_id == account_id)).one()
        evidence = conn.execute(select(func.count()).select_from(ChipEvidenceRow).where(
            ChipEvidenceRow.account_id == account_id)).scalar_one()
    return tuple(row) + (evidence,)


def test_a_genuine_chip_takes_a_level_1_account_to_level_2(idp: IdentityServer, pki: TestPki,
                                                           ds: icao.Authority) -> None:
    citizen, phone, person = citizen_with_phone(idp, pki)
    chip = icao.make_chip(ds, person)
    name = f"accounts/{citizen.account_id}"
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        assert stub.GetAccount(pb.GetAccountRequest(name=name)).level == pb.LEVEL_1
        challenge = stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        assert len(challenge.nonce) == 8
        result = stub.SubmitChipProofing(pb.SubmitChipProofingRequest(
            statement=submission(phone, chip, challenge)))
        assert result.account.level == pb.LEVEL_2
        assert result.account.full_name == "Nguyễn Văn An"  # the chip's spelling, "declare once"
        assert result.account.proofing.method == "remote_chip_nfc"
        ev = result.evidence
        assert ev.genuineness == "active_authentication" and ev.strength == "strong"
        assert ev.level_raised and ev.status == "valid"
        assert ev.claims["place_of_residence"].startswith("Số 1 Phố Huế")
        assert '"match"' in ev.face_match_reported_by_app  # kept as the app's statement
        assert set(ev.data_group_hashes) == {"1", "2", "13", "15"}
        listed = stub.ListChipEvidence(pb.ListChipEvidenceRequest(name=name)).evidence
        assert [e.evidence_id for e in listed] == [ev.evidence_id]
        # Another province's official tools do not see it.
        with channel(idp, pki, pki.hanoi) as other:
            with pytest.raises(grpc.RpcError) as err:
                identity_pb2_grpc.IdentityServiceStub(other).ListChipEvidence(
                    pb.ListChipEvidenceRequest(name=name))
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # userinfo marks the claims verified from the chip, with the consent the login asked.
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
    verified = info["verified_claims"]
    assert verified["verification"]["trust_framework"] == "vn_decree_69_2024"
    evidence = verified["verification"]["evidence"][0]
    assert evidence["type"] == "document"
    assert evidence["check_details"] == [{"check_method": "vcrypt"}]
    assert evidence["document_details"]["type"] == "idcard"
    assert verified["claims"]["HoVaTen"] == "Nguyễn Văn An"
    assert verified["claims"]["SoDinhDanh"] == person.personal_id
    assert verified["claims"]["NgayThangNamSinh"] == "19840517"
    with channel(idp, pki, pki.hcm) as ch:
        profile = identity_pb2_grpc.IdentityServiceStub(ch).GetCitizenProfile(
            pb.GetCitizenProfileRequest(client_id="dvc-hcm", subject=info["sub"]))
    assert '"vcrypt"' in profile.claims["verified_claims"]


def attempt(idp: IdentityServer, pki: TestPki, ds: icao.Authority, **kw: Any) -> str:
    """Submit a chip changed by ``kw``; the reason it failed; the account must be unchanged."""
    citizen, phone, person = citizen_with_phone(idp, pki)
    name = f"accounts/{citizen.account_id}"
    chip = kw.pop("chip", None) or icao.make_chip(kw.pop("signer", ds), kw.pop("person", person))
    before = state(idp, citizen.account_id)
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        challenge = stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        make = kw.pop("make", None)
        statement = make(phone, chip, challenge) if make else submission(phone, chip, challenge,
                                                                         **kw)
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitChipProofing(pb.SubmitChipProofingRequest(statement=statement))
    assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.FAILED_PRECONDITION), err.value.details()
    assert state(idp, citizen.account_id) == before
    return reason(err.value)


def test_each_attack_fails_with_its_own_reason(idp: IdentityServer, pki: TestPki,
                                               ds: icao.Authority, csca: icao.Authority) -> None:
    def altered(phone: CitizenApp, chip: icao.Chip, ch: pb.ChipChallenge) -> str:
        forged = icao.altered(chip, 13, icao.dg13(icao.Person(
            personal_id=chip.person.personal_id, full_name="Nguyễn Văn An",
            date_of_birth=BORN, place_of_residence="Somewhere else")))
        return submission(phone, forged, ch)

    assert attempt(idp, pki, ds, make=altered) == "CHIP_DATA_GROUP_ALTERED"
    foreign = icao.make_ds(icao.make_csca("Another CSCA"))
    assert attempt(idp, pki, ds, signer=foreign) == "CHIP_DS_UNTRUSTED"
    expired = icao.make_ds(csca, not_before=icao.NOW - dt.timedelta(days=4000),
                           not_after=icao.NOW - dt.timedelta(days=2))
    assert attempt(idp, pki, ds, signer=expired) == "CHIP_DS_EXPIRED"
    assert attempt(idp, pki, ds, answer=b"\x01" * 128) == "CHIP_AA_FAILED"

    def replayed(phone: CitizenApp, chip: icao.Chip, ch: pb.ChipChallenge) -> str:
        return submission(phone, chip, ch, answer=chip.answer(b"12345678"))

    assert attempt(idp, pki, ds, make=replayed) == "CHIP_AA_FAILED"

    def bad_mrz(phone: CitizenApp, chip: icao.Chip, ch: pb.ChipChallenge) -> str:
        zone = icao.td1(chip.person)
        broken = zone[:14] + str((int(zone[14]) + 1) % 10) + zone[15:]
        groups = {**chip.groups, 1: icao.dg1(chip.person, mrz=broken)}
        return submission(phone, icao.Chip(chip.person, groups, icao.make_sod(ds, groups),
                                           chip.aa_key), ch)

    assert attempt(idp, pki, ds, make=bad_mrz) == "MRZ_INVALID"

    def other_person(phone: CitizenApp, chip: icao.Chip, ch: pb.ChipChallenge) -> str:
        someone = icao.Person(personal_id="079084999999", full_name="Nguyễn Văn An",
                              date_of_birth=BORN)
        return submission(phone, icao.make_chip(ds, someone), ch)

    assert attempt(idp, pki, ds, make=other_person) == "CHIP_DATA_MISMATCH"

    def other_key(phone: CitizenApp, chip: icao.Chip, ch: pb.ChipChallenge) -> str:
        stranger = CitizenApp(phone.issuer)
        stranger.device_id = phone.device_id  # claims to be the device, signs with another key
        return submission(stranger, chip, ch)

    assert attempt(idp, pki, ds, make=other_key) == "DEVICE_SIGNATURE_INVALID"


def test_a_challenge_is_used_once(idp: IdentityServer, pki: TestPki, ds: icao.Authority) -> None:
    citizen, phone, person = citizen_with_phone(idp, pki)
    name = f"accounts/{citizen.account_id}"
    chip = icao.make_chip(ds, person, aa=None)  # weak: recorded, the level stays
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        challenge = stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        statement = submission(phone, chip, challenge, answer=b"")
        result = stub.SubmitChipProofing(pb.SubmitChipProofingRequest(statement=statement))
        assert result.evidence.strength == "weak" and not result.evidence.level_raised
        assert result.account.level == pb.LEVEL_1
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitChipProofing(pb.SubmitChipProofingRequest(statement=statement))
        assert reason(err.value) == "CHIP_CHALLENGE_USED"
        # Without the identity.chip scope the methods are refused.
        with channel(idp, pki, pki.portal) as national:
            with pytest.raises(grpc.RpcError) as err:
                identity_pb2_grpc.IdentityServiceStub(national).CreateChipChallenge(
                    pb.CreateChipChallengeRequest(name=name))
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_revoked_ds_lowers_the_accounts_it_proved(idp: IdentityServer, pki: TestPki,
                                                    csca: icao.Authority, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    ds = icao.make_ds(csca, "DS to be revoked")
    citizen, phone, person = citizen_with_phone(idp, pki)
    name = f"accounts/{citizen.account_id}"
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        challenge = stub.CreateChipChallenge(pb.CreateChipChallengeRequest(name=name))
        chip = icao.make_chip(ds, person)
        stub.SubmitChipProofing(pb.SubmitChipProofingRequest(
            statement=submission(phone, chip, challenge)))
        assert stub.GetAccount(pb.GetAccountRequest(name=name)).level == pb.LEVEL_2
    assert idp.app is not None
    chip_service: ChipProofing = idp.app.context.registry["identity_chip"]
    now = dt.datetime.now(dt.UTC)
    assert all(r.ok for r in chip_service.reverify(citizen.account_id, now))
    # The CSCA revokes the document signer; the auditor re-checks with the command line.
    (tmp_path / "csca.pem").write_bytes(csca.pem)
    (tmp_path / "csca.crl").write_bytes(icao.make_crl(csca, [(ds.cert, icao.NOW)]))
    data = server_config_dict(pki, tmp_path, idp.db.url.render_as_string(False), extra={
        "identity": {"issuer": idp.issuer,
                     "chip": {"csca_file": str(tmp_path / "csca.pem"),
                              "crl_files": [str(tmp_path / "csca.crl")]}}})
    config = tmp_path / "vnegov.toml"
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
    code = main(["--config", str(config), "identity", "evidence", "verify", citizen.account_id],
                environ={})
    out = capsys.readouterr().out
    assert code == 1, out
    assert "CHIP_DS_REVOKED" in out and "lowered to level 1" in out
    with channel(idp, pki, pki.hcm) as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        assert stub.GetAccount(pb.GetAccountRequest(name=name)).level == pb.LEVEL_1
        (ev,) = stub.ListChipEvidence(pb.ListChipEvidenceRequest(name=name)).evidence
        assert ev.status == "revoked" and ev.status_reason == "CHIP_DS_REVOKED"
    # --all lists it again (still revoked, nothing more to lower).
    code = main(["--config", str(config), "identity", "evidence", "verify", "--all"], environ={})
    out = capsys.readouterr().out
    assert code == 1 and citizen.account_id in out
    bad = main(["--config", str(config), "identity", "evidence", "verify"], environ={})
    assert bad == 2


def test_a_configured_master_list_is_trusted_only_through_its_signers_csca(
        tmp_path: Path) -> None:
    """``identity.chip.master_list_file`` needs the CSCA trusted out of band to issue the list's
    signer; a list signed by a signer of a CSCA it holds itself (a forger's) does not load."""
    from types import SimpleNamespace

    from server.config import ConfigError
    from server.identity.config import ChipConfig
    from server.identity.module import chip_proofing

    vietnam, neighbour, forger = (icao.make_csca(cn) for cn in (
        "CSCA Viet Nam", "Neighbour CSCA", "Forged CSCA"))
    (tmp_path / "ml.cms").write_bytes(icao.make_master_list(
        icao.make_ds(vietnam, "Master List Signer"), [vietnam, neighbour]))
    (tmp_path / "forged.cms").write_bytes(icao.make_master_list(
        icao.make_ds(forger, "Forged Signer"), [vietnam, forger]))
    (tmp_path / "anchor.pem").write_bytes(vietnam.pem)
    with pytest.raises(ConfigError) as err:
        ChipConfig.from_config({"master_list_file": str(tmp_path / "ml.cms")})
    assert "master_list_signer_ca_file" in str(err.value)

    def load(name: str) -> Any:
        chip = ChipConfig.from_config({"master_list_file": str(tmp_path / name),
                                       "master_list_signer_ca_file": str(tmp_path / "anchor.pem")})
        identity = SimpleNamespace(chip=chip, provider=SimpleNamespace(issuer="https://idp"))
        return chip_proofing(identity, None)  # type: ignore[arg-type]

    proofing = load("ml.cms")
    assert {c.subject for c in proofing.trust.certificates} == {vietnam.cert.subject,
                                                                neighbour.cert.subject}
    with pytest.raises(ConfigError) as err:
        load("forged.cms")
    assert "not issued by a CSCA trusted to publish master lists" in str(err.value)
