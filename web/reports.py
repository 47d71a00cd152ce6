"""Reports in the web: the weekly coverage compliance report as a page (prints), JSON,
CSV, XLSX and PDF — each scoped: a town operator gets only its own town's figures."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch.accounts import Scope
from dispatch.clock import SHANGHAI
from dispatch.errors import InvalidInput
from logs import archive, coverage, periods, report_files
from schedules import views
from schedules.planner import resolve_district
from schedules.workdays import IsoWeek

from .appkeys import CLOCK, DB
from .auth import scope_of
from .printing import render_html, render_pdf
from .render import render

FORMATS = {
    "json": "application/json",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "html": "text/html",
}


def last_week(today: date) -> IsoWeek:
    return IsoWeek.containing(today).previous()


def build(
    session: Session, scope: Scope | None, week: IsoWeek, district: str | None, now: datetime
) -> coverage.WeeklyReport:
    """The report for the scope's district (an admin names one, or there is only one),
    as it stands at `now`: a week not yet ended is in progress."""
    if scope is None:
        code = resolve_district(session, district)
        return coverage.weekly_report(session, code, week, now=now)
    code = views.district_of_scope(session, scope, district)
    return coverage.weekly_report(session, code, week, scope=scope, now=now)


def weekly_bytes(report: coverage.WeeklyReport, fmt: str) -> bytes:
    """The report in one of FORMATS (blocking for PDF: run it off the loop)."""
    if fmt == "json":
        return json.dumps(report.as_dict(), ensure_ascii=False, indent=2).encode()
    if fmt in ("csv", "xlsx"):
        return report_files.weekly_file(report, fmt)
    if fmt == "html":
        return render_html("weekly_print.html", r=report, standalone=True).encode()
    return render_pdf("weekly_print.html", r=report, standalone=True)


async def weekly(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/reports/weekly?week=2026-W47&district=CODE&format=json|csv|xlsx|pdf|html
    and the page /reports/weekly (format html inside the site's frame)."""
    scope = scope_of(request)
    raw = request.query.get("week")
    clock = request.app[CLOCK]
    week = IsoWeek.parse(raw) if raw else last_week(clock.today())
    fmt = request.query.get("format", "json" if request.path.startswith("/api/") else "page")
    if fmt not in FORMATS and fmt != "page":
        raise InvalidInput("format", f"one of {', '.join(FORMATS)}")
    report = await request.app[DB].read(
        build, scope, week, request.query.get("district"), clock.now()
    )
    if fmt == "page":
        return render(request, "weekly.html", r=report, week=week, standalone=False)
    if fmt == "json":
        return web.json_response(report.as_dict())
    data = await asyncio.to_thread(weekly_bytes, report, fmt)
    name = f"weekly-{report.view}-{report.week}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    return web.Response(body=data, content_type=FORMATS[fmt], headers=disposition)


# report kind → (period kind for periods.parse_period, query parameter, example)
PERIOD_PARAM = {"monthly": ("month", "month", "2026-11"),
                "quarterly": ("quarter", "quarter", "2026-Q4"),
                "half-year": ("half", "half", "2026-H2")}  # fmt: skip


def build_period(
    session: Session, scope: Scope | None, kind: str, label: str, district: str | None,
    town: str | None, now: datetime,
) -> periods.PeriodReport:  # fmt: skip
    period = periods.parse_period(PERIOD_PARAM[kind][0], label)
    if scope is None:
        code = resolve_district(session, district)
    else:
        code = views.district_of_scope(session, scope, district)
    return periods.period_report(session, code, period, town=town, scope=scope, now=now)


def english(report: Any) -> dict[str, str]:
    """A period report's title, label and narrative in English, from its figures."""
    return {"title": periods.title_en(report.kind, report.period),
            "label": periods.label_en(report.kind, report.period),
            "narrative": periods.narrative_en(report)}  # fmt: skip


def period_bytes(report: periods.PeriodReport, fmt: str, as_of: date) -> bytes:
    """The report as a file; its bulletin is issued `as_of` (the clock's day)."""
    if fmt == "json":
        return json.dumps(report.as_dict(), ensure_ascii=False, indent=2).encode()
    if fmt == "html":
        return render_html("period_print.html", r=report, as_of=as_of).encode()
    if fmt in ("csv", "xlsx"):
        return report_files.period_file(report, fmt)
    return render_pdf("period_print.html", r=report, as_of=as_of)


async def period(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/reports/monthly?month=2026-11, …/quarterly?quarter=2026-Q4&town=CODE,
    …/half-year?half=2026-H2 (&format=json|html|pdf), and the same under /reports/."""
    scope = scope_of(request)
    kind = request.match_info["kind"]
    _kind, param, example = PERIOD_PARAM[kind]
    label = request.query.get(param)
    if not label:
        raise InvalidInput(param, f"required, e.g. {example}")
    fmt = request.query.get("format", "json" if request.path.startswith("/api/") else "page")
    if fmt not in FORMATS and fmt != "page":
        raise InvalidInput("format", f"one of {', '.join(FORMATS)}")
    district, town = request.query.get("district"), request.query.get("town")
    report = await request.app[DB].read(build_period, scope, kind, label, district, town,
                                        request.app[CLOCK].now())  # fmt: skip
    if fmt == "page":
        return render(request, "period.html", r=report, request_path=request.path_qs,
                      en=english(report))  # fmt: skip
    if fmt == "json":
        return web.json_response(report.as_dict())
    data = await asyncio.to_thread(period_bytes, report, fmt, request.app[CLOCK].today())
    disposition = {"Content-Disposition": f'attachment; filename="{kind}-{report.period}.{fmt}"'}
    return web.Response(body=data, content_type=FORMATS[fmt], headers=disposition)


def latest_links(scope: Scope, today: date) -> list[tuple[str, str]]:
    """(report kind, path) of this week (in progress), and of the latest ended period of
    every kind — the last whose last week has ended (`periods.period_of_week`) — for the
    reader's own area (a town's or village's quarterly report is its town's)."""
    this_week = IsoWeek.containing(today)
    last = this_week.previous()

    def ended(kind: str) -> periods.Period:
        period = periods.period_of_week(kind, last)
        return period if period.weeks()[-1] == last else period.previous()

    month, quarter, half = ended("month"), ended("quarter"), ended("half")
    parts = (scope.root_path or "").strip("/").split("/")
    town = f"&town={parts[1]}" if len(parts) >= 2 else ""
    return [
        ("weekly-current", f"/reports/weekly?week={this_week}"),
        ("weekly", f"/reports/weekly?week={last}"),
        ("monthly", f"/reports/monthly?month={month.code}"),
        ("quarterly", f"/reports/quarterly?quarter={quarter.code}{town}"),
        ("half-year", f"/reports/half-year?half={half.code}"),
    ]


async def stored_list(request: web.Request) -> web.Response:
    """The reports produced on time, newest period first."""
    scope = scope_of(request)
    rows = await request.app[DB].read(archive.list_for, scope)
    if request.path.startswith("/api/"):
        return web.json_response({"reports": [r.summary() for r in rows]})
    links = latest_links(scope, request.app[CLOCK].today())
    return render(request, "reports.html", rows=rows, links=links, shanghai=SHANGHAI, utc=UTC)


class Figures(dict[str, Any]):
    """A stored report's JSON read back with attribute access (`r.towns[0].name`), so the
    templates and the CSV/XLSX writers take it as they take a live report."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def figures(value: Any) -> Any:
    if isinstance(value, dict):
        return Figures({k: figures(v) for k, v in value.items()})
    if isinstance(value, list):
        return [figures(v) for v in value]
    return value


def older_stored(kind: str, data: Figures) -> Figures:
    """A report stored before a field existed reads as it would have: an ended week."""
    if kind == "weekly":
        data.setdefault("state", "exempt" if data.get("exempt") else "ended")
        data.setdefault("pending", None)
        data.setdefault("not_planned_days", [])
        return data
    for w in data.get("weeks", []):
        w.setdefault("state", "exempt" if w.get("exempt") else "ended")
    data.setdefault("uncounted_weeks", data.get("exempt_weeks", 0))
    return data


def stored_bytes(kind: str, data: Any, fmt: str, as_of: date) -> bytes:
    """A stored report in one of FORMATS but JSON (blocking for PDF: run it off the loop);
    a period report's bulletin issued `as_of`."""
    if kind == "weekly":
        if fmt in ("csv", "xlsx"):
            return report_files.weekly_file(data, fmt)
        if fmt == "html":
            return render_html("weekly_print.html", r=data, standalone=True).encode()
        return render_pdf("weekly_print.html", r=data, standalone=True)
    if fmt in ("csv", "xlsx"):
        return report_files.period_file(data, fmt)
    if fmt == "html":
        return render_html("period_print.html", r=data, as_of=as_of).encode()
    return render_pdf("period_print.html", r=data, as_of=as_of)


def live_path(row: archive.StoredReport, fmt: str | None) -> str:
    """The live report of a stored one's kind and period, for a scope narrower than its
    district (the live report is cut to the reader's scope)."""
    if row.kind == "weekly":
        path = f"/reports/weekly?week={row.label}"
    else:
        label, _at, town = row.label.partition("@")
        path = f"/reports/{row.kind}?{PERIOD_PARAM[row.kind][1]}={label}"
        if town:
            path += f"&town={town}"
    return path + (f"&format={fmt}" if fmt else "")


async def stored_one(request: web.Request) -> web.Response:
    """A stored report, exactly as produced (JSON, with `X-Content-SHA256`), in any of
    FORMATS (`?format=`), or shown as the page. A scope narrower than the district is sent
    to the live report of the same period, cut to its scope."""
    scope = scope_of(request)
    try:
        report_id = int(request.match_info["report_id"])
    except ValueError:
        raise InvalidInput("report_id", "must be a number") from None
    fmt = request.query.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput("format", f"one of {', '.join(FORMATS)}")
    row = await request.app[DB].read(archive.get, scope, report_id)
    whole = scope.root_path is None or scope.root_path == row.district_code + "/"
    api = request.path.startswith("/api/")
    if not whole:
        raise web.HTTPFound(("/api/v1" if api else "") + live_path(row, fmt))
    if fmt == "json" or (api and fmt is None):
        return web.Response(text=row.body, content_type="application/json",
                            headers={"X-Content-SHA256": row.sha256})  # fmt: skip
    data = older_stored(row.kind, figures(json.loads(row.body)))
    if fmt is not None:
        body = await asyncio.to_thread(stored_bytes, row.kind, data, fmt,
                                       request.app[CLOCK].today())  # fmt: skip
        name = f"{row.kind}-{row.label.replace('@', '-')}.{fmt}"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        return web.Response(body=body, content_type=FORMATS[fmt], headers=disposition)
    if row.kind != "weekly":
        return render(request, "period.html", r=data, request_path=f"/reports/{row.id}?",
                      en=english(data))  # fmt: skip
    week = IsoWeek.parse(row.label)
    return render(request, "weekly.html", r=data, week=week, standalone=False,
                  files_path=f"/reports/{row.id}?")  # fmt: skip


def routes() -> list[web.RouteDef]:
    return [
        web.get("/reports", stored_list),
        web.get("/reports/{kind:monthly|quarterly|half-year}", period),
        web.get("/api/v1/reports/{kind:monthly|quarterly|half-year}", period),
        web.get("/reports/{report_id:\\d+}", stored_one),
        web.get("/api/v1/reports", stored_list),
        web.get("/api/v1/reports/{report_id:\\d+}", stored_one),
        web.get("/reports/weekly", weekly),
        web.get("/api/v1/reports/weekly", weekly),
    ]
