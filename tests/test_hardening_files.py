"""Files (issue 11, item 7): exports never carry a formula (OWASP CSV injection), imports
are bounded — rows, the problem list, and how far an XLSX may unpack."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openpyxl import Workbook, load_workbook
from sqlmodel import select

from dispatch import centre_files, spreadsheets
from dispatch.centre_files import MAX_PROBLEMS, export_centres, import_centres
from dispatch.centres import Centre
from dispatch.db import Database
from dispatch.errors import ImportRejected
from dispatch.settings import Settings
from dispatch.spreadsheets import FORMULA_STARTS, neutralise_cell, restore_cell
from web.schema import open_database

from conftest import Cast, bearer, make_token

HEADER = (
    "code,name,level,parent_code,class,target_year,director_name,director_phone,grid_workers,active"
)
DISTRICT = "511703000000"
HOSTILE = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1", "'=1", "''+x"]


def csv_file(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


def starts_a_formula(cell: str) -> bool:
    return cell.startswith(FORMULA_STARTS)


def test_neutralising_is_exact_to_undo() -> None:
    for value in [*HOSTILE, "张三", "'plain", "", "a=b", "-"]:
        inert = neutralise_cell(value)
        assert not starts_a_formula(inert)
        assert restore_cell(inert) == value


async def test_a_villages_formula_reaches_the_districts_csv_inert(
    client: TestClient, demo_settings: Settings, cast: Cast
) -> None:
    village = bearer(make_token(demo_settings, cast.village_a1))
    for name in HOSTILE[:4]:
        resp = await client.patch(f"/api/v1/centers/{cast.village_a1}", headers=village,
                                  json={"director": {"name": name, "phone": ""}})  # fmt: skip
        assert resp.status == 200, await resp.text()
        district = bearer(make_token(demo_settings, cast.district))
        resp = await client.get("/api/v1/centers/export?format=csv", headers=district)
        assert resp.status == 200
        rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
        assert not [cell for row in rows for cell in row if starts_a_formula(cell)]
        mine = next(row for row in rows if row[0] == cast.village_a1)
        assert mine[6] == "'" + name


def test_exports_round_trip_and_xlsx_cells_are_never_formulas(db: Database, tmp_path: Any) -> None:
    workers = f"{HOSTILE[3]}:13800000000"
    lines = [f"{DISTRICT},{HOSTILE[1]},district,,demonstration,,{HOSTILE[0]},,{workers},1"]
    with db.session() as s:
        import_centres(s, csv_file(*lines), "csv")
        exported_csv = export_centres(s, None, "csv")
        exported_xlsx = export_centres(s, None, "xlsx")
        before = s.exec(select(Centre)).one().model_dump(exclude={"updated_at"})
    cells = [c for row in csv.reader(io.StringIO(exported_csv.decode("utf-8-sig"))) for c in row]
    assert not [c for c in cells if starts_a_formula(c)]
    sheet = load_workbook(io.BytesIO(exported_xlsx)).worksheets[0]
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str) and starts_a_formula(cell.value):
                assert cell.data_type == "s", cell.value  # text, not a formula
    for data, fmt in ((exported_csv, "csv"), (exported_xlsx, "xlsx")):
        other = open_database(f"sqlite:///{tmp_path / fmt}.db")
        with other.session() as s:
            import_centres(s, data, fmt)
            after = s.exec(select(Centre)).one().model_dump(exclude={"updated_at"})
        other.close()
        assert after == before  # lossless: the apostrophe comes off again


def test_ledger_csv_is_inert() -> None:
    rows = [{"事项": value, "编号": n} for n, value in enumerate(HOSTILE)]
    text = spreadsheets.csv_file(rows).decode("utf-8-sig")
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert not [c for c in cells if starts_a_formula(c)]


def village_lines(n: int, bad: bool = False) -> list[str]:
    year = "x" if bad else ""
    return [f"{DISTRICT},区,district,,demonstration,,,,,1"] + [
        f"511703001{v:03d},村{v},village,511703001000,follow-on,{year},,,,1" for v in range(n)
    ]


def test_imports_cap_rows(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    data = csv_file(*village_lines(10))
    with db.session() as s:
        with pytest.raises(ImportRejected) as info:
            import_centres(s, data, "csv", max_rows=5)
        assert "more than 5 rows" in info.value.problems[0].reason
        monkeypatch.setenv("DISPATCH_IMPORT_MAX_ROWS", "3")  # the setting, by default
        with pytest.raises(ImportRejected) as info:
            import_centres(s, data, "csv")
        assert "more than 3 rows" in info.value.problems[0].reason
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        for line in [HEADER, *village_lines(10)]:
            ws.append(line.split(","))
        out = io.BytesIO()
        wb.save(out)
        with pytest.raises(ImportRejected) as info:
            import_centres(s, out.getvalue(), "xlsx", max_rows=5)
        assert "more than 5 rows" in info.value.problems[0].reason
        assert s.exec(select(Centre)).first() is None  # nothing written


def test_the_problem_list_is_capped_and_counted(db: Database) -> None:
    data = csv_file(*village_lines(500, bad=True))
    with db.session() as s, pytest.raises(ImportRejected) as info:
        import_centres(s, data, "csv")
    problems = info.value.problems
    assert len(problems) == MAX_PROBLEMS
    assert info.value.total > 500  # type: ignore[attr-defined]
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    assert str(info.value.total) in info.value.message  # type: ignore[attr-defined]


async def test_an_import_over_http_reports_the_count(
    client: TestClient, demo_settings: Settings
) -> None:
    admin = bearer(make_token(demo_settings, "admin"))
    headers = {**admin, "Content-Type": "text/csv"}
    data = csv_file(*village_lines(300, bad=True))
    resp = await client.post("/api/v1/centers/import", headers=headers, data=data)
    assert resp.status == 422
    body = await resp.json()
    assert len(body["problems"]) == MAX_PROBLEMS and body["problem_count"] > 300


def test_an_xlsx_that_unpacks_too_far_is_refused(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(centre_files, "XLSX_MAX_UNPACKED", 1024 * 1024)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("xl/worksheets/sheet1.xml", b"\0" * (4 * 1024 * 1024))
    assert len(out.getvalue()) < 64 * 1024
    with db.session() as s, pytest.raises(ImportRejected) as info:
        import_centres(s, out.getvalue(), "xlsx")
    assert "unpacks to" in info.value.problems[0].reason
