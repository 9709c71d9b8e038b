"""``vnegov receipts ...`` and ``vnegov reconcile``: the finance officer's commands.

    vnegov receipts list --payment ID          receipts of a payment, with their status
    vnegov receipts show ID [--xml F] [--pdf F] one receipt; write its signed XML / PDF
    vnegov receipts usage --from D --to D      usage report per template and series
    vnegov receipts cancel ID --reason R       cancel a receipt with a signed notice
    vnegov receipts issue-pending              issue receipts still queued in the outbox
    vnegov receipts verify FILE | --qr IMAGE   verify a signed receipt or its QR offline
    vnegov receipts verifier-page -o FILE      the offline verification page (server/cli_receipts)
    vnegov reconcile-report --agency A ...     the finance unit's papers (server/cli_receipts.py)
    vnegov payments check [--payment ID]...    prove the money invariants per payment (exit 1
                                               naming every payment that breaks one)
    vnegov reconcile STATEMENT... [--format camt053|csv] [--account A] [--as-of T]
                     [--report-dir DIR] [--channel-list CSV --channel platform|gateway]
                                               import, compare, reconcile (progress bar), report
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["register"]

Command = Callable[[argparse.Namespace, Mapping[str, str]], int]


def _refusals(command: Command) -> Command:
    """A refusal from the payments domain (a receipt already cancelled, an unknown receipt, a
    malformed statement) ends the command with its message and exit status 1, not a trace."""

    @functools.wraps(command)
    def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
        from payments.errors import PaymentsError

        try:
            return command(args, environ)
        except PaymentsError as exc:
            print(f"vnegov: {exc.message} ({exc.reason})", file=sys.stderr)
            return 1

    return run


def _stores(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from types import SimpleNamespace

    from server.cli import load_config_for
    from server.payments.module import PaymentsModule
    from server.storage.db import Database

    config = load_config_for(args, environ)
    db = Database(config.storage.url)
    ctx = SimpleNamespace(config=config, db=db, clock=lambda: dt.datetime.now(dt.UTC), jobs=None,
                          changes=None)
    module = PaymentsModule(ctx)  # type: ignore[arg-type]  # config, db and clock suffice
    return module, db


@_refusals
def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    module, db = _stores(args, environ)
    for r in module.receipts.for_payment(args.payment):
        print(f"{r.id}  {r.data.label}  {r.data.kind.value:<11} {r.status:<9} "
              f"{r.data.total:>12,}  {r.data.collector.name}".replace(",", "."))
    db.dispose()
    return 0


@_refusals
def cmd_show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from payments.receipts.pdf import render_receipt_pdf

    module, db = _stores(args, environ)
    r = module.receipts.get(args.receipt)
    print(f"{r.data.label} {r.status} total={r.data.total} payer={r.data.payer.name}")
    if args.xml:
        Path(args.xml).write_bytes(r.xml)
    if args.pdf:
        url = module.qr_page_url() if r.qr_token else \
            module.ctx.config.server.public_url.rstrip("/") + "/payments/receipts/verify"
        Path(args.pdf).write_bytes(render_receipt_pdf(r.data, r.xml, fonts=module.fonts(),
                                                      verify_url=url, qr_token=r.qr_token))
    db.dispose()
    return 0


@_refusals
def cmd_usage(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    module, db = _stores(args, environ)
    report = module.receipts.usage(start=dt.date.fromisoformat(args.start),
                                   end=dt.date.fromisoformat(args.end))
    print(f"period {report.period_start} .. {report.period_end} (Vietnam calendar days)")
    print("template series first    last     used cancelled total_collected")
    for line in report.lines:
        print(f"{line.template:<8} {line.series:<6} {line.first_number:07d} "
              f"{line.last_number:07d} {line.used:>5} {line.cancelled:>9} "
              f"{line.total_collected:>15}")
    db.dispose()
    return 0


@_refusals
def cmd_cancel(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    module, db = _stores(args, environ)
    notice = module.receipts.cancel(args.receipt, reason=args.reason, actor="cli",
                                    request_id="cli-cancel", now=dt.datetime.now(dt.UTC))
    if args.xml:
        Path(args.xml).write_bytes(notice)
    print(f"receipt {args.receipt} cancelled by a signed notice")
    db.dispose()
    return 0


@_refusals
def cmd_issue_pending(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    module, db = _stores(args, environ)
    now = dt.datetime.now(dt.UTC)
    issued = module.receipts.issue_batch(module.receipts.pending_issues(now=now), now=now)
    print(f"issued {len(issued)} receipts")
    db.dispose()
    return 0


@_refusals
def cmd_reconcile(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from tqdm import tqdm

    from payments.money import local_date
    from payments.reconcile import ReportBounds, report_csv, report_pdf, report_xlsx
    from server.payments.common import new_id

    module, db = _stores(args, environ)
    now = dt.datetime.now(dt.UTC)
    as_of = dt.datetime.fromisoformat(args.as_of) if args.as_of else now
    if as_of.tzinfo is None:
        print("vnegov: --as-of needs a UTC offset", file=sys.stderr)
        return 2
    for name in args.statements:
        totals = module.recon.import_statement(Path(name).read_bytes(), fmt=args.format,
                                               account=args.account, actor="cli",
                                               request_id="cli-import", now=now)
        print(f"{name}: {totals['lines']} lines, {totals['new_lines']} new, "
              f"{totals['continuity_problems']} continuity problems")
    for name in args.channel_list:
        last = local_date(as_of)
        first = dt.date.fromisoformat(args.first_day) if args.first_day else last
        counts = module.recon.compare_channel_list(
            Path(name).read_bytes(), channel=args.channel, first_day=first, last_day=last,
            actor="cli", request_id="cli-channel-list", now=now)
        print(f"{name} ({args.channel}): " + ", ".join(f"{k} {v}" for k, v in
                                                       sorted(counts.items())))
    run_id = new_id()
    bar = tqdm(total=0, unit="item", desc="reconciling", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    summary = module.recon.reconcile(as_of=as_of, actor="cli", run_id=run_id, progress=progress)
    bar.close()
    for outcome, count in sorted(summary["counts"].items()):
        print(f"{outcome:<24} {count:>8} {summary['amounts'][outcome]:>16}")
    if args.report_dir:
        out = Path(args.report_dir)
        out.mkdir(parents=True, exist_ok=True)
        items = module.recon.items(run_id)
        day = local_date(as_of)
        bounds = ReportBounds(dt.date.fromisoformat(args.first_day) if args.first_day else day,
                              day, now, args.unit)
        (out / f"reconcile-{run_id}.csv").write_bytes(report_csv(items, bounds))
        (out / f"reconcile-{run_id}.xlsx").write_bytes(report_xlsx(items, bounds))
        (out / f"reconcile-{run_id}.pdf").write_bytes(report_pdf(items, bounds, fonts=module.fonts()))
        print(f"reports written to {out}")
    db.dispose()
    return 0


def cmd_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from payments.payments.invariants import payments_named
    from server.cli import load_config_for
    from server.payments.checks import check_database, payment_facts
    from server.storage.db import Database

    db = Database(load_config_for(args, environ).storage.url)
    try:
        ids = args.payment or None
        checked = sum(1 for _ in payment_facts(db, ids))
        violations = check_database(db, ids)
    finally:
        db.dispose()
    for v in violations:
        print(v)
    if violations:
        named = payments_named(violations)
        print(f"vnegov: {len(named)} of {checked} payments break a money invariant: "
              + " ".join(f"payments/{p}" for p in named), file=sys.stderr)
        return 1
    print(f"{checked} payments checked: received = applied + held, each transfer accounted "
          "once, collected <= received, refunds <= collected, receivables never negative")
    return 0


def register(sub: Any) -> None:
    payments = sub.add_parser("payments", help="payments: prove the money invariants")
    ps = payments.add_subparsers(dest="payments_command", required=True)
    p = ps.add_parser("check", help="check every payment's money invariants in the database")
    p.add_argument("--payment", action="append", default=[],
                   help="check only this payment id (repeatable)")
    p.set_defaults(func=cmd_check)
    receipts = sub.add_parser("receipts", help="e-receipts: list, show, usage report")
    rs = receipts.add_subparsers(dest="receipts_command", required=True)
    p = rs.add_parser("list", help="receipts of a payment")
    p.add_argument("--payment", required=True)
    p.set_defaults(func=cmd_list)
    p = rs.add_parser("show", help="one receipt; optionally write its XML and PDF")
    p.add_argument("receipt")
    p.add_argument("--xml")
    p.add_argument("--pdf")
    p.set_defaults(func=cmd_show)
    p = rs.add_parser("usage", help="usage report per template and series")
    p.add_argument("--from", dest="start", required=True)
    p.add_argument("--to", dest="end", required=True)
    p.set_defaults(func=cmd_usage)
    p = rs.add_parser("cancel", help="cancel a receipt with a signed notice")
    p.add_argument("receipt")
    p.add_argument("--reason", required=True)
    p.add_argument("--xml", help="write the signed cancellation notice here")
    p.set_defaults(func=cmd_cancel)
    p = rs.add_parser("issue-pending", help="issue receipts still queued")
    p.set_defaults(func=cmd_issue_pending)
    from server.cli_receipts import register_receipt_checks, register_reconcile_report

    register_receipt_checks(rs)  # receipts verify (XML or QR), receipts verifier-page
    register_reconcile_report(sub)
    p = sub.add_parser("reconcile", help="import statements and reconcile")
    p.add_argument("statements", nargs="*")
    p.add_argument("--format", default="camt053", choices=["camt053", "csv"])
    p.add_argument("--account", default="")
    p.add_argument("--as-of", default="")
    p.add_argument("--first-day", default="")
    p.add_argument("--unit", default="")
    p.add_argument("--report-dir", default="")
    p.add_argument("--channel-list", action="append", default=[],
                   help="a gateway's or the platform's transaction list (CSV) to compare")
    p.add_argument("--channel", default="platform", choices=["platform", "gateway"])
    p.set_defaults(func=cmd_reconcile)
