"""ISO 20022 camt.053 (BankToCustomerStatement) reading and writing, versions .001.02 to .001.14.

Vietnamese accounts have no IBAN: the account is ``Acct/Id/Othr/Id`` (and the bank
``Acct/Svcr/FinInstnId/Othr/Id`` its NAPAS BIN); both forms are read. VietQR transfers carry the
payer's text only in the unstructured remittance (``RmtInf/Ustrd``); structured creditor
references (``RmtInf/Strd/CdtrRefInf/Ref``) are read too.

The reader parses the statements' skeleton once and the entries in chunks, flattening each chunk
with an XSLT transform (libxslt, in C), so a statement of a million entries is read in seconds
with memory bounded by the chunk size. Amounts are
whole đồng: a fractional amount is an error, not rounded.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from lxml import etree

from payments.errors import StatementError
from payments.money import VN_TZ

__all__ = [
    "CAMT053_NAMESPACE",
    "Statement",
    "StatementLine",
    "distinct_keys",
    "entry_key",
    "line_identity",
    "parse_camt053",
    "write_camt053",
]

CAMT053_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
_NS = re.compile(rb'xmlns(?::\w+)?="(urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.\d\d)"')


class StatementLine(NamedTuple):
    """One booked entry. A NamedTuple: a million of them are built per large statement."""

    account: str
    key: str  # unique per account: see entry_key (the bank's reference alone is not)
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
    """A bank statement (ISO 20022 camt.053, or a CSV export): the account, the period, balances and lines."""
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


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
_NSDECL = re.compile(rb'xmlns(?::[A-Za-z_][\w.-]*)?="[^"]*"')
_FIRST_ENTRY = re.compile(rb"<([A-Za-z_][\w.-]*:)?Ntry>")
_CHUNK = 20_000


def parse_camt053(data: bytes, *, workers: int = 2) -> list[Statement]:
    """Every statement in a camt.053 document, with its lines (credits and debits).

    Large statements are read in chunks: the document without its entries (the "skeleton":
    statements, accounts, balances) is parsed once, and the entries, which are contiguous
    siblings by the schema, are parsed and flattened 20,000 at a time, so time and memory stay
    linear; ``workers`` threads parse and flatten chunks in parallel. Documents with comments,
    CDATA sections or a DOCTYPE are parsed whole instead."""
    m = _NS.search(data[:4096])
    if m is None:
        raise StatementError("not a camt.053 document (namespace not found)")
    ns = m.group(1).decode()
    first = _FIRST_ENTRY.search(data)
    if first is None or any(marker in data for marker in (b"<!--", b"<![CDATA[", b"<!DOCTYPE")):
        return _parse_whole(data, ns)
    prefix = first.group(1) or b""
    open_tag, close_tag = b"<" + prefix + b"Ntry>", b"</" + prefix + b"Ntry>"
    stmt_close = b"</" + prefix + b"Stmt>"
    decls = {d.split(b"=", 1)[0]: d for d in _NSDECL.findall(data, 0, first.start())}
    wrapper_open = b"<" + prefix + b"Stmt " + b" ".join(decls.values()) + b">"
    wrapper_close = b"</" + prefix + b"Stmt>"
    # Runs of consecutive entries, per statement: (statement index, start, end).
    runs: list[tuple[int, int, int]] = []
    skeleton: list[bytes] = []
    pos = 0
    stmt_index = 0
    next_stmt_end = data.find(stmt_close)
    start = first.start()
    while start != -1:
        while next_stmt_end != -1 and next_stmt_end < start:
            stmt_index += 1
            next_stmt_end = data.find(stmt_close, next_stmt_end + 1)
        skeleton.append(data[pos:start])
        run_start = start
        count = 0
        while True:
            end = data.find(close_tag, start)
            if end == -1:
                raise StatementError("an entry is not closed")
            end += len(close_tag)
            count += 1
            following = data.find(open_tag, end)
            if following == -1 or data[end:following].strip() or count >= _CHUNK or \
                    (next_stmt_end != -1 and following > next_stmt_end):
                break
            start = following
        runs.append((stmt_index, run_start, end))
        pos = end
        start = data.find(open_tag, end)
    skeleton.append(data[pos:])
    try:
        root = etree.fromstring(b"".join(skeleton), parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise StatementError(f"not well-formed XML (line {exc.lineno})") from None
    statements = _statements(root, ns)
    if any(index >= len(statements) for index, _, _ in runs):
        raise StatementError("an entry outside any statement")

    def flatten(run: tuple[int, int, int]) -> str:
        # lxml releases the GIL while parsing and transforming: chunks run in parallel.
        index, run_start, run_end = run
        try:
            chunk = etree.fromstring(wrapper_open + data[run_start:run_end] + wrapper_close,
                                     parser=etree.XMLParser(resolve_entities=False,
                                                            no_network=True, huge_tree=True))
        except etree.XMLSyntaxError:
            raise StatementError(f"an entry of statement {statements[index].id} is not "
                                 "well-formed XML") from None
        return str(_transform(ns)(chunk.getroottree()))

    from payments.reconcile.matching import paused_gc

    with paused_gc(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for (index, _, _), text in zip(runs, pool.map(flatten, runs), strict=True):
            st = statements[index]
            st.lines.extend(_rows(text, st, len(st.lines)))
    return distinct_keys(statements)


def _statements(root: etree._Element, ns: str) -> list[Statement]:
    q = "{" + ns + "}"
    body = root.find(q + "BkToCstmrStmt")
    if body is None:
        raise StatementError("not a BankToCustomerStatement")
    try:
        statements = [_statement(el, q) for el in body.iterchildren(q + "Stmt")]
    except ValueError as exc:
        raise StatementError(f"invalid date: {exc}") from None
    if not statements:
        raise StatementError("the document holds no statement")
    return statements


def _parse_whole(data: bytes, ns: str) -> list[Statement]:
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise StatementError(f"not well-formed XML (line {exc.lineno})") from None
    return distinct_keys(_statements(root, ns))


_REPEAT = "#~"


def entry_key(bank_ref: str, booking: dt.date, credit: bool, amount: int) -> str:
    """The identity of a booked entry on its account. A bank reference alone is not one: an
    entry and its reversal, a correction, or a standing transfer booked on several days share
    it. The reference with the booking day, the direction and the amount tells them apart."""
    return f"{bank_ref}/{booking.isoformat()}/{'C' if credit else 'D'}/{amount}"


def line_identity(key: str) -> str:
    """The entry a (possibly repeated) line is: its key without the repetition mark."""
    return key.split(_REPEAT, 1)[0]


def distinct_keys(statements: list[Statement]) -> list[Statement]:
    """A line repeated within a statement (every field the same) keeps its place with a
    numbered key (``...#~2``): it imports, and reconciliation reports it as a duplicate of the
    first, instead of the whole statement failing on a key that is not unique. The numbering is
    the same on every import of the same statement, so importing it twice adds nothing."""
    for st in statements:
        seen: dict[str, int] = {}
        lines = st.lines
        for i, line in enumerate(lines):
            n = seen.get(line.key, 0) + 1
            seen[line.key] = n
            if n > 1:
                lines[i] = line._replace(key=f"{line.key}{_REPEAT}{n}")
    return statements


def _statement(el: etree._Element, q: str) -> Statement:
    acct = el.find(q + "Acct")
    if acct is None:
        raise StatementError("a statement has no account")
    account = acct.findtext(f"{q}Id/{q}Othr/{q}Id") or acct.findtext(f"{q}Id/{q}IBAN")
    if not account:
        raise StatementError("a statement has no account identification")
    st = Statement(el.findtext(q + "Id") or "", account.strip(), acct.findtext(q + "Ccy") or "VND",
                   acct.findtext(f"{q}Svcr/{q}FinInstnId/{q}Othr/{q}Id") or
                   acct.findtext(f"{q}Svcr/{q}FinInstnId/{q}BICFI") or "")
    if st.currency != "VND":
        raise StatementError(f"statement {st.id} is not in VND")
    for bal in el.iterchildren(q + "Bal"):
        code = bal.findtext(f"{q}Tp/{q}CdOrPrtry/{q}Cd")
        value = _amount(bal.findtext(q + "Amt"))
        if bal.findtext(q + "CdtDbtInd") == "DBIT":
            value = -value
        if code in ("OPBD", "PRCD"):
            st.opening = value
            st.from_date = st.from_date or _date(bal.find(q + "Dt"), q[1:-1])
        elif code == "CLBD":
            st.closing = value
            st.to_date = _date(bal.find(q + "Dt"), q[1:-1])
    if el.find(q + "Ntry") is not None:
        st.lines = _entries(el, q[1:-1], st, 0)
    return st


_ENTRY_FIELDS = ("Amt", "CdtDbtInd", "Sts", "BookgDt", "ValDt", "AcctSvcrRef", "EndToEndId",
                 "RmtInf", "DbtrNm", "DbtrAcct", "CdtrNm", "CdtrAcct", "AddtlNtryInf")
_XSLT = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
 xmlns:c="{ns}"><xsl:output method="text" encoding="UTF-8"/>
<xsl:template match="/c:Stmt"><xsl:for-each select="c:Ntry">
<xsl:value-of select="normalize-space(c:Amt)"/><xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space(c:CdtDbtInd)"/><xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space(c:Sts/c:Cd | c:Sts[not(*)])"/><xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space(c:BookgDt/*[1])"/><xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space(c:ValDt/*[1])"/><xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space(c:AcctSvcrRef)"/><xsl:text>&#9;</xsl:text>
<xsl:variable name="tx" select="c:NtryDtls/c:TxDtls[1]"/>
<xsl:value-of select="normalize-space($tx/c:Refs/c:EndToEndId)"/><xsl:text>&#9;</xsl:text>
<xsl:for-each select="$tx/c:RmtInf/c:Ustrd | $tx/c:RmtInf/c:Strd/c:CdtrRefInf/c:Ref">
<xsl:value-of select="normalize-space(.)"/><xsl:text> </xsl:text></xsl:for-each>
<xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space($tx/c:RltdPties/c:Dbtr/c:Pty/c:Nm
  | $tx/c:RltdPties/c:Dbtr/c:Nm)"/><xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space($tx/c:RltdPties/c:DbtrAcct/c:Id/c:Othr/c:Id)"/><xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space($tx/c:RltdPties/c:Cdtr/c:Pty/c:Nm
  | $tx/c:RltdPties/c:Cdtr/c:Nm)"/><xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space($tx/c:RltdPties/c:CdtrAcct/c:Id/c:Othr/c:Id)"/><xsl:text>&#9;</xsl:text>
<xsl:value-of select="normalize-space(c:AddtlNtryInf)"/><xsl:text>&#10;</xsl:text>
</xsl:for-each></xsl:template></xsl:stylesheet>"""


_LOCAL = threading.local()


def _transform(ns: str) -> etree.XSLT:
    """The flattening transform for ``ns``, one per thread."""
    cache: dict[str, etree.XSLT] = _LOCAL.__dict__.setdefault("transforms", {})
    transform = cache.get(ns)
    if transform is None:
        transform = cache[ns] = etree.XSLT(etree.XML(_XSLT.replace("{ns}", ns).encode()))
    return transform


def _entries(stmt_el: etree._Element, ns: str, stmt: Statement, offset: int
             ) -> list[StatementLine]:
    tree = stmt_el.getroottree() if stmt_el.getparent() is None else etree.ElementTree(stmt_el)
    return _rows(str(_transform(ns)(tree)), stmt, offset)


def _rows(text: str, stmt: Statement, offset: int) -> list[StatementLine]:
    """Statement lines from the transform's output: one entry per line, tab-separated."""
    lines: list[StatementLine] = []
    append = lines.append
    account, sid = stmt.account, stmt.id
    days: dict[str, dt.date] = {}
    for index, row in enumerate(text.split("\n")[:-1], start=offset):
        (amount, ind, status, booked, valued, ref, e2e, rmt, dname, dacct, cname, cacct,
         addtl) = row.split("\t")
        if status and status != "BOOK":
            raise StatementError(f"entry {index + 1} of {sid} is not booked")
        booking = days.get(booked) or _text_day(booked, days)
        if booking is None:
            raise StatementError(f"entry {index + 1} of {sid} has no booking date")
        credit = ind == "CRDT"
        value = _amount(amount)
        append(StatementLine(account, f"{ref}/{booking.isoformat()}/{ind[:1]}/{value}"
                             if ref else f"{sid}#{index + 1}", value, credit,
                             booking, days.get(valued) or _text_day(valued, days), ref,
                             "" if e2e == "NOTPROVIDED" else e2e, rmt.strip() or addtl,
                             dname if credit else cname, dacct if credit else cacct))
    return lines


def _text_day(text: str, cache: dict[str, dt.date]) -> dt.date | None:
    if not text:
        return None
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
    else:
        parsed = dt.datetime.fromisoformat(text)
        day = (parsed.astimezone(VN_TZ) if parsed.tzinfo else parsed).date()
    cache[text] = day
    return day


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
