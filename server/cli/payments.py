"""``vnegov receipts ...`` and ``vnegov reconcile``: the finance officer's commands.

    vnegov receipts list --payment ID          receipts of a payment, with their status
    vnegov receipts show ID [--xml F] [--pdf F] one receipt; write its signed XML / PDF
    vnegov receipts usage --from D --to D      usage report per template and series
    vnegov receipts cancel ID --reason R       cancel a receipt with a signed notice
    vnegov receipts issue-pending              issue receipts still queued in the outbox
    vnegov receipts verify FILE | --qr IMAGE   verify a signed receipt or its QR offline
    vnegov receipts verifier-page -o FILE      the offline verification page (server/cli/receipts.py)
    vnegov reconcile-report --agency A ...     the finance unit's papers (server/cli/receipts.py)
    vnegov payments check [--payment ID]...    prove the money invariants per payment (exit 1
                                               naming every payment that breaks one)
    vnegov reconcile STATEMENT... [--format camt053|csv] [--account A] [--as-of T]
                     [--report-dir DIR] [--channel-list CSV --channel platform|gateway]
                                               import, compare, reconcile (progress bar), report
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from server.cli.kit import EXIT_REFUSED, Arg, CliError, VnegovCommand, emit, handler, json_option, progress

__all__ = ["COMMANDS"]


def _say(args: argparse.Namespace, text: str) -> None:
    """A line of a command's text output (nothing with --json: the result comes at the end)."""
    if not args.json_output:
        click.echo(text)

Command = Callable[[argparse.Namespace, Mapping[str, str]], int]


def _stores(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from types import SimpleNamespace

    from server.cli.commands import load_config_for
    from server.payments.module import PaymentsModule
    from server.storage.db import Database

    config = load_config_for(args, environ)
    db = Database(config.storage.url)
    # No job runner: the command does its work itself (the server's jobs are not started).
    ctx = SimpleNamespace(config=config, db=db, clock=lambda: dt.datetime.now(dt.UTC), jobs=None,
                          changes=None)
    module = PaymentsModule(ctx)  # type: ignore[arg-type]  # config, db and clock suffice
    return module, db


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    module, db = _stores(args, environ)
    receipts = list(module.receipts.for_payment(args.payment))
    emit(args, [{"id": r.id, "label": r.data.label, "kind": r.data.kind.value,
                 "status": r.status, "total": r.data.total, "collector": r.data.collector.name}
                for r in receipts],
         "\n".join(f"{r.id}  {r.data.label}  {r.data.kind.value:<11} {r.status:<9} "
                   f"{r.data.total:>12,}  {r.data.collector.name}".replace(",", ".")
                   for r in receipts))
    db.dispose()
    return 0


def cmd_show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from payments.receipts.pdf import render_receipt_pdf

    module, db = _stores(args, environ)
    r = module.receipts.get(args.receipt)
    emit(args, {"id": args.receipt, "label": r.data.label, "status": r.status,
                "total": r.data.total, "payer": r.data.payer.name},
         f"{r.data.label} {r.status} total={r.data.total} payer={r.data.payer.name}")
    if args.xml:
        Path(args.xml).write_bytes(r.xml)
    if args.pdf:
        url = module.qr_page_url() if r.qr_token else \
            module.ctx.config.server.public_url.rstrip("/") + "/payments/receipts/verify"
        Path(args.pdf).write_bytes(render_receipt_pdf(r.data, r.xml, fonts=module.fonts(),
                                                      verify_url=url, qr_token=r.qr_token))
    db.dispose()
    return 0


def cmd_usage(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    module, db = _stores(args, environ)
    report = module.receipts.usage(start=dt.date.fromisoformat(args.start),
                                   end=dt.date.fromisoformat(args.end))
    text = [f"period {report.period_start} .. {report.period_end} (Vietnam calendar days)",
            "template series first    last     used cancelled total_collected"]
    text += [f"{line.template:<8} {line.series:<6} {line.first_number:07d} "
             f"{line.last_number:07d} {line.used:>5} {line.cancelled:>9} "
             f"{line.total_collected:>15}" for line in report.lines]
    emit(args, {"period_start": report.period_start.isoformat(),
                "period_end": report.period_end.isoformat(),
                "lines": [{"template": line.template, "series": line.series,
                           "first_number": line.first_number, "last_number": line.last_number,
                           "used": line.used, "cancelled": line.cancelled,
                           "total_collected": line.total_collected} for line in report.lines]},
         "\n".join(text))
    db.dispose()
    return 0


def cmd_cancel(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    module, db = _stores(args, environ)
    notice = module.receipts.cancel(args.receipt, reason=args.reason, actor="cli",
                                    request_id="cli-cancel", now=dt.datetime.now(dt.UTC))
    if args.xml:
        Path(args.xml).write_bytes(notice)
    emit(args, {"id": args.receipt, "cancelled": True},
         f"receipt {args.receipt} cancelled by a signed notice")
    db.dispose()
    return 0


def cmd_issue_pending(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Issue everything the outbox holds, in batches of 100, with a progress bar."""
    module, db = _stores(args, environ)
    now = dt.datetime.now(dt.UTC)
    issued: list[str] = []
    try:
        with progress("issuing") as bar:
            while batch := module.receipts.pending_issues(now=now):
                done = module.receipts.issue_batch(batch, now=now)
                if not done:  # taken by a running server's worker, or failing: leave them
                    break
                issued += done
                bar.update(advance=len(done))
    finally:
        db.dispose()
    emit(args, {"issued": len(issued)}, f"issued {len(issued)} receipts")
    return 0


def cmd_reconcile(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from payments.money import local_date
    from payments.reconcile import ReportBounds, report_csv, report_pdf, report_xlsx
    from server.payments.common import new_id

    module, db = _stores(args, environ)
    now = dt.datetime.now(dt.UTC)
    as_of = dt.datetime.fromisoformat(args.as_of) if args.as_of else now
    if as_of.tzinfo is None:
        db.dispose()
        raise CliError("--as-of needs a UTC offset", "USAGE")
    result: dict[str, Any] = {"statements": [], "channel_lists": []}
    with progress("importing", len(args.statements), enabled=len(args.statements) > 1) as bar:
        for name in args.statements:
            totals = module.recon.import_statement(Path(name).read_bytes(), fmt=args.format,
                                                   account=args.account, actor="cli",
                                                   request_id="cli-import", now=now)
            result["statements"].append({"file": name, **totals})
            _say(args, f"{name}: {totals['lines']} lines, {totals['new_lines']} new, "
                       f"{totals['continuity_problems']} continuity problems")
            bar.update(advance=1)
    for name in args.channel_list:
        last = local_date(as_of)
        first = dt.date.fromisoformat(args.first_day) if args.first_day else last
        counts = module.recon.compare_channel_list(
            Path(name).read_bytes(), channel=args.channel, first_day=first, last_day=last,
            actor="cli", request_id="cli-channel-list", now=now)
        result["channel_lists"].append({"file": name, "channel": args.channel, **counts})
        _say(args, f"{name} ({args.channel}): " + ", ".join(f"{k} {v}" for k, v in
                                                            sorted(counts.items())))
    run_id = new_id()
    with progress("reconciling") as bar:

        def report(done: int, total: int) -> None:
            bar.update(completed=done, total=total)

        summary = module.recon.reconcile(as_of=as_of, actor="cli", run_id=run_id,
                                         progress=report)
    result.update(run_id=run_id, counts=summary["counts"], amounts=summary["amounts"])
    for outcome, count in sorted(summary["counts"].items()):
        _say(args, f"{outcome:<24} {count:>8} {summary['amounts'][outcome]:>16}")
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
        result["report_dir"] = str(out)
        _say(args, f"reports written to {out}")
    db.dispose()
    if args.json_output:
        emit(args, result, "")
    return 0


def cmd_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from payments.payments.invariants import payments_named
    from server.cli.commands import load_config_for
    from server.payments.checks import check_database, payment_facts
    from server.storage.db import Database

    db = Database(load_config_for(args, environ).storage.url)
    try:
        ids = list(args.payment) or None
        checked = sum(1 for _ in payment_facts(db, ids))
        violations = check_database(db, ids)
    finally:
        db.dispose()
    named = payments_named(violations) if violations else []
    if args.json_output:
        emit(args, {"checked": checked, "violations": [str(v) for v in violations],
                    "payments": [f"payments/{p}" for p in named]}, "")
    else:
        for v in violations:
            click.echo(str(v))
    if violations:
        raise CliError(f"{len(named)} of {checked} payments break a money invariant: "
                       + " ".join(f"payments/{p}" for p in named), "INVARIANT_BROKEN",
                       EXIT_REFUSED)
    if not args.json_output:
        click.echo(f"{checked} payments checked: received = applied + held, each transfer "
                   "accounted once, collected <= received, refunds <= collected, receivables "
                   "never negative")
    return 0


# ------------------------------------------------------------------------ the command tree
@click.group("payments")
def payments() -> None:
    """Payments: prove the money invariants."""


@payments.command("check", cls=VnegovCommand)
@click.option("--payment", multiple=True, help="check only this payment id (repeatable)")
@json_option
@handler
def check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Check every payment's money invariants in the database; exit 1 naming every payment
    that breaks one."""
    return cmd_check(args, environ)


RECEIPT: dict[str, Any] = dict(cls=Arg, help="the receipt's id")


@click.group("receipts")
def receipts() -> None:
    """E-receipts: list, show, usage report, cancel, verify."""


@receipts.command("list", cls=VnegovCommand)
@click.option("--payment", required=True, help="the payment's id")
@json_option
@handler
def list_command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """The receipts of a payment, with their status."""
    return cmd_list(args, environ)


@receipts.command("show", cls=VnegovCommand)
@click.argument("receipt", **RECEIPT)
@click.option("--xml", type=click.Path(dir_okay=False), help="write the signed receipt XML here")
@click.option("--pdf", type=click.Path(dir_okay=False), help="write the receipt PDF here")
@json_option
@handler
def show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """One receipt; optionally write its signed XML and its PDF."""
    return cmd_show(args, environ)


@receipts.command("usage", cls=VnegovCommand)
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="first day, YYYY-MM-DD (Vietnam calendar day)")
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="last day, YYYY-MM-DD")
@json_option
@handler
def usage(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Usage report per receipt template and series."""
    args.start = args.start.date().isoformat()
    args.end = args.end.date().isoformat()
    return cmd_usage(args, environ)


@receipts.command("cancel", cls=VnegovCommand)
@click.argument("receipt", **RECEIPT)
@click.option("--reason", required=True, help="why (printed on the cancellation notice)")
@click.option("--xml", type=click.Path(dir_okay=False),
              help="write the signed cancellation notice here")
@json_option
@handler
def cancel(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Cancel a receipt with a signed notice; exit 1 if it cannot be cancelled."""
    return cmd_cancel(args, environ)


@receipts.command("issue-pending", cls=VnegovCommand)
@json_option
@handler
def issue_pending(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Issue the receipts still queued in the outbox (all of them, in batches, progress bar)."""
    return cmd_issue_pending(args, environ)


@click.command("reconcile", cls=VnegovCommand)
@click.argument("statements", nargs=-1, type=click.Path(exists=True, dir_okay=False), cls=Arg,
                help="bank statements to import first (camt.053 XML or CSV)")
@click.option("--format", default="camt053", show_default=True,
              type=click.Choice(["camt053", "csv"]), help="the statements' format")
@click.option("--account", default="", help="the collection account the statements are for")
@click.option("--as-of", default="", help="reconcile as of this time (ISO 8601 with offset)")
@click.option("--first-day", default="", help="first day of the reports, YYYY-MM-DD")
@click.option("--unit", default="", help="the unit named on the reports")
@click.option("--report-dir", default="", type=click.Path(file_okay=False),
              help="write CSV, XLSX and PDF reports here")
@click.option("--channel-list", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="a gateway's or the platform's transaction list (CSV) to compare")
@click.option("--channel", default="platform", show_default=True,
              type=click.Choice(["platform", "gateway"]), help="whose list --channel-list is")
@json_option
@handler
def reconcile(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Import statements, compare channel lists, reconcile (progress bar) and report."""
    return cmd_reconcile(args, environ)


from server.cli.receipts import reconcile_report, verifier_page, verify_command  # noqa: E402

receipts.add_command(verify_command)  # receipts verify FILE | --qr IMAGE | --text TEXT
receipts.add_command(verifier_page)
COMMANDS = [payments, receipts, reconcile, reconcile_report]
