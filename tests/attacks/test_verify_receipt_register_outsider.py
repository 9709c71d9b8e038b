"""An outsider's attacks on VerifyReceipt's use of this server's register (the proof of when a
receipt existed, the cancelled status, the seal's revocation at this server's CA).

Each test asserts the SAFE behaviour: it fails when the attack succeeds. The attacks:

* a cancelled registered receipt whose bytes differ only where the signature does not look (XML
  declaration, whitespace or comments outside/inside the signed data, an extra ds:Object): the
  register no longer "holds" it, so is it accepted as valid?
* a registered receipt with such small changes after its seal expired or was revoked: it is the
  same signed data, so the same receipt (judged when registered); does anything else borrow
  that proof?
* revocations with invalidity_date after revoked_at, at the exact registration instant, in
  another time zone, released holds; validation_time far in the past/future;
* hostile unsigned documents aimed at the register's unverified parse (unknown line kind, year 1,
  huge or odd numbers, entities, deep nesting, a second DLBLai hidden in the signature);
* two receipts with the same (template, series, number) a century apart;
* callers without the scope, without a certificate, from another province; concurrent calls;
  nothing written to the payments tables.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text

from payments.receipts import ReceiptKind, build_receipt_xml, sign_document
from payments.receipts.verification import ReceiptNotVerified, verify_receipt
from server.storage.db import Database
from signing.ca.authority import key_identifier
from signing.ca.revocation import RevocationEntry, RevocationReason
from tests.payments.support import HCM, signers
from tests.server.ca.conftest import CaServerFactory
from tests.server.payments.conftest import World, make_world
from tests.server.payments.test_server import db_url, payments_section
from tests.server.payments.test_verify_receipt import RECEIPT
from tests.support.pki import TestPki, pem
from tests.support.server import RunningServer, running_server
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc

CALLERS = [
    # Another province's system: may verify what it holds.
    {"agency_code": "000.00.00.H26", "scopes": ["payments.receipts"], "provinces": ["01"]},
    # The issuing agency itself and a national caller, both WITHOUT payments.receipts.
    {"agency_code": "000.00.00.H29", "name": "dvc-hcm", "scopes": ["payments.collect"],
     "provinces": ["79"]},
    {"agency_code": "000.00.00.G22", "scopes": ["identity.read"], "provinces": ["*"]},
]


@dataclass
class Setup:
    world: World
    issued_at: dt.datetime
    kept: str  # id of a valid registered receipt
    cancelled: str  # id of a cancelled registered receipt
    kept_xml: bytes
    cancelled_xml: bytes


def _issue(world: World, at: dt.datetime, tag: str) -> str:
    """The HCM department's receipt of a new paid payment (a payment may yield one per body)."""
    ids = world.receipts.issue_for_payment(world.paid_payment(request_id=tag, at=at), now=at)
    [rid] = [i for i in ids if world.receipts.get(i).data.collector.agency_code == HCM]
    return rid


def _setup(db: Database, pki: TestPki) -> Setup:
    world = make_world(db, pki)
    at = pki.now
    kept = _issue(world, at, "atk-kept")
    cancelled = _issue(world, at, "atk-cancelled")
    world.receipts.cancel(cancelled, reason="nhầm người nộp", actor="test", request_id="atk-cancel-1",
                          now=at)
    return Setup(world, at, kept, cancelled, world.receipts.get(kept).xml,
                 world.receipts.get(cancelled).xml)


@asynccontextmanager
async def _serve(pki: TestPki, tmp_path: Path, db: Database, now: dt.datetime
                 ) -> AsyncIterator[RunningServer]:
    roots = tmp_path / "roots.pem"
    roots.write_bytes(pem(pki.root.cert))
    port, extra = CaServerFactory(pki, tmp_path, db_url(db)).config()
    extra["auth"]["callers"] = CALLERS
    extra["payments"] = {**payments_section(pki, tmp_path), "workers_enabled": False,
                         "receipt_qr_roots_file": str(roots)}
    async with running_server(pki, tmp_path, db_url(db), http_port=port,
                              extra=extra) as server:
        server.app.context.clock = lambda: now
        yield server


def _stub(server: RunningServer, client: Any) -> payments_pb2_grpc.PaymentsServiceStub:
    return payments_pb2_grpc.PaymentsServiceStub(server.channel(client))


def _ts(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _variants(xml: bytes) -> dict[str, bytes]:
    """The same signed receipt with changes the signature does not see (or should catch)."""
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<BLai>"), xml[:60]
    body = xml.split(b"\n", 1)[1]
    out = {
        "trailing newline": xml + b"\n",
        "no XML declaration": body,
        "double-quoted declaration": b'<?xml version="1.0" encoding="UTF-8"?>\n' + body,
        "comment after the root": xml + b"<!-- copy -->",
        "comment inside the signed data": xml.replace(b"<DSKhoan>", b"<!-- x --><DSKhoan>", 1),
        "processing instruction": xml.replace(b"<BLai>", b"<?pi x?><BLai>", 1),
        "DOCTYPE": xml.replace(b"?>\n", b"?>\n<!DOCTYPE BLai>", 1),
        "space in a tag": xml.replace(b"<DSCKS>", b"<DSCKS >", 1),
        "empty ds:Object": xml.replace(b"</ds:Signature>",
                                       b"<ds:Object Id='o'/></ds:Signature>", 1),
    }
    for name, doc in out.items():
        assert doc != xml, name
    return out


async def _answer(stub: payments_pb2_grpc.PaymentsServiceStub, xml: bytes,
                  at: dt.datetime | None = None) -> pb.VerifyReceiptResponse:
    request = pb.VerifyReceiptRequest(xml=xml)
    if at is not None:
        request.validation_time.CopyFrom(_ts(at))
    answer: pb.VerifyReceiptResponse = await stub.VerifyReceipt(request)
    return answer


def _payments_state(db: Database) -> str:
    """A digest of every payments_* table (row counts and contents)."""
    from sqlalchemy import inspect

    h = hashlib.sha256()
    names = sorted(t for t in inspect(db.engine).get_table_names() if t.startswith("payments_"))
    assert "payments_receipts" in names
    with db.read() as s:
        for name in names:
            rows = s.execute(text(f"SELECT * FROM {name}")).all()  # noqa: S608 - table names
            h.update(name.encode() + repr(sorted(map(repr, rows))).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- promise 3 / 5


async def test_a_cancelled_receipt_with_small_changes_is_not_accepted(
        pki: TestPki, tmp_path: Path, db: Database) -> None:
    """ATTACK: the holder of a cancelled receipt changes bytes the signature does not cover
    (XML declaration, trailing newline, a comment...). The register lookup is byte for byte, so
    the register "does not hold" the changed document, and the cancellation is never looked at:
    the cancelled receipt would be answered valid=True."""
    s = _setup(db, pki)
    async with _serve(pki, tmp_path, db, s.issued_at + dt.timedelta(minutes=5)) as server:
        stub = _stub(server, pki.hanoi)
        exact = await _answer(stub, s.cancelled_xml)
        assert (exact.valid, exact.reason) == (False, "RECEIPT_CANCELLED")
        accepted = {}
        for name, doc in _variants(s.cancelled_xml).items():
            answer = await _answer(stub, doc)
            if answer.valid:
                accepted[name] = (answer.number, answer.register_status)
        assert not accepted, f"cancelled receipt accepted as valid when re-serialised: {accepted}"


# --------------------------------------------------------------------------- promise 1 / 2 / 5


async def test_a_registered_receipt_with_small_changes_is_still_that_receipt_and_no_other(
        pki: TestPki, tmp_path: Path, db: Database) -> None:
    """Small changes to a registered receipt that the signature does not see (serialisation,
    comments): the same signed data, so the same receipt, judged at its registration time and
    still valid after the seal expired or was revoked later; what is read is only ever the
    signed data. Changes the signature does see, or a DLBLai copy hidden in the signature
    stating another number and amount, are refused however the clock moves."""
    s = _setup(db, pki)
    issued_at = s.issued_at
    now = issued_at + dt.timedelta(minutes=5)
    hidden = s.kept_xml.replace(
        b"</ds:Signature>",
        b"<ds:Object>" + s.cancelled_xml.split(b"<BLai>", 1)[1].split(b"<DSCKS>", 1)[0]
        .replace(b"<TgTien>", b"<TgTien>9").replace(b"<STien>", b"<STien>9")
        + b"</ds:Object></ds:Signature>", 1)
    variants = {**_variants(s.kept_xml), "DLBLai copy in ds:Object": hidden}
    kept = s.world.receipts.get(s.kept)
    registered_at = issued_at.replace(microsecond=0)
    async with _serve(pki, tmp_path, db, now) as server:
        stub = _stub(server, pki.hanoi)
        exact = await _answer(stub, s.kept_xml)
        assert exact.valid and exact.register_status == "VALID"
        assert exact.validation_time.ToDatetime(dt.UTC) == registered_at
        same: set[str] = set()
        for name, doc in variants.items():
            answer = await _answer(stub, doc)
            if answer.valid:  # only ever the signed data, and then the registered receipt
                assert (answer.number, answer.total) == (f"{kept.data.number:07d}",
                                                         kept.data.total), name
                assert answer.register_status == "VALID", name
                assert answer.validation_time.ToDatetime(dt.UTC) == registered_at, name
                same.add(name)
        assert "DLBLai copy in ds:Object" not in same
        assert {"trailing newline", "comment inside the signed data"} <= same

        # Years later, and after a revocation a day after registration: the same signed data
        # keeps its proof, nothing else gains one.
        for clock in (issued_at + dt.timedelta(days=3 * 365), issued_at + dt.timedelta(days=2)):
            server.app.context.clock = lambda c=clock: c
            if clock < issued_at + dt.timedelta(days=3):
                seal = s.world.receipts.signer_for(HCM).certificate
                index = server.app.context.registry["certificate_status"]
                kid = key_identifier(pki.issuing.cert.public_key())
                index.set_revoked(kid, RevocationEntry(seal.serial_number,
                                                       issued_at + dt.timedelta(days=1),
                                                       RevocationReason.KEY_COMPROMISE))
            assert (await _answer(stub, s.kept_xml)).valid
            for name, doc in variants.items():
                answer = await _answer(stub, doc)
                assert answer.valid == (name in same), (name, answer.reason)
                if name not in same:  # nor at a time of the caller's choosing
                    assert not (await _answer(stub, doc, issued_at)).valid, name


# --------------------------------------------------------------------------- promise 2


async def test_revocation_edges_and_validation_times(pki: TestPki, tmp_path: Path,
                                                     sqlite_db: Database) -> None:
    """invalidity_date later than revoked_at; revocation at exactly the registration instant or
    before it; dates in another time zone; a released hold; validation_time far away."""
    db = sqlite_db
    s = _setup(db, pki)
    issued_at = s.issued_at
    unregistered = sign_document(s.world.receipts.signer_for(HCM), build_receipt_xml(
        dataclasses.replace(RECEIPT, number=99, issued_at=issued_at)), signing_time=issued_at)
    async with _serve(pki, tmp_path, db, issued_at + dt.timedelta(days=2)) as server:
        stub = _stub(server, pki.hanoi)
        seal = s.world.receipts.signer_for(HCM).certificate
        index = server.app.context.registry["certificate_status"]
        kid = key_identifier(pki.issuing.cert.public_key())

        def revoke(at: dt.datetime, reason: RevocationReason = RevocationReason.KEY_COMPROMISE,
                   invalidity: dt.datetime | None = None) -> None:
            index.set_revoked(kid, RevocationEntry(seal.serial_number, at, reason,
                                                   invalidity_date=invalidity))

        # invalidity_date later than revoked_at: the earlier one (revoked_at) counts.
        revoke(issued_at - dt.timedelta(hours=1), invalidity=issued_at + dt.timedelta(days=1))
        for xml in (s.kept_xml, unregistered):
            answer = await _answer(stub, xml)
            assert (answer.valid, answer.reason) == (False, "SEAL_REVOKED"), answer
        revoke(issued_at + dt.timedelta(days=1), invalidity=issued_at + dt.timedelta(days=5))
        assert (await _answer(stub, s.kept_xml)).valid
        assert (await _answer(stub, unregistered)).reason == "SEAL_REVOKED"
        # Revoked at exactly the registration instant: no proof it existed before.
        revoke(issued_at)
        assert (await _answer(stub, s.kept_xml)).reason == "SEAL_REVOKED"
        # The same instants in Vietnam's time zone (+07:00) behave the same.
        vn = dt.timezone(dt.timedelta(hours=7))
        revoke(issued_at.astimezone(vn) + dt.timedelta(seconds=1),
               invalidity=(issued_at - dt.timedelta(seconds=1)).astimezone(vn))
        assert (await _answer(stub, s.kept_xml)).reason == "SEAL_REVOKED"
        revoke((issued_at + dt.timedelta(seconds=1)).astimezone(vn))
        assert (await _answer(stub, s.kept_xml)).valid
        # A hold: the register's proof holds; a cancelled receipt stays refused.
        revoke(issued_at + dt.timedelta(days=1), RevocationReason.CERTIFICATE_HOLD)
        assert (await _answer(stub, unregistered)).reason == "SEAL_ON_HOLD"
        assert (await _answer(stub, s.cancelled_xml)).reason == "RECEIPT_CANCELLED"
        # Asked validation times cannot get around a hold/revocation or a cancellation.
        for when in (issued_at, dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                     dt.datetime(2999, 12, 31, tzinfo=dt.UTC)):
            assert not (await _answer(stub, unregistered, when)).valid, when
            assert (await _answer(stub, s.cancelled_xml, when)).reason in (
                "RECEIPT_CANCELLED", "UNTRUSTED_SIGNER"), when
        # The hold is released: GOOD again.
        index.set_good(kid, seal.serial_number)
        released = await _answer(stub, unregistered)
        assert released.valid and released.seal_status == "GOOD", released
        # Far past / far future for the registered receipt: judged then, never valid.
        for when in (dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                     dt.datetime(2999, 12, 31, tzinfo=dt.UTC)):
            answer = await _answer(stub, s.kept_xml, when)
            assert not answer.valid and answer.reason == "UNTRUSTED_SIGNER", when
            assert answer.validation_time.ToDatetime(dt.UTC) == when
        # A replacement: the original says REPLACED, the replacement VALID; both signed data.
        replacement = s.world.receipts.correct(
            s.kept, kind=ReceiptKind.REPLACEMENT, lines=s.world.receipts.get(s.kept).data.lines,
            reason="sai tên", actor="test", request_id="atk-replace-1", now=issued_at)
        assert (await _answer(stub, s.kept_xml)).register_status == "REPLACED"
        new = await _answer(stub, replacement.xml)
        assert new.valid and new.register_status == "VALID"
        assert new.number != (await _answer(stub, s.kept_xml)).number


# --------------------------------------------------------------------------- promise 5


def _unsigned_hostile() -> dict[str, bytes]:
    x = build_receipt_xml(RECEIPT)
    number = b"<SBLai>0000007</SBLai>"
    docs = {
        "unknown line kind": x.replace("<LKhoan>Lệ phí</LKhoan>".encode(),
                                       b"<LKhoan>X</LKhoan>"),
        "year 1 issue time": x.replace(b"<TGLap>2025-08-01T09:00:00</TGLap>",
                                       b"<TGLap>0001-01-01T00:00:00</TGLap>"),
        "40-digit number": x.replace(number, b"<SBLai>" + b"9" * 40 + b"</SBLai>"),
        "4000-digit number": x.replace(number, b"<SBLai>" + b"9" * 4000 + b"</SBLai>"),
        "below int64": x.replace(number, b"<SBLai>-9223372036854775809</SBLai>"),
        "Arabic-Indic digits": x.replace(number, "<SBLai>٠٠٠٠٠٠٧</SBLai>".encode()),
        "entity as number": x.replace(b"<BLai>", b'<!DOCTYPE BLai [<!ENTITY n "0000007">]>'
                                      b"<BLai>", 1).replace(number, b"<SBLai>&n;</SBLai>"),
        "external entity": x.replace(b"<BLai>", b'<!DOCTYPE BLai [<!ENTITY n SYSTEM '
                                     b'"file:///etc/hostname">]><BLai>', 1)
        .replace(number, b"<SBLai>&n;</SBLai>"),
        "bad related receipt": x.replace(b"</TTChung>", b"<TTBLLQuan><TCBLai>1</TCBLai>"
                                         b"<KHMSBLLQuan>EBL01</KHMSBLLQuan><KHBLLQuan>25T"
                                         b"</KHBLLQuan><SBLLQuan>x</SBLLQuan><NLBLLQuan>2025-13-"
                                         b"01</NLBLLQuan></TTBLLQuan></TTChung>", 1),
        "related year 0": x.replace(b"</TTChung>", b"<TTBLLQuan><TCBLai>1</TCBLai>"
                                    b"<KHMSBLLQuan>EBL01</KHMSBLLQuan><KHBLLQuan>25T"
                                    b"</KHBLLQuan><SBLLQuan>1</SBLLQuan><NLBLLQuan>0001-01-"
                                    b"01</NLBLLQuan></TTBLLQuan></TTChung>", 1),
        # A second TTChung first, stating another number: the unverified parse reads it.
        "two TTChung": x.replace(b"<TTChung>", b"<TTChung>" + x.split(b"<TTChung>")[1]
                                 .split(b"</TTChung>")[0].replace(number, b"<SBLai>0000001"
                                                                  b"</SBLai>")
                                 + b"</TTChung><TTChung>", 1),
        "deep nesting": x.replace(b"<NNop>", b"<NNop>" + b"<a>" * 5000 + b"</a>" * 5000, 1),
        "many lines": x.replace(b"</DSKhoan>", x.split(b"<DSKhoan>")[1].split(b"</DSKhoan>")[0]
                                * 2500 + b"</DSKhoan>", 1),
        "timezone in issue time": x.replace(b"<TGLap>2025-08-01T09:00:00</TGLap>",
                                            b"<TGLap>9999-12-31T23:59:59-23:59</TGLap>"),
    }
    return {k: v for k, v in docs.items() if v != x}


async def test_hostile_documents_get_answers_not_internal_errors(
        pki: TestPki, tmp_path: Path, db: Database) -> None:
    """ATTACK: the register is consulted BEFORE verification, on an unverified parse of whatever
    the caller sends. Documents that make that parse (or the database lookup) raise anything but
    InvalidInput/ValueError would surface as INTERNAL."""
    s = _setup(db, pki)
    docs = _unsigned_hostile()
    assert len(docs) >= 12, sorted(docs)
    assert len(docs["many lines"]) < 786432
    async with _serve(pki, tmp_path, db, s.issued_at + dt.timedelta(minutes=5)) as server:
        stub = _stub(server, pki.hanoi)
        internal = {}
        for name, doc in docs.items():
            try:
                answer = await _answer(stub, doc)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    internal[name] = (exc.code().name, exc.details())
                assert "Traceback" not in (exc.details() or "")
            else:
                assert not answer.valid and answer.reason, name
                assert "Traceback" not in answer.message and "Error" not in answer.message
        # Too big for the contract: a clear INVALID_ARGUMENT.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _answer(stub, b"<BLai>" + b" " * 786432 + b"</BLai>")
        assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                    grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert not internal, f"hostile documents crashed VerifyReceipt: {internal}"


async def test_extreme_validation_times_are_answers(pki: TestPki, tmp_path: Path,
                                                   sqlite_db: Database) -> None:
    """ATTACK: validation_time just inside what a datetime holds (9999-12-31T23:59:59,
    0001-01-01T00:00:00): ToDatetime accepts it, the certificate path check then adds its
    tolerance and overflows. Must be an answer (not valid) or INVALID_ARGUMENT."""
    s = _setup(sqlite_db, pki)
    async with _serve(pki, tmp_path, sqlite_db, s.issued_at) as server:
        stub = _stub(server, pki.hanoi)
        crashed = {}
        for when in (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
                     dt.datetime(1, 1, 1, tzinfo=dt.UTC)):
            try:
                answer = await _answer(stub, s.kept_xml, when)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    crashed[when.isoformat()] = exc.code().name
            else:
                assert not answer.valid, when
        assert not crashed, f"extreme validation_time crashed VerifyReceipt: {crashed}"


def test_library_refuses_a_sealed_receipt_with_an_unrepresentable_time(pki: TestPki) -> None:
    """ATTACK (library): a receipt sealed by the agency whose TGLap is year 1 (+07:00 -> UTC
    underflows). verify_receipt must answer ReceiptNotVerified, not raise OverflowError."""
    seal = signers(pki).signer_for(HCM)
    odd = build_receipt_xml(dataclasses.replace(RECEIPT, issued_at=pki.now)).replace(
        f"<TGLap>{(pki.now + dt.timedelta(hours=7)):%Y-%m-%dT%H:%M:%S}</TGLap>".encode(),
        b"<TGLap>0001-01-01T00:00:00</TGLap>")
    assert b"0001-01-01" in odd
    signed = sign_document(seal, odd, signing_time=pki.now)
    try:
        verify_receipt(signed, trust=[pki.root.cert], at=pki.now)
    except ReceiptNotVerified as exc:
        assert exc.reason == "NOT_A_RECEIPT"
    except Exception as exc:  # noqa: BLE001 - the attack
        pytest.fail(f"verify_receipt raised {type(exc).__name__}: {exc}")
    # Unknown line kind, sealed: KeyError is caught in the library.
    odd = build_receipt_xml(RECEIPT).replace("<LKhoan>Lệ phí</LKhoan>".encode(),
                                             b"<LKhoan>X</LKhoan>")
    with pytest.raises(ReceiptNotVerified):
        verify_receipt(sign_document(seal, odd, signing_time=pki.now), trust=[pki.root.cert],
                       at=pki.now)


# --------------------------------------------------------------------------- promise 1 / 3


async def test_same_number_a_century_apart(pki: TestPki, tmp_path: Path, db: Database) -> None:
    """ATTACK: (template, series, number) repeats every 100 years (series = 2-digit year); the
    table's key includes the year but ``ReceiptsStore.registered`` does not (``.first()``). Two
    cancelled receipts numbered 1, a century apart: the register finds one row for both, the
    other one's byte comparison fails, its cancellation is never seen and it is judged now."""
    world = make_world(db, pki)
    at = pki.now
    century = at.replace(year=at.year + 100)
    ids = [_issue(world, century, "atk-century-1"), _issue(world, at, "atk-old-0001")]
    for i, rid in enumerate(ids):
        r = world.receipts.get(rid)
        assert (r.data.template, r.data.series, r.data.number) == (
            "EBL01", f"{at.year % 100:02d}T", 1)
        world.receipts.cancel(rid, reason="nhầm", actor="test", request_id=f"atk-cancel-c{i}",
                              now=r.data.issued_at)
    async with _serve(pki, tmp_path, db, at + dt.timedelta(minutes=5)) as server:
        stub = _stub(server, pki.hanoi)
        answers = {world.receipts.get(rid).data.issued_at.year:
                   await _answer(stub, world.receipts.get(rid).xml) for rid in ids}
        accepted = {year: a.register_status for year, a in answers.items() if a.valid}
        assert not accepted, f"a cancelled receipt was accepted: {accepted}"
        assert {a.reason for a in answers.values()} <= {"RECEIPT_CANCELLED", "UNTRUSTED_SIGNER"}


# --------------------------------------------------------------------------- promise 4


async def test_outsiders_learn_nothing_and_nothing_is_written(
        pki: TestPki, tmp_path: Path, db: Database) -> None:
    """Callers without the scope or a certificate get nothing; a caller holding only the number
    of a registered receipt learns nothing; concurrent calls agree; no payments row changes."""
    s = _setup(db, pki)
    now = s.issued_at + dt.timedelta(minutes=5)
    unsigned = build_receipt_xml(RECEIPT)
    kept = s.world.receipts.get(s.kept).data
    stating_registered = unsigned.replace(b"<KHBLai>25T</KHBLai>",
                                          f"<KHBLai>{kept.series}</KHBLai>".encode()).replace(
        b"<SBLai>0000007</SBLai>", f"<SBLai>{kept.number:07d}</SBLai>".encode())
    stating_other = stating_registered.replace(f"<SBLai>{kept.number:07d}</SBLai>".encode(),
                                               b"<SBLai>0009999</SBLai>")
    # The registered document with its signature removed (what someone who saw the number and
    # the content but not the seal could build).
    stripped = s.kept_xml.split(b"<DSCKS>")[0] + b"</BLai>"
    async with _serve(pki, tmp_path, db, now) as server:
        before = _payments_state(db)  # after the server's own start-up writes
        for client in (pki.hcm, pki.portal, None):
            stub = _stub(server, client)
            for xml in (s.kept_xml, s.cancelled_xml, b"<x/>"):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await _answer(stub, xml)
                assert err.value.code() in (grpc.StatusCode.PERMISSION_DENIED,
                                            grpc.StatusCode.UNAUTHENTICATED), client
        stub = _stub(server, pki.hanoi)
        a = await _answer(stub, stating_registered)
        b = await _answer(stub, stating_other)
        c = await _answer(stub, stripped)
        for answer in (a, b, c):
            assert not answer.valid and answer.register_status == ""
            assert answer.validation_time.ToDatetime(dt.UTC) == now
        assert (a.reason, a.message) == (b.reason, b.message)

        docs = [s.kept_xml, s.cancelled_xml, s.kept_xml + b"\n", b"\x00", stating_registered]
        sequential = [await _answer(stub, d) for d in docs]
        together = await asyncio.gather(*(_answer(stub, d) for d in docs * 8))
        for i, answer in enumerate(together):
            assert answer == sequential[i % len(docs)], i
        assert _payments_state(db) == before, "VerifyReceipt changed the payments tables"
