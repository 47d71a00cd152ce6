"""`dispatch journal show|verify|export`: the journal commands of the CLI."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from dispatch import calls, centres, clock, spreadsheets
from dispatch.clock import SHANGHAI, today
from dispatch.errors import InvalidInput
from dispatch.settings import Settings
from logs import exports, journal, seal
from logs.history import HistorySummary, generate_history
from schedules.workdays import IsoWeek

from .report_table import weekly_table
from .schema import in_session

EXIT_BROKEN = 1  # verify found a problem (2 stays for usage errors)


def register_demo(demo_sub: Any, common: argparse.ArgumentParser) -> None:
    """`dispatch demo history`: a year (or N weeks) of realistic calls and issues."""
    helptext = "fill past weeks with calls, attendance and issues"
    history = demo_sub.add_parser("history", parents=[common], help=helptext)
    history.add_argument("--weeks", type=int, default=52)
    history.add_argument("--end-week", help="the last week to fill (default: last week)")
    history.add_argument("--seed", type=int, default=2026)
    history.add_argument("--district", action="append", metavar="CODE",
                         help="only these districts (default: all)")  # fmt: skip
    history.set_defaults(run=cmd_history)


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.weeks <= 260:
        raise InvalidInput("--weeks", "from 1 to 260")
    end = (IsoWeek.parse(args.end_week) if args.end_week
           else IsoWeek.containing(today()).previous())  # fmt: skip

    def run(s: Session) -> Any:
        return generate_history(s, weeks=args.weeks, end_week=end, seed=args.seed,
                                districts=args.district, commit=True,
                                progress=lambda line: print(line, file=sys.stderr))  # fmt: skip

    summary = _with_db(settings, run)
    print("\n".join(history_lines(summary, end)))
    return 0


def history_lines(summary: HistorySummary, end: IsoWeek) -> list[str]:
    """What `demo history` did, as a person reads it (Chinese, then English)."""
    first = end
    for _ in range(summary.weeks - 1):
        first = first.previous()
    return [
        f"历史 / history: {summary.weeks} 周 weeks ({first} – {end}), "
        f"{summary.districts} 个区 district(s)",
        f"  补全的区周 district-weeks played out: {summary.rota_weeks}, "
        f"已有历史而跳过 skipped (already had history): {summary.skipped}",
        f"  时段 slots: {summary.slots} ({summary.makeups} 补调度 make-ups), "
        f"调度 calls: {summary.calls}, 事件 events: {summary.events}, "
        f"问题 issues: {summary.issues}",
        f"  用时 took {summary.seconds:.1f} s ({summary.calls_per_second():.0f} calls/s)",
    ]


def register_reports(sub: Any, common: argparse.ArgumentParser) -> None:
    report = sub.add_parser("report", parents=[common], help="coverage and analysis reports")
    rsub = report.add_subparsers(dest="report_command", required=True)
    weekly = rsub.add_parser("weekly", parents=[common], help="weekly coverage compliance")
    weekly.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: last week)")
    weekly.add_argument("--district", metavar="CODE")
    weekly.add_argument("--format", choices=["table", "html", "csv", "xlsx", "pdf", "json"],
                        default="table", help="table: readable text (default); json for scripts")
    weekly.add_argument("-o", "--output", type=Path, help="default: standard output (not pdf/xlsx)")
    weekly.set_defaults(run=cmd_report_weekly)
    for kind, flag, example in (("monthly", "--month", "2026-11"),
                                ("quarterly", "--quarter", "2026-Q4"),
                                ("half-year", "--half", "2026-H2")):  # fmt: skip
        p = rsub.add_parser(
            kind, parents=[common], help=f"the {kind} report, e.g. {flag} {example}"
        )
        p.add_argument(flag, dest="label", required=True, metavar=example)
        p.add_argument("--district", metavar="CODE")
        if kind == "quarterly":
            p.add_argument("--town", metavar="CODE", help="the town the report is for")
        p.add_argument("--format", choices=["html", "csv", "xlsx", "pdf", "json"], default="json")
        p.add_argument("-o", "--output", type=Path, help="default: standard output (not pdf/xlsx)")
        p.set_defaults(run=cmd_report_period, kind=kind)


def cmd_report_weekly(args: argparse.Namespace, settings: Settings) -> int:
    from .reports import build, last_week, weekly_bytes  # loads WeasyPrint: only when asked

    now = clock.utcnow()
    week = IsoWeek.parse(args.week) if args.week else last_week(clock.today(now))
    _check_output(args)
    report = _with_db(settings, lambda s: build(s, None, week, args.district, now))
    if args.format == "table":
        data = weekly_table(report).encode()
    else:
        data = weekly_bytes(report, args.format)
    return _write(args, data, f"weekly report {report.week}")


def cmd_report_period(args: argparse.Namespace, settings: Settings) -> int:
    from .reports import build_period, period_bytes  # loads WeasyPrint: only when asked

    _check_output(args)
    town = getattr(args, "town", None)
    now = clock.utcnow()  # the command's clock is the real one
    report = _with_db(settings, lambda s: build_period(s, None, args.kind, args.label,
                                                       args.district, town, now))  # fmt: skip
    data = period_bytes(report, args.format, clock.local_date(now))
    return _write(args, data, f"{report.title} {report.label}")


def _check_output(args: argparse.Namespace) -> None:
    if args.output is None and args.format in ("pdf", "xlsx"):
        raise InvalidInput("-o", f"a {args.format} file needs -o FILE")


def _write(args: argparse.Namespace, data: bytes, what: str) -> int:
    """To -o FILE (a message on stderr), or text to standard output."""
    if args.output is None:
        sys.stdout.write(data.decode("utf-8-sig"))
        return 0
    try:
        args.output.write_bytes(data)
    except OSError as exc:
        raise InvalidInput("-o", f"cannot write {args.output}: {exc.strerror}") from None
    print(f"{what} written to {args.output}", file=sys.stderr)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    j = sub.add_parser("journal", parents=[common], help="dispatch journals (调度日志)")
    jsub = j.add_subparsers(dest="journal_command", required=True)
    show = jsub.add_parser("show", parents=[common], help="one call's journal as JSON")
    show.add_argument("call_id", type=int)
    show.set_defaults(run=cmd_show)
    verify = jsub.add_parser("verify", parents=[common],
                             help="check every sealed journal's hash chain")  # fmt: skip
    verify.add_argument("--district", metavar="CODE")
    verify.add_argument(
        "--head", action="append", default=[], metavar="CODE:SEQ:SHA256",
        help="a chain head published earlier, which must still be there",
    )  # fmt: skip
    verify.set_defaults(run=cmd_verify)
    export = jsub.add_parser("export", parents=[common], help="a week's journals as a file")
    export.add_argument("--week", required=True, help="ISO week, e.g. 2026-W47")
    export.add_argument("--format", choices=["pdf", "xlsx", "csv"], required=True)
    export.add_argument("-o", "--output", type=Path, required=True)
    export.add_argument("--under", metavar="CODE", help="only calls of this centre's subtree")
    export.set_defaults(run=cmd_export)


def _with_db(settings: Settings, fn: Callable[[Session], Any]) -> Any:
    return in_session(settings.db_url, fn)


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    data = _with_db(settings, lambda s: journal.load_journal(s, args.call_id).as_dict())
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


def _heads(items: list[str]) -> dict[str, tuple[int, str]]:
    heads = {}
    for item in items:
        parts = item.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 64:
            raise InvalidInput("--head", f"write CODE:SEQ:SHA256, got {item!r}")
        heads[parts[0]] = (int(parts[1]), parts[2])
    return heads


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    published = _heads(args.head)

    def run(s: Session) -> seal.VerifyReport:
        district = None
        if args.district:
            level = centres.Level.district
            district = centres.get_at_level(s, args.district, level, "--district").code
        return seal.verify_chain(s, district, published=published or None)

    report = _with_db(settings, run)
    print("\n".join(report.lines()))
    return 0 if report.ok else EXIT_BROKEN


def week_journals(s: Session, week: IsoWeek, under: str | None) -> list[journal.Journal]:
    """Every journal of calls launched in the week (Asia/Shanghai), optionally in a subtree."""
    start = datetime.combine(week.monday, time(), SHANGHAI)
    stmt = select(calls.Call).where(
        calls.Call.created_at >= start, calls.Call.created_at < start + timedelta(days=7)
    )
    found = []
    path = centres.get(s, centres.parse_code(under, "--under")).path if under else None
    for call in s.exec(stmt.order_by(col(calls.Call.id))):
        if path is None or centres.get(s, call.caller_code).path.startswith(path):
            found.append(journal.load_journal(s, call.id or 0))
    return found


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    week = IsoWeek.parse(args.week)
    found = _with_db(settings, lambda s: week_journals(s, week, args.under))
    if args.format == "pdf":
        from .printing import render_pdf  # WeasyPrint loads only when a PDF is asked for

        data = render_pdf("journal_print.html", journals=found, shanghai=SHANGHAI)
    else:
        rows = exports.journal_rows(found)
        title = f"调度日志 {week}"
        if args.format == "xlsx":
            data = spreadsheets.xlsx_ledger(rows, title, columns=exports.COLUMNS, sheet="调度日志")
        else:
            data = spreadsheets.csv_file(rows, exports.COLUMNS)
    try:
        args.output.write_bytes(data)
    except OSError as exc:
        raise InvalidInput("-o", f"cannot write {args.output}: {exc.strerror}") from None
    print(f"{len(found)} journal(s) of {week} written to {args.output}", file=sys.stderr)
    return 0
