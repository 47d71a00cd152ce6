"""`dispatch rota|calendar|policy|blackout …`: the schedule commands of the CLI."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlmodel import Session

from dispatch import centres, clock
from dispatch.clock import SHANGHAI
from dispatch.errors import InvalidInput, NotFound
from dispatch.settings import Settings
from schedules import ics, planner, plans, policy, workdays
from schedules.slots import KIND_LABELS
from schedules.workdays import IsoWeek

from . import calendar_text
from .schema import in_session

WEEKDAYS_ZH = "一二三四五六日"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    rota = sub.add_parser("rota", parents=[common], help="weekly coverage rota")
    rsub = rota.add_subparsers(dest="rota_command", required=True)
    for name, run, text in (
        ("build", cmd_rota_build, "build, store and print a week's rota"),
        ("show", cmd_rota_show, "print a stored week"),
    ):
        p = rsub.add_parser(name, parents=[common], help=text)
        p.add_argument("--week", required=True, help="ISO week, e.g. 2026-W41")
        p.add_argument("--district", metavar="CODE", help="needed when there are several")
        p.add_argument("--format", choices=["table", "json", "ics"], default="table")
        if name == "build":
            p.add_argument(
                "--seed",
                type=int,
                help="spot-check seed (default: the week's recorded one, else random)",
            )
        p.set_defaults(run=run)

    cal = sub.add_parser("calendar", parents=[common], help="working-day calendar")
    csub = cal.add_subparsers(dest="calendar_command", required=True)
    show = csub.add_parser("show", parents=[common], help="a year's working days")
    show.add_argument("--year", type=int, required=True)
    show.add_argument("--lang", choices=["zh", "en"], default="zh")
    show.set_defaults(run=cmd_calendar_show)
    cset = csub.add_parser("set", parents=[common], help="override one day")
    cset.add_argument("day", type=_date)
    kind = cset.add_mutually_exclusive_group(required=True)
    kind.add_argument("--workday", action="store_true")
    kind.add_argument("--day-off", action="store_true")
    cset.add_argument("--note", default="")
    cset.set_defaults(run=cmd_calendar_set)
    cclear = csub.add_parser("clear", parents=[common], help="remove a day's override")
    cclear.add_argument("day", type=_date)
    cclear.set_defaults(run=cmd_calendar_clear)

    pol = sub.add_parser("policy", parents=[common], help="the dispatch policy")
    psub = pol.add_subparsers(dest="policy_command", required=True)
    pshow = psub.add_parser("show", parents=[common], help="the policy in force")
    pshow.add_argument("--district", metavar="CODE", help="default: the policy for all")
    pshow.set_defaults(run=cmd_policy_show)
    pset = psub.add_parser("set", parents=[common], help="change settings: NAME=JSON …")
    pset.add_argument("assignments", nargs="+", metavar="NAME=VALUE")
    pset.add_argument("--district", metavar="CODE", help="only for this district")
    pset.set_defaults(run=cmd_policy_set)
    preset = psub.add_parser("reset", parents=[common], help="back to the default: NAME …")
    preset.add_argument("names", nargs="+")
    preset.add_argument("--district", metavar="CODE")
    preset.set_defaults(run=cmd_policy_reset)
    pcall = psub.add_parser("caller", parents=[common], help="a caller's consoles and windows")
    pcall.add_argument("centre", metavar="CODE")
    pcall.add_argument("--consoles", type=int, required=True)
    pcall.add_argument("--windows", required=True, help="e.g. 09:00-11:30,14:30-17:30")
    pcall.set_defaults(run=cmd_policy_caller)

    black = sub.add_parser("blackout", parents=[common], help="times a centre cannot call")
    bsub = black.add_subparsers(dest="blackout_command", required=True)
    badd = bsub.add_parser("add", parents=[common], help="add a blackout")
    badd.add_argument("centre", metavar="CODE")
    which = badd.add_mutually_exclusive_group(required=True)
    which.add_argument("--weekday", type=int, help="0 = Monday … 6 = Sunday")
    which.add_argument("--market-days", help="last digits of market days, e.g. 1,4,7 (赶场日)")
    which.add_argument("--from", dest="start", type=_date, help="first day of a date range")
    badd.add_argument("--to", dest="end", type=_date, help="last day of the date range")
    badd.add_argument("--note", default="")
    badd.set_defaults(run=cmd_blackout_add)
    blist = bsub.add_parser("list", parents=[common], help="list blackouts")
    blist.add_argument("--under", metavar="CODE")
    blist.set_defaults(run=cmd_blackout_list)
    brm = bsub.add_parser("remove", parents=[common], help="remove a blackout")
    brm.add_argument("id", type=int)
    brm.set_defaults(run=cmd_blackout_remove)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-10-01: {text!r}") from None


def _who() -> str:
    return f"cli:{getpass.getuser()}"


def _with_db(settings: Settings, fn: Callable[[Session], Any]) -> Any:
    return in_session(settings.db_url, fn)


def _district(session: Session, code: str | None) -> str:
    return planner.resolve_district(session, code, "--district")


# --- rota ----------------------------------------------------------------------------


def cmd_rota_build(args: argparse.Namespace, settings: Settings) -> int:
    week = IsoWeek.parse(args.week)
    today = clock.today()

    def run(s: Session) -> tuple[str, list[str]]:
        district = _district(s, args.district)
        stored = plans.get_week(s, district, week)
        slots = plans.week_slots(s, stored.id or 0) if stored else []
        before = {x.uid: (x.start, x.end, x.console) for x in slots}
        record = planner.build_week(s, district, week, seed=args.seed, by=_who())
        after = plans.week_slots(s, record.id or 0, cancelled=True)
        return _render(s, record, args.format), build_note(week, record, before, after, today)

    text, note = _with_db(settings, run)
    print(text, end="")
    print("\n".join(note), file=sys.stderr)
    return 0


def build_note(
    week: IsoWeek,
    record: plans.RotaWeek,
    before: dict[str, Any],
    after: list[plans.RotaSlot],
    today: date,
) -> list[str]:
    """What a build did to the week's stored slots, for a person (standard error)."""
    live = [x for x in after if x.status != plans.CANCELLED]
    if not before and record.revision == 1:
        lines = [f"{week}: 新建 {len(live)} 个时段 / built {len(live)} slots"]
    else:
        kept = [x for x in live if x.uid in before]
        moved = sum(1 for x in kept if before[x.uid] != (x.start, x.end, x.console))
        dropped = sum(1 for x in after if x.status == plans.CANCELLED and x.uid in before)
        lines = [
            f"{week}: 重建为第 {record.revision} 版 / rebuilt as revision {record.revision}: "
            f"保留 kept {len(kept)} (改时 moved {moved}, SEQUENCE +1), "
            f"新增 added {len(live) - len(kept)}, 取消 cancelled {dropped} "
            "(日历订阅中标为已取消 / STATUS:CANCELLED in calendar feeds)"
        ]
    days = week.days()
    if days[0] <= today <= days[-1]:
        lines.append("本周已开始：从下一个工作日起安排，已过的工作日不安排 / the week is under "
                     "way: planned from the next working day, days already past are not "
                     "planned")  # fmt: skip
    elif days[-1] < today:
        lines.append("该周已结束：时段都在过去，不会响铃，运行中的调度器会按未覆盖结算 / the week "
                     "has ended: its slots lie in the past, none rings, and a running scheduler "
                     "settles them as missed")  # fmt: skip
    return lines


def cmd_rota_show(args: argparse.Namespace, settings: Settings) -> int:
    week = IsoWeek.parse(args.week)

    def run(s: Session) -> str:
        return _render(s, plans.require_week(s, _district(s, args.district), week), args.format)

    print(_with_db(settings, run), end="")
    return 0


def _names(session: Session, district: str) -> dict[str, str]:
    root = centres.get(session, district)
    return {c.code: c.name for c in centres.all_below(session, root, include_self=True)}


def _render(session: Session, record: plans.RotaWeek, fmt: str) -> str:
    slots = plans.week_slots(session, record.id or 0, cancelled=fmt == "ics")
    if fmt == "json":
        days = workdays.load_calendar(session).workdays(IsoWeek.parse(record.week))
        data = plans.week_json(record, slots, workdays=days)
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    names = _names(session, record.district_code)
    if fmt == "ics":
        title = f"{names[record.district_code]} {record.week} 调度安排"
        return ics.feed(slots, names, title=title, join_url="/calls/slot/{slot_id}").decode()
    days = workdays.load_calendar(session).workdays(IsoWeek.parse(record.week))
    return render_table(record, slots, names, days)


def render_table(
    record: plans.RotaWeek,
    slots: list[plans.RotaSlot],
    names: dict[str, str],
    days: list[date] | None = None,
) -> str:
    lines = [
        f"{record.week}  {names.get(record.district_code, '')} ({record.district_code})"
        f"  revision {record.revision}, seed {record.seed}"
    ]
    if record.exempt:
        lines.append("本周无工作日，免于调度 — no working day this week: exempt")
    lines.append("working days: " + ", ".join(plans.all_workdays(record, days or [])))
    passed = plans.not_planned_days(record, days or [])
    if passed:
        lines.append("建周前已过，未安排 — not planned (built mid-week): " + ", ".join(passed))
    day = None
    for slot in slots:
        start, end = slot.start.astimezone(SHANGHAI), slot.end.astimezone(SHANGHAI)
        if start.date() != day:
            day = start.date()
            lines.append(f"\n周{WEEKDAYS_ZH[day.weekday()]} {day.isoformat()}")
        who = names.get(slot.callees[0], slot.callees[0]) if slot.callees else "-"
        more = f" +{len(slot.callees) - 1}" if len(slot.callees) > 1 else ""
        flags = "".join(
            (
                " [reserve]" if slot.reserve else "",
                " [hidden]" if slot.hidden else "",
                f" [{slot.status}]" if slot.status != plans.PLANNED else "",
            )
        )
        lines.append(
            f"  {start:%H:%M}-{end:%H:%M}  {names.get(slot.caller_code, slot.caller_code)}"
            f" #{slot.console}  {KIND_LABELS.get(slot.kind, (slot.kind,))[0]}  {who}{more}{flags}"
        )
    lines.append(f"\n{len(slots)} slots")
    if record.unplaced:
        lines.append(f"UNPLACED ({len(record.unplaced)}):")
        lines += [f"  {u['caller']} → {u['callee']}: {u['reason']}" for u in record.unplaced]
    for warning in record.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines) + "\n"


# --- calendar ------------------------------------------------------------------------


def cmd_calendar_show(args: argparse.Namespace, settings: Settings) -> int:
    if not 2004 <= args.year <= 2100:
        raise InvalidInput("--year", "must be from 2004 to 2100")
    cal = _with_db(settings, workdays.load_calendar)
    print(calendar_text.render_year(cal, args.year, args.lang))
    return 0


def cmd_calendar_set(args: argparse.Namespace, settings: Settings) -> int:
    _with_db(
        settings, lambda s: workdays.set_override(s, args.day, args.workday, args.note, _who())
    )
    print(f"{args.day}: {'working day' if args.workday else 'day off'} (override)")
    return 0


def cmd_calendar_clear(args: argparse.Namespace, settings: Settings) -> int:
    if not _with_db(settings, lambda s: workdays.clear_override(s, args.day)):
        raise NotFound("calendar override", args.day.isoformat())
    print(f"{args.day}: override removed")
    return 0


# --- policy and blackouts ------------------------------------------------------------


def cmd_policy_show(args: argparse.Namespace, settings: Settings) -> int:
    def run(s: Session) -> dict[str, Any]:
        code = _district(s, args.district) if args.district else None
        return policy.policy_for(s, code).as_dict()

    print(json.dumps(_with_db(settings, run), ensure_ascii=False, indent=2))
    return 0


def _assignments(items: list[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise InvalidInput(item, "write NAME=VALUE, e.g. district_consoles=3")
        try:
            changes[name] = json.loads(raw)
        except ValueError:
            changes[name] = raw  # plain words like meeting / inspection
    return changes


def cmd_policy_set(args: argparse.Namespace, settings: Settings) -> int:
    changes = _assignments(args.assignments)

    def run(s: Session) -> dict[str, Any]:
        code = _district(s, args.district) if args.district else None
        return policy.set_policy(s, code, changes, _who()).as_dict()

    result = _with_db(settings, run)
    print(json.dumps({k: result[k] for k in changes}, ensure_ascii=False))
    return 0


def cmd_policy_reset(args: argparse.Namespace, settings: Settings) -> int:
    def run(s: Session) -> dict[str, Any]:
        code = _district(s, args.district) if args.district else None
        return policy.reset_policy(s, code, args.names, _who()).as_dict()

    result = _with_db(settings, run)
    print(json.dumps({k: result[k] for k in args.names}, ensure_ascii=False))
    return 0


def parse_window_list(text: str) -> list[list[str]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        start, sep, end = part.partition("-")
        if not sep:
            raise InvalidInput("--windows", f"write HH:MM-HH:MM, got {part!r}")
        out.append([start.strip(), end.strip()])
    return out


def cmd_policy_caller(args: argparse.Namespace, settings: Settings) -> int:
    windows = parse_window_list(args.windows)
    _with_db(
        settings, lambda s: policy.set_caller_config(s, args.centre, args.consoles, windows, _who())
    )
    print(f"{args.centre}: {args.consoles} console(s), windows {args.windows}")
    return 0


def cmd_blackout_add(args: argparse.Namespace, settings: Settings) -> int:
    spec: dict[str, Any] = {"note": args.note}
    if args.weekday is not None:
        spec.update(kind="weekday", weekday=args.weekday)
    elif args.market_days:
        try:
            digits = [int(d) for d in args.market_days.split(",") if d.strip()]
        except ValueError:
            raise InvalidInput("--market-days", "digits separated by commas, e.g. 1,4,7") from None
        spec.update(kind="market_days", day_digits=digits)
    else:
        if args.end is None:
            raise InvalidInput("--to", "a date range needs --to")
        spec.update(kind="date_range", start=args.start.isoformat(), end=args.end.isoformat())
    record = _with_db(settings, lambda s: policy.add_blackout(s, args.centre, spec, _who()))
    print(f"blackout {record.id} added for {record.centre_code}")
    return 0


def cmd_blackout_list(args: argparse.Namespace, settings: Settings) -> int:
    def run(s: Session) -> list[dict[str, Any]]:
        path = (
            centres.get(s, centres.parse_code(args.under, "--under")).path if args.under else None
        )
        return [r.as_dict() for r in policy.blackouts_under(s, path)]

    for row in _with_db(settings, run):
        print(json.dumps(row, ensure_ascii=False))
    return 0


def cmd_blackout_remove(args: argparse.Namespace, settings: Settings) -> int:
    _with_db(settings, lambda s: policy.remove_blackout(s, args.id))
    print(f"blackout {args.id} removed")
    return 0
