"""ISO 20022 camt.053 (BankToCustomerStatement) reading and writing, versions .001.02 to .001.14.

Vietnamese accounts have no IBAN: the account is ``Acct/Id/Othr/Id`` (and the bank
``Acct/Svcr/FinInstnId/Othr/Id`` its NAPAS BIN); both forms are read. VietQR transfers carry the
payer's text only in the unstructured remittance (``RmtInf/Ustrd``); structured creditor
references (``RmtInf/Strd/CdtrRefInf/Ref``) are read too.

The reader streams (``lxml.etree.iterparse`` on ``Ntry`` elements, freeing each as it goes) so a
statement of a million entries is read in seconds. Amounts are whole đồng: a fractional amount is an
error, not rounded.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from lxml import etree

from payments.errors import StatementError
from payments.money import VN_TZ

__all__ = [
    "CAMT053_NAMESPACE",
    "Statement",
    "StatementLine",
    "parse_camt053",
    "write_camt053",
]

CAMT053_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
_NS = re.compile(rb'xmlns(?::\w+)?="(urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.\d\d)"')


@dataclass(frozen=True, slots=True)
class StatementLine:
    account: str
    key: str  # unique per account: the bank's reference, or derived from the statement
    amount: int
    credit: bool
    booking_date: dt.date
    value_date: dt.date | None = None
    bank_ref: str = ""
    end_to_end: str = ""
    remittance: str = ""
    counterparty: str = ""
    counter_account: str = ""


@dataclass
class Statement:
    id: str
    account: str
    currency: str = "VND"
    bank_id: str = ""
    from_date: dt.date | None = None
    to_date: dt.date | None = None
    opening: int | None = None
    closing: int | None = None
    lines: list[StatementLine] = field(default_factory=list)

    @property
    def net(self) -> int:
        return sum(line.amount if line.credit else -line.amount for line in self.lines)


def _amount(text: str | None) -> int:
    if not text:
        raise StatementError("an amount is missing")
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit() or (frac and frac.strip("0")):
        raise StatementError(f"amount {text!r} is not a whole number of đồng")
    return int(whole)


def _date(el: etree._Element | None, ns: str) -> dt.date | None:
    if el is None:
        return None
    d = el.findtext(f"{{{ns}}}Dt")
    if d:
        return dt.date.fromisoformat(d[:10])
    t = el.findtext(f"{{{ns}}}DtTm")
    if t:
        parsed = dt.datetime.fromisoformat(t)
        return (parsed.astimezone(VN_TZ) if parsed.tzinfo else parsed).date()
    return None


def parse_camt053(data: bytes) -> list[Statement]:
    """Every statement in a camt.053 document, with its lines (credits and debits)."""
    m = _NS.search(data[:4096])
    if m is None:
        raise StatementError("not a camt.053 document (namespace not found)")
    ns = m.group(1).decode()
    q = f"{{{ns}}}"
    statements: list[Statement] = []
    current: Statement | None = None
    tags = (q + "Ntry", q + "Bal", q + "Acct", q + "Stmt", q + "FrToDt")
    try:
        context = etree.iterparse(io.BytesIO(data), events=("end",), tag=tags,
                                  resolve_entities=False, no_network=True, huge_tree=True)
        for _, el in context:
            tag = el.tag
            if tag == q + "Acct" and el.getparent().tag == q + "Stmt":
                stmt_el = el.getparent()
                account = el.findtext(f"{q}Id/{q}Othr/{q}Id") or el.findtext(f"{q}Id/{q}IBAN")
                if not account:
                    raise StatementError("a statement has no account identification")
                current = Statement(stmt_el.findtext(q + "Id") or "", account.strip(),
                                    el.findtext(q + "Ccy") or "VND",
                                    el.findtext(f"{q}Svcr/{q}FinInstnId/{q}Othr/{q}Id") or
                                    el.findtext(f"{q}Svcr/{q}FinInstnId/{q}BICFI") or "")
                if current.currency != "VND":
                    raise StatementError(f"statement {current.id} is not in VND")
                statements.append(current)
            elif tag == q + "FrToDt" or current is None:
                continue
            elif tag == q + "Bal":
                code = el.findtext(f"{q}Tp/{q}CdOrPrtry/{q}Cd")
                value = _amount(el.findtext(q + "Amt"))
                if el.findtext(q + "CdtDbtInd") == "DBIT":
                    value = -value
                if code in ("OPBD", "PRCD"):
                    current.opening = value
                    current.from_date = current.from_date or _date(el.find(q + "Dt"), ns)
                elif code == "CLBD":
                    current.closing = value
                    current.to_date = _date(el.find(q + "Dt"), ns)
            elif tag == q + "Ntry":
                current.lines.append(_entry(el, q, current, len(current.lines)))
                el.clear(keep_tail=False)
                parent = el.getparent()
                while el.getprevious() is not None:
                    del parent[0]
            elif tag == q + "Stmt":
                current = None
    except etree.XMLSyntaxError as exc:
        raise StatementError(f"not well-formed XML (line {exc.lineno})") from None
    except ValueError as exc:
        raise StatementError(f"invalid date: {exc}") from None
    if not statements:
        raise StatementError("the document holds no statement")
    return statements


def _entry(el: etree._Element, q: str, stmt: Statement, index: int) -> StatementLine:
    if el.findtext(f"{q}Sts/{q}Cd", "BOOK") not in ("BOOK",) and \
            el.findtext(q + "Sts", "BOOK").strip() not in ("BOOK", ""):
        raise StatementError(f"entry {index + 1} of {stmt.id} is not booked")
    amount = _amount(el.findtext(q + "Amt"))
    credit = el.findtext(q + "CdtDbtInd") == "CRDT"
    booking = _date(el.find(q + "BookgDt"), q[1:-1])
    if booking is None:
        raise StatementError(f"entry {index + 1} of {stmt.id} has no booking date")
    bank_ref = el.findtext(q + "AcctSvcrRef") or ""
    tx = el.find(f"{q}NtryDtls/{q}TxDtls")
    e2e = texts = name = counter = ""
    if tx is not None:
        e2e = tx.findtext(f"{q}Refs/{q}EndToEndId") or ""
        if e2e == "NOTPROVIDED":
            e2e = ""
        rmt = tx.find(q + "RmtInf")
        if rmt is not None:
            parts = [t.text or "" for t in rmt.iterfind(q + "Ustrd")]
            parts += [t.text or "" for t in rmt.iterfind(f"{q}Strd/{q}CdtrRefInf/{q}Ref")]
            texts = " ".join(p for p in parts if p)
        side = "Dbtr" if credit else "Cdtr"
        name = tx.findtext(f"{q}RltdPties/{q}{side}/{q}Pty/{q}Nm") or \
            tx.findtext(f"{q}RltdPties/{q}{side}/{q}Nm") or ""
        counter = tx.findtext(f"{q}RltdPties/{q}{side}Acct/{q}Id/{q}Othr/{q}Id") or ""
    if not texts:
        texts = el.findtext(q + "AddtlNtryInf") or ""
    key = bank_ref or f"{stmt.id}#{index + 1}"
    return StatementLine(stmt.account, key, amount, credit, booking,
                         _date(el.find(q + "ValDt"), q[1:-1]), bank_ref, e2e, texts, name, counter)


def _esc(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def write_camt053(statements: Sequence[Statement], *, message_id: str, created: dt.datetime,
                  namespace: str = CAMT053_NAMESPACE) -> bytes:
    """A camt.053.001.08 document for ``statements`` (for bank simulators, fixtures and
    benchmarks). Written as text for speed; every value is escaped."""
    return b"".join(_write_chunks(statements, message_id=message_id, created=created,
                                  namespace=namespace))


def _write_chunks(statements: Sequence[Statement], *, message_id: str, created: dt.datetime,
                  namespace: str) -> Iterator[bytes]:
    stamp = created.astimezone(VN_TZ).isoformat(timespec="seconds")
    yield (f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{namespace}">'
           f"<BkToCstmrStmt><GrpHdr><MsgId>{_esc(message_id)}</MsgId>"
           f"<CreDtTm>{stamp}</CreDtTm></GrpHdr>").encode()
    for s in statements:
        if s.opening is None or s.from_date is None or s.to_date is None:
            raise StatementError("a statement to write needs its dates and opening balance")
        closing = s.opening + s.net if s.closing is None else s.closing
        servicer = (f"<Svcr><FinInstnId><Othr><Id>{_esc(s.bank_id)}</Id></Othr></FinInstnId>"
                    f"</Svcr>") if s.bank_id else ""
        yield (f"<Stmt><Id>{_esc(s.id)}</Id><CreDtTm>{stamp}</CreDtTm>"
               f"<Acct><Id><Othr><Id>{_esc(s.account)}</Id></Othr></Id><Ccy>VND</Ccy>{servicer}"
               f"</Acct>{_balance('OPBD', s.opening, s.from_date)}"
               f"{_balance('CLBD', closing, s.to_date)}").encode()
        yield from (_entry_xml(line).encode("utf-8") for line in s.lines)
        yield b"</Stmt>"
    yield b"</BkToCstmrStmt></Document>\n"


def _balance(code: str, amount: int, day: dt.date) -> str:
    ind = "CRDT" if amount >= 0 else "DBIT"
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"VND\">{abs(amount)}"
            f"</Amt><CdtDbtInd>{ind}</CdtDbtInd><Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>")


def _entry_xml(line: StatementLine) -> str:
    side = "Dbtr" if line.credit else "Cdtr"
    parties = ""
    if line.counterparty or line.counter_account:
        party = f"<{side}><Pty><Nm>{_esc(line.counterparty)}</Nm></Pty></{side}>" \
            if line.counterparty else ""
        acct = (f"<{side}Acct><Id><Othr><Id>{_esc(line.counter_account)}</Id></Othr></Id>"
                f"</{side}Acct>") if line.counter_account else ""
        parties = f"<RltdPties>{party}{acct}</RltdPties>"
    rmt = f"<RmtInf><Ustrd>{_esc(line.remittance[:140])}</Ustrd></RmtInf>" \
        if line.remittance else ""
    value = f"<ValDt><Dt>{line.value_date.isoformat()}</Dt></ValDt>" if line.value_date else ""
    ref = f"<AcctSvcrRef>{_esc(line.bank_ref)}</AcctSvcrRef>" if line.bank_ref else ""
    e2e = _esc(line.end_to_end or "NOTPROVIDED")
    return (f"<Ntry><Amt Ccy=\"VND\">{line.amount}</Amt>"
            f"<CdtDbtInd>{'CRDT' if line.credit else 'DBIT'}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
            f"<BookgDt><Dt>{line.booking_date.isoformat()}</Dt></BookgDt>{value}{ref}"
            f"<BkTxCd><Prtry><Cd>NAPAS247</Cd></Prtry></BkTxCd><NtryDtls><TxDtls>"
            f"<Refs><EndToEndId>{e2e}</EndToEndId></Refs>{parties}{rmt}</TxDtls></NtryDtls>"
            f"</Ntry>")


def lines_of(statements: Iterable[Statement]) -> list[StatementLine]:
    return [line for s in statements for line in s.lines]
