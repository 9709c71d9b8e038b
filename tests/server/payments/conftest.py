from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest

from payments.payments import Payer
from payments.receipts import QrSeal
from server.payments.receipts_store import ReceiptsStore
from server.payments.recon_store import ReconStore
from server.payments.store import PaymentsStore
from server.storage.db import Database
from tests.payments.support import ACCOUNTS, HCM, ORGANISATIONS, T0, catalogue, signers
from tests.support.pki import TestPki


@dataclass
class World:
    db: Database
    payments: PaymentsStore
    receipts: ReceiptsStore
    recon: ReconStore
    seals: dict[str, QrSeal] = field(default_factory=dict)  # receipts' QR seals per body

    def paid_payment(self, *, channel: str = "platform", at: dt.datetime = T0,
                     procedure: str = "1.000494", request_id: str | None = None) -> str:
        p = self.payments.create_payment(
            caller="000.00.00.H29/dvc-hcm", request_id=request_id or f"req-{at.timestamp()}-x",
            agency_code=HCM, province="79", procedure_code=procedure,
            dossier_code=f"H29-{request_id or at.timestamp()}",
            payer=Payer("Nguyễn Văn A", id_number="079084000999"), channel=channel, now=at)
        self.payments.open(p.id, channel_url="", actor="test", request_id="open", now=at)
        self.payments.confirm(channel=channel, transaction_id=f"TX{p.id}", reference=p.reference,
                              amount=p.amount_due, at=at, success=True, exact_amount=True,
                              request_id="cb", now=at)
        return p.id


def make_world(db: Database, pki: TestPki) -> World:
    sig = signers(pki)
    seals = {code: QrSeal(i.key, i.cert) for code, i in sig.issued.items()}
    store = PaymentsStore(db, catalogue=catalogue(), ttl=dt.timedelta(minutes=30))
    for account in ACCOUNTS.values():
        store.register_account(account, actor="test", request_id="setup", now=T0)
    return World(db, store,
                 ReceiptsStore(db, organisations=ORGANISATIONS, signer_for=sig.signer_for,
                               sender_code="V0301234567", seal_for=seals.get),
                 ReconStore(db, settlement_delay=dt.timedelta(days=2)), seals)


@pytest.fixture
def world(db: Database, pki: TestPki) -> World:
    return make_world(db, pki)


@pytest.fixture
def sqlite_world(sqlite_db: Database, pki: TestPki) -> World:
    return make_world(sqlite_db, pki)
