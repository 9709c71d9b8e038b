"""Bulk re-issuance after a reorganisation: the plan, the long-running operation over gRPC, and
`vnegov ca reorg run` killed part way (SIGKILL) and started again."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from server.ca.module import open_ca
from server.ca.records import Actor
from server.config import Config
from server.storage import migrate
from server.storage.ca import CaCertificateRow, CaReorganisationItemRow, CaReorganisationRow
from server.storage.db import Database
from signing.ca import SubjectData
from tests.server.ca.conftest import CaServer, csr_for, issue, write_ca_files
from tests.support.pki import TestPki
from tests.support.server import ROOT, server_config_dict
from vnegov.signing.v1 import certificate_authority_pb2 as pb

OLD_UNIT = "000.00.31.H29"   # e.g. a district's office, abolished with the districts
NEW_UNIT = "000.40.01.H29"
MAPPING = {
    "reference": "Nghị quyết 1685/NQ-UBTVQH15",
    "effective_date": "2025-07-01",
    "changes": [
        {"old_agency_code": OLD_UNIT, "new_agency_code": NEW_UNIT,
         "new_name": "Phòng Văn hóa - Xã hội", "new_parent_body": "UBND Phường Bến Thành"},
        {"old_agency_code": "000.00.12.H29", "new_agency_code": "000.00.13.H29",
         "new_name": "Sở Tư pháp Thành phố Hồ Chí Minh"},
    ],
}


def official(i: int) -> dict[str, Any]:
    return {"full_name": f"Cán bộ {i:03d}", "unit": "Phòng Văn hóa - Thông tin",
            "parent_body": "UBND Quận 1", "agency_code": OLD_UNIT, "province_code": "79",
            "personal_id": f"0790840{i:05d}"}


def _reorganization() -> pb.Reorganization:
    return pb.Reorganization(reference=MAPPING["reference"],
                             effective_date=MAPPING["effective_date"],
                             changes=[pb.UnitChange(**c) for c in MAPPING["changes"]])


async def test_plan_then_run_as_a_long_running_operation(ca_server: CaServer) -> None:
    ca = ca_server
    people = [await issue(ca, subject=official(i)) for i in range(4)]
    org, _ = await issue(ca, profile="organisation", subject={
        "agency_name": "Sở Tư pháp", "parent_body": "UBND Thành phố Hồ Chí Minh",
        "agency_code": "000.00.12.H29", "province_code": "79"})
    bystander, _ = await issue(ca, subject={**official(9), "agency_code": "000.00.32.H29"})
    gone, _ = await issue(ca, subject=official(10))
    await ca.stub().RevokeCertificate(pb.RevokeCertificateRequest(
        name=gone.result_certificate, reason=pb.RevocationReason.CESSATION_OF_OPERATION))

    plan = await ca.stub().PlanReorganization(pb.PlanReorganizationRequest(
        reorganization=_reorganization()))
    assert plan.reissue_count == 5 and plan.reassign_count == 0
    planned = {c.certificate for c in plan.changes}
    assert planned == {p.result_certificate for p, _ in people} | {org.result_certificate}
    first = next(c for c in plan.changes if c.certificate == people[0][0].result_certificate)
    assert set(first.changed_fields) == {"agency_code", "unit", "parent_body"}
    assert first.new_subject.unit == "Phòng Văn hóa - Xã hội"
    with pytest.raises(Exception) as err:  # only the operator plans and runs
        await ca.stub(ca.pki.hcm).PlanReorganization(pb.PlanReorganizationRequest(
            reorganization=_reorganization()))
    assert "PERMISSION_DENIED" in str(err.value)

    operation = await ca.stub().StartReorganization(pb.StartReorganizationRequest(
        reorganization=_reorganization(), request_id="reorg-2025-07"))
    assert operation.name.startswith("reorganizationOperations/") and operation.total == 5
    for _ in range(100):
        operation = await ca.stub().GetReorganizationOperation(
            pb.GetReorganizationOperationRequest(name=operation.name))
        if operation.done:
            break
        await asyncio.sleep(0.05)
    assert operation.done and operation.state == pb.ReorganizationOperation.SUCCEEDED
    assert (operation.completed, operation.failed) == (5, 0)
    items = await ca.stub().ListReorganizationItems(pb.ListReorganizationItemsRequest(
        name=operation.name, page_size=2))
    assert len(items.items) == 2 and items.next_page_token
    stub = ca.stub()
    for req, _ in people:
        old = await stub.GetCertificate(pb.GetCertificateRequest(name=req.result_certificate))
        assert old.status == pb.Certificate.REVOKED
        assert old.revocation_reason == pb.RevocationReason.AFFILIATION_CHANGED
        new = await stub.GetCertificate(pb.GetCertificateRequest(name=old.superseded_by))
        assert new.status == pb.Certificate.VALID and new.predecessor == old.name
        assert new.subject.agency_code == NEW_UNIT
        assert new.subject.parent_body == "UBND Phường Bến Thành"
        assert new.not_after.seconds == old.not_after.seconds  # re-issued, not extended
        assert new.subject.personal_id == old.subject.personal_id
    untouched = await stub.GetCertificate(pb.GetCertificateRequest(
        name=bystander.result_certificate))
    assert untouched.status == pb.Certificate.VALID and not untouched.superseded_by
    # Starting the same mapping again is the same operation: nothing is issued twice.
    count = len((await stub.ListCertificates(pb.ListCertificatesRequest(page_size=1000)))
                .certificates)
    again = await stub.StartReorganization(pb.StartReorganizationRequest(
        reorganization=_reorganization()))
    assert again.name == operation.name and again.done
    assert len((await stub.ListCertificates(pb.ListCertificatesRequest(page_size=1000)))
               .certificates) == count


async def test_a_renewed_subscriber_is_reissued_once_and_both_old_certificates_revoked(
        ca_server: CaServer) -> None:
    """A renewal leaves the renewed certificate valid: the plan names the subscriber once (the
    renewal), and carrying it out revokes both old certificates."""
    ca = ca_server
    stub = ca.stub()
    first, _ = await issue(ca, subject=official(1), validity_days=365)
    renewal = await stub.RenewCertificate(pb.RenewCertificateRequest(
        name=first.result_certificate, extension_days=30))
    assert renewal.state == pb.CertificateRequest.COMPLETED
    plan = await stub.PlanReorganization(pb.PlanReorganizationRequest(
        reorganization=_reorganization()))
    assert [c.certificate for c in plan.changes] == [renewal.result_certificate]
    operation = await stub.StartReorganization(pb.StartReorganizationRequest(
        reorganization=_reorganization()))
    for _ in range(100):
        operation = await stub.GetReorganizationOperation(
            pb.GetReorganizationOperationRequest(name=operation.name))
        if operation.done:
            break
        await asyncio.sleep(0.05)
    assert operation.state == pb.ReorganizationOperation.SUCCEEDED, operation
    certs = (await stub.ListCertificates(pb.ListCertificatesRequest(
        filter='subject = "Cán bộ 001"', page_size=10))).certificates
    assert len(certs) == 3
    valid = [c for c in certs if c.status == pb.Certificate.VALID]
    assert len(valid) == 1 and valid[0].subject.agency_code == NEW_UNIT
    assert valid[0].predecessor == renewal.result_certificate
    for c in certs:
        if c.name != valid[0].name:
            assert c.status == pb.Certificate.REVOKED
            assert c.revocation_reason == pb.RevocationReason.AFFILIATION_CHANGED


# ---------------------------------------------------------------------- kill and restart
def _counts(db: Database, run_id: int | None) -> tuple[int, int]:
    with db.read() as s:
        if run_id is None:
            row = s.execute(select(CaReorganisationRow)).scalars().first()
            if row is None:
                return 0, 0
            run_id = row.id
        done = s.execute(select(func.count()).select_from(CaReorganisationItemRow).where(
            CaReorganisationItemRow.reorganisation_id == run_id,
            CaReorganisationItemRow.state == "done")).scalar_one()
        total = s.execute(select(func.count()).select_from(CaReorganisationItemRow).where(
            CaReorganisationItemRow.reorganisation_id == run_id)).scalar_one()
    return done, total


def _everyone_has_exactly_one_valid_certificate(db: Database, people: int) -> dict[str, int]:
    """personal id -> number of valid certificates, and the invariants of re-issuance."""
    now = dt.datetime.now(dt.UTC)
    with db.read() as s:
        rows = s.execute(select(CaCertificateRow)).scalars().all()
    by_person: dict[str, list[CaCertificateRow]] = {}
    for row in rows:
        subject = json.loads(row.subject_json)
        by_person.setdefault(subject.get("personal_id", ""), []).append(row)
    valid = {}
    for pid, certs in by_person.items():
        if not pid:
            continue
        live = [c for c in certs if c.status == "valid" and c.not_after > now]
        valid[pid] = len(live)
        for c in certs:
            successors = [d for d in certs if d.predecessor_id == c.id]
            assert len(successors) <= 1, f"{pid}: certificate {c.id} was re-issued twice"
            if successors:
                assert c.status == "revoked" and c.revocation_reason == "affiliationChanged"
                assert c.superseded_by_id == successors[0].id
    assert len(valid) == people
    return valid


@pytest.mark.slow
def test_reorg_run_killed_part_way_finishes_on_restart(pki: TestPki, tmp_path: Path) -> None:
    people = 60
    db_path = tmp_path / "vnegov.db"
    url = f"sqlite:///{db_path}"
    config = server_config_dict(pki, tmp_path, url, extra={
        "ca": write_ca_files(pki, tmp_path / "ca", "http://127.0.0.1:8080"),
        "logging": {"level": "WARNING", "format": "json"}})
    config_path = tmp_path / "vnegov.toml"
    config_path.write_text(tomli_w.dumps(config), encoding="utf-8")
    db = Database(url)
    migrate.upgrade(db)
    parts = open_ca(Config.from_config(config), db, lambda: dt.datetime.now(dt.UTC))
    parts.service.ensure_issuer()
    actor = Actor.command_line("setup")
    for i in range(people):
        view = parts.service.issue(actor, profile_id="individual",
                                   subject=SubjectData.from_dict(official(i)),
                                   csr=csr_for(ec.generate_private_key(ec.SECP256R1())),
                                   managing_body="000.00.00.H29")
        assert view.state.value == "completed"
    parts.runtime.close()
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(json.dumps(MAPPING, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}
    command = [sys.executable, "-m", "server", "--config", str(config_path), "ca", "reorg",
               "run", str(mapping), "--batch-size", "4"]

    first = subprocess.Popen([*command, "--throttle", "0.2"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while True:
            done, total = _counts(db, None)
            if done >= 8:
                break
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)  # a real kill: no clean-up, no handler runs
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    done, total = _counts(db, None)
    assert total == people and 8 <= done < total, (done, total)
    # Killed half way, nobody is without a valid certificate, and nobody has two.
    assert set(_everyone_has_exactly_one_valid_certificate(db, people).values()) == {1}

    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0, second.stderr
    final = json.loads(second.stdout.strip().splitlines()[-1])
    assert final["state"] == "succeeded" and final["done"] == people and final["failed"] == 0
    assert "re-issuing" in second.stderr  # the progress bar
    assert set(_everyone_has_exactly_one_valid_certificate(db, people).values()) == {1}
    with db.read() as s:
        rows = s.execute(select(CaCertificateRow)).scalars().all()
    new = [r for r in rows if r.predecessor_id is not None]
    assert len(new) == people and all(r.agency_code == NEW_UNIT and r.status == "valid"
                                       for r in new)
    assert all(r.status == "revoked" for r in rows if r.superseded_by_id is not None)
    # Running it a third time changes nothing.
    third = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=60)
    assert third.returncode == 0
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(CaCertificateRow)).scalar_one() == \
            2 * people
    db.dispose()
