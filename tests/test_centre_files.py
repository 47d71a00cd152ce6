"""Import and export of centres as CSV and XLSX (dispatch/centre_files.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from sqlmodel import Session, func, select

from dispatch.accounts import create_account
from dispatch.centre_files import (
    COLUMNS,
    ImportResult,
    _Paths,
    _Row,
    export_centres,
    import_centres,
)
from dispatch.centres import Centre, Level
from dispatch.db import Database
from dispatch.errors import ImportRejected, InvalidInput, RowProblem

DISTRICT = "511703000000"
TOWN_A = "511703100000"
TOWN_B = "511703101000"
HEADER = ",".join(COLUMNS)

# (code, name, level, parent, class, target_year, director, phone, grid workers, active)
TREE: list[tuple[Any, ...]] = [
    (DISTRICT, "通川区综治中心", "district", None, "demonstration", 2022, "王主任",
     "0818-2100000", [], True),
    (TOWN_A, "西外镇综治中心", "town", DISTRICT, "establishing", 2023, "李镇长",
     "13800000001", [], True),
    (TOWN_B, "东城街道综治中心", "town", DISTRICT, "follow-on", 2025, "", "", [], False),
    ("511703100201", "金山村", "village", TOWN_A, "follow-on", 2024, "赵书记", "13900000001",
     [{"name": "张三", "phone": "13800000011"}, {"name": "李四", "phone": ""}], True),
    ("511703100202", "青龙村", "village", TOWN_A, "establishing", 2023, "", "",
     [{"name": "王五", "phone": "+86 138-0000-0012"}], True),
    ("511703101201", "朝阳社区", "village", TOWN_B, "demonstration", 2022, "", "", [], True),
]  # fmt: skip


def add_tree(session: Session) -> None:
    """The small district above, with paths as centres.py defines them."""
    paths: dict[str | None, str] = {None: ""}
    for code, name, level, parent, cls, year, director, phone, workers, active in TREE:
        paths[code] = paths[parent] + code + "/"
        session.add(
            Centre(
                code=code, name=name, level=level, parent_code=parent, path=paths[code],
                centre_class=cls, target_year=year, director_name=director,
                director_phone=phone, grid_workers=workers, active=active,
            )
        )  # fmt: skip
        session.flush()


@pytest.fixture
def tree(db: Database) -> Database:
    with db.session() as s:
        add_tree(s)
    return db


@pytest.fixture
def other_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'b.db'}")
    database.create_schema()
    yield database
    database.close()


def snapshot(db: Database) -> dict[str, dict[str, Any]]:
    """Every centre, every field but updated_at."""
    with db.session() as s:
        return {c.code: c.model_dump(exclude={"updated_at"}) for c in s.exec(select(Centre))}


def count(db: Database) -> int:
    with db.session() as s:
        return s.exec(select(func.count()).select_from(Centre)).one()


def csv_file(*lines: str, header: str = HEADER, encoding: str = "utf-8") -> bytes:
    return "\r\n".join([header, *lines, ""]).encode(encoding)


def run_import(db: Database, data: bytes, fmt: str = "csv") -> ImportResult:
    with db.session() as s:
        return import_centres(s, data, fmt)


def rejected(db: Database, data: bytes, fmt: str = "csv") -> list[RowProblem]:
    """The problems of a rejected import, having checked that nothing was written."""
    before = snapshot(db)
    with pytest.raises(ImportRejected) as info:
        run_import(db, data, fmt)
    assert snapshot(db) == before
    assert info.value.problems
    return info.value.problems


def only(problems: list[RowProblem]) -> RowProblem:
    assert len(problems) == 1, problems
    return problems[0]


def export(db: Database, fmt: str, under: str | None = None) -> bytes:
    with db.session() as s:
        return export_centres(s, under, fmt)


def sheet_rows(data: bytes) -> list[tuple[Any, ...]]:
    wb = load_workbook(io.BytesIO(data))
    try:
        assert wb.sheetnames == ["centres"]
        return list(wb["centres"].iter_rows(values_only=True))
    finally:
        wb.close()


def xlsx_file(rows: list[list[Any]], header: tuple[str, ...] = COLUMNS) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(list(header))
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- export -------------------------------------------------------------------------


def test_export_csv_is_excel_friendly_and_parents_first(tree: Database) -> None:
    data = export(tree, "csv")
    assert data.startswith(b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == list(COLUMNS)
    codes = [r[0] for r in rows[1:]]
    assert codes == [DISTRICT, TOWN_A, "511703100201", "511703100202", TOWN_B, "511703101201"]
    assert rows[1] == [DISTRICT, "通川区综治中心", "district", "", "demonstration", "2022",
                       "王主任", "0818-2100000", "", "1"]  # fmt: skip
    assert rows[3][8] == "张三:13800000011;李四"
    assert rows[5][3:5] == [DISTRICT, "follow-on"]
    assert rows[5][9] == "0"


def test_export_only_the_subtree(tree: Database) -> None:
    with tree.session() as s:
        path = s.get(Centre, TOWN_A).path  # type: ignore[union-attr]
        data = export_centres(s, path, "csv")
    codes = [r[0] for r in csv.reader(io.StringIO(data.decode("utf-8-sig")))][1:]
    assert codes == [TOWN_A, "511703100201", "511703100202"]


def test_export_xlsx_keeps_codes_as_text_and_years_as_numbers(tree: Database) -> None:
    rows = sheet_rows(export(tree, "xlsx"))
    assert rows[0] == COLUMNS
    assert rows[1][:6] == (DISTRICT, "通川区综治中心", "district", None, "demonstration", 2022)
    assert all(isinstance(r[0], str) and len(r[0]) == 12 for r in rows[1:])
    assert isinstance(rows[2][3], str)
    assert rows[3][8] == "张三:13800000011;李四"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_values_that_look_like_formulas_or_numbers_stay_text(
    db: Database, other_db: Database, fmt: str
) -> None:
    data = csv_file(
        '511703000000,=1+1,district,,demonstration,,"=HYPERLINK(""x"")",+86 818 2100000,'
        "=SUM(1):13800000000,1"
    )
    run_import(db, data)
    exported = export(db, fmt)
    if fmt == "xlsx":
        assert sheet_rows(exported)[1][1] == "=1+1"
    run_import(other_db, exported, fmt)
    assert snapshot(other_db) == snapshot(db)
    assert snapshot(db)[DISTRICT]["director_name"] == '=HYPERLINK("x")'


def test_bad_format_is_invalid_input(tree: Database) -> None:
    with tree.session() as s:
        with pytest.raises(InvalidInput) as info:
            export_centres(s, None, "xls")
        assert info.value.field == "format"
        with pytest.raises(InvalidInput) as info:
            import_centres(s, b"", "json")
        assert info.value.field == "format"


# --- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_round_trip_is_lossless(tree: Database, other_db: Database, fmt: str) -> None:
    first = export(tree, fmt)
    assert run_import(other_db, first, fmt) == ImportResult(created=6, updated=0, unchanged=0)
    assert snapshot(other_db) == snapshot(tree)
    second = export(other_db, fmt)
    if fmt == "csv":
        assert second == first
    else:  # a workbook's zip holds save times; compare what the cells hold, types included
        assert sheet_rows(second) == sheet_rows(first)
    # Importing the same file again changes nothing.
    assert run_import(other_db, second, fmt) == ImportResult(created=0, updated=0, unchanged=6)


# --- problems -----------------------------------------------------------------------

VILLAGE_OK = "511703100203,新村,village,511703100000,follow-on,,,,,"


def test_one_bad_row_names_line_and_column_and_writes_nothing(tree: Database) -> None:
    n = count(tree)
    data = csv_file(VILLAGE_OK, "511703100204,好村,village,511703100000,bogus,,,,,")
    p = only(rejected(tree, data))
    assert (p.line, p.column) == (3, "class")
    assert "unknown class 'bogus'" in p.reason
    assert count(tree) == n


# Each case: the rows after the header, then the expected line, column and reason part.
ROW_PROBLEMS: dict[str, tuple[list[str], int, str, str]] = {
    "code not 12 digits": (["51170310020,村,village,511703100000,follow-on,,,,,"],
                           2, "code", "12-digit"),
    "code duplicated": ([VILLAGE_OK, VILLAGE_OK.replace("新村", "旧村")],
                        3, "code", "first on line 2"),
    "name empty": (["511703100203, ,village,511703100000,follow-on,,,,,"],
                   2, "name", "must not be empty"),
    "level unknown": (["511703100203,新村,hamlet,511703100000,follow-on,,,,,"],
                      2, "level", "unknown level"),
    "class unknown": (["511703100203,新村,village,511703100000,示范,,,,,"],
                      2, "class", "unknown class"),
    "year not a number": (["511703100203,新村,village,511703100000,follow-on,2O24,,,,"],
                          2, "target_year", "must be a year"),
    "year out of range": (["511703100203,新村,village,511703100000,follow-on,1999,,,,"],
                          2, "target_year", "outside"),
    "director phone": (["511703100203,新村,village,511703100000,follow-on,,刘,call me,,"],
                       2, "director_phone", "not a phone number"),
    "director name too long": (["511703100203,新村,village,511703100000,follow-on,,"
                                + "长" * 51 + ",,,"], 2, "director_name", "longer than 50"),
    "grid worker phone": (["511703100203,新村,village,511703100000,follow-on,,,,张三:12,"],
                          2, "grid_workers", "not a phone number"),
    "grid worker name": (["511703100203,新村,village,511703100000,follow-on,,,,:13800000000,"],
                         2, "grid_workers", "has no name"),
    "active": (["511703100203,新村,village,511703100000,follow-on,,,,,maybe"],
               2, "active", "must be 1 or 0"),
    "parent code malformed": (["511703100203,新村,village,5117031,follow-on,,,,,"],
                              2, "parent_code", "12-digit"),
    "district with parent": (["511704000000,新区,district,511703000000,follow-on,,,,,"],
                             2, "parent_code", "a district has no parent"),
    "town without parent": (["511703102000,新镇,town,,follow-on,,,,,"],
                            2, "parent_code", "needs its parent district"),
    "unknown parent": (["511703100203,新村,village,511703109000,follow-on,,,,,"],
                       2, "parent_code", "unknown parent 511703109000"),
    "own parent": (["511703102000,新镇,town,511703102000,follow-on,,,,,"],
                   2, "parent_code", "own parent"),
    "parent level from db": (["511703100203,新村,village,511703000000,follow-on,,,,,"],
                             2, "parent_code",
                             "a village's parent must be a town, 511703000000 is a district"),
    "parent level from file": (["511703102000,新镇,village,511703000000,follow-on,,,,,",
                                "511703100203,新村,village,511703102000,follow-on,,,,,"],
                               2, "parent_code", "level that does not fit the parent"),
    "parent's level changed by file": (
        ["511703101000,东城,village,511703100000,follow-on,,,,,",
         "511703101202,新社区,village,511703101000,follow-on,,,,,"],
        2, "level", "no longer fit"),
    "value under no column": (["511703100203,新村,village,511703100000,follow-on,,,,,,x"],
                              2, "#11", "under no column"),
}  # fmt: skip


@pytest.mark.parametrize("case", ROW_PROBLEMS, ids=list(ROW_PROBLEMS))
def test_each_kind_of_row_problem(tree: Database, case: str) -> None:
    lines, line, column, reason = ROW_PROBLEMS[case]
    problems = rejected(tree, csv_file(*lines))
    assert (line, column) in {(p.line, p.column) for p in problems}, problems
    assert any(reason in p.reason for p in problems if p.line == line), problems


def test_parent_that_became_a_village_in_the_file_misfits_its_new_child(
    tree: Database,
) -> None:
    lines = ROW_PROBLEMS["parent's level changed by file"][0]
    problems = rejected(tree, csv_file(*lines))
    assert RowProblem(
        3, "parent_code",
        "level that does not fit the parent: a village's parent must be a town, "
        "511703101000 is a village",
    ) in problems  # fmt: skip


def test_level_change_is_refused_while_children_stay(tree: Database) -> None:
    p = only(rejected(tree, csv_file("511703100000,西外镇,district,,establishing,,,,,")))
    assert (p.line, p.column) == (2, "level")
    assert "its 2 child centre(s) no longer fit" in p.reason
    assert "511703100201, a village, which cannot sit under a district" in p.reason


@pytest.mark.parametrize(
    ("header", "column", "reason"),
    [
        (HEADER + ",remark", "remark", "unknown column 'remark'"),
        (HEADER.replace("class,", ""), "class", "required column class is missing"),
        (HEADER.replace(",name,", ",名称,") + ",name", "name", "appears more than once"),
    ],
)
def test_header_problems_are_on_line_one(
    tree: Database, header: str, column: str, reason: str
) -> None:
    p = only(rejected(tree, csv_file(VILLAGE_OK, header=header)))
    assert (p.line, p.column) == (1, column)
    assert reason in p.reason


@pytest.mark.parametrize(
    ("data", "fmt", "line", "reason"),
    [
        (b"\xff\xfe\x00c\x00o", "csv", 1, "neither UTF-8 nor GB18030"),
        (b"", "csv", 1, "the file is empty"),
        (b"\r\n,,\r\n", "csv", 1, "the file is empty"),
        (HEADER.encode() + b'\r\n"511703100203,x\r\n', "csv", 2, "unexpected end of data"),
        (HEADER.encode() + b'\r\n\r\n"5117"03100203,x\r\n', "csv", 3, "unreadable CSV"),
        (b"PK not really a zip", "xlsx", 1, "not a readable XLSX"),
    ],
)
def test_unreadable_files_are_rejected(
    tree: Database, data: bytes, fmt: str, line: int, reason: str
) -> None:
    p = only(rejected(tree, data, fmt))
    assert p.line == line
    assert reason in p.reason


def test_every_bad_row_is_reported_at_once(tree: Database) -> None:
    data = csv_file(
        VILLAGE_OK,
        "511703100204,,village,511703100000,follow-on,,,,,",  # line 3
        "511703100205,五村,village,511703100000,follow-on,3000,,,,",  # line 4
        VILLAGE_OK,  # line 5
        "51170310020X,六村,hamlet,511703100000,follow-on,,,,,no",  # line 6
        "511703100207,七村,village,511703999000,follow-on,,,,,",  # line 7
    )
    found = {(p.line, p.column) for p in rejected(tree, data)}
    assert found == {
        (3, "name"),
        (4, "target_year"),
        (5, "code"),
        (6, "code"),
        (6, "level"),
        (7, "parent_code"),
    }


def test_csv_lines_are_physical_lines(tree: Database) -> None:
    data = csv_file(
        '511703100203,"新\r\n村",village,511703100000,follow-on,,,,,',  # lines 2-3
        "",  # line 4, blank
        "511703100204,好村,village,511703100000,bogus,,,,,",  # line 5
    )
    got = [(p.line, p.column) for p in rejected(tree, data)]
    assert got == [(2, "name"), (5, "class")]  # a name may not hold a line break


# --- accepted variants --------------------------------------------------------------

ZH_HEADER = "统一代码,名称,层级,上级代码,类别,目标年份,主任,主任电话,网格员,启用"


def test_chinese_headers_and_aliases(db: Database) -> None:
    data = csv_file(
        "511703000000,通川区,区,,示范类,,,,,是",
        "511703100000,西外镇,镇,511703000000,创建类,,,,,",
        "511703101000,东城,街道,511703000000,带动类,2026,,,,否",
        "511703100201,金山村,村,511703100000,带动类,,,,张三:13800000011,1",
        "511703101201,朝阳,社区,511703101000,示范类,,,,,",
        header=ZH_HEADER,
    )
    assert run_import(db, data) == ImportResult(created=5, updated=0, unchanged=0)
    got = snapshot(db)
    assert got["511703000000"]["level"] == "district"
    assert got["511703100000"]["target_year"] == 2023  # the class's default
    assert (got["511703101000"]["centre_class"], got["511703101000"]["target_year"]) == (
        "follow-on",
        2026,
    )
    assert got["511703101000"]["active"] is False
    assert got["511703101201"]["path"] == "511703000000/511703101000/511703101201/"
    assert got["511703100201"]["grid_workers"] == [{"name": "张三", "phone": "13800000011"}]
    assert run_import(db, csv_file("511703000000,通川区,区,,示范类,,,,,", header="代码"
                                   + ZH_HEADER[4:])).unchanged == 1  # fmt: skip


def test_blank_rows_are_ignored(db: Database) -> None:
    data = csv_file(
        "511703000000,通川区,district,,demonstration,,,,,",
        ",,,,,,,,,",
        "511703100000,西外镇,town,511703000000,establishing,,,,,",
        ",,,,,,,,,",
        "",
        " , ,,,,,,,,",
    )
    assert run_import(db, data).created == 2


def test_gb18030_csv_imports(db: Database) -> None:
    data = csv_file(
        "511703000000,通川区综治中心,区,,示范类,,,,,",
        "511703100000,西外镇,镇,511703000000,创建类,,,,,",
        header=ZH_HEADER,
        encoding="gb18030",
    )
    data.decode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert run_import(db, data).created == 2
    assert snapshot(db)["511703000000"]["name"] == "通川区综治中心"


def test_xlsx_with_numeric_codes_imports(db: Database) -> None:
    data = xlsx_file(
        [
            [511703000000, "通川区", "district", None, "demonstration", 2022, None,
             None, None, True],
            [511703100000.0, "西外镇", "town", 511703000000, "establishing", 2023.0, "李",
             13800000001, None, 1],
            [],  # blank rows are skipped, and trailing ones too
            [511703100201, "金山村", "village", 511703100000.0, "follow-on", None, None,
             None, "张三:13800000011", "0"],
            [], [None, None],
        ]
    )  # fmt: skip
    assert run_import(db, data, "xlsx") == ImportResult(created=3, updated=0, unchanged=0)
    got = snapshot(db)
    assert got["511703100000"]["director_phone"] == "13800000001"
    assert got["511703100201"]["path"] == "511703000000/511703100000/511703100201/"
    assert got["511703100201"]["active"] is False


def test_xlsx_problem_lines_are_sheet_rows(db: Database) -> None:
    data = xlsx_file(
        [
            [511703000000, "通川区", "district", None, "demonstration"],
            [],
            [5117031000.5, "西外镇", "town", 511703000000, "establishing"],
        ]
    )
    p = only(rejected(db, data, "xlsx"))
    assert (p.line, p.column) == (4, "code")


# --- upserts and moves --------------------------------------------------------------


def test_upsert_updates_creates_and_counts(tree: Database) -> None:
    with tree.session() as s:
        stamp = s.get(Centre, "511703100202").updated_at  # type: ignore[union-attr]
    lines = export(tree, "csv").decode("utf-8-sig").splitlines()
    lines[2] = lines[2].replace("西外镇综治中心", "西外镇平安中心")
    lines.append("511703100203,新村,village,511703100000,follow-on,,,,,")
    result = run_import(tree, "\r\n".join(lines).encode())
    assert result == ImportResult(created=1, updated=1, unchanged=5)
    with tree.session() as s:
        assert s.get(Centre, TOWN_A).name == "西外镇平安中心"  # type: ignore[union-attr]
        assert s.get(Centre, "511703100202").updated_at == stamp  # type: ignore[union-attr]
        new = s.get(Centre, "511703100203")
        assert new is not None
        assert new.path == f"{DISTRICT}/{TOWN_A}/511703100203/"
        assert new.target_year == 2024


def test_absent_optional_columns_keep_stored_values(tree: Database) -> None:
    header = "code,name,level,parent_code,class"
    data = csv_file("511703100201,金山村委,village,511703100000,follow-on", header=header)
    assert run_import(tree, data).updated == 1
    got = snapshot(tree)["511703100201"]
    assert got["name"] == "金山村委"
    assert got["director_phone"] == "13900000001"
    assert len(got["grid_workers"]) == 2
    # A new class without a year column takes the class's year, as the API does.
    data = csv_file("511703101000,东城,town,511703000000,demonstration", header=header)
    run_import(tree, data)
    assert snapshot(tree)["511703101000"]["target_year"] == 2022


def test_moving_a_village_to_another_town_updates_its_path(tree: Database) -> None:
    data = csv_file("511703100202,青龙村,village,511703101000,establishing,2023,,,"
                    "王五:+86 138-0000-0012,1")  # fmt: skip
    assert run_import(tree, data) == ImportResult(created=0, updated=1, unchanged=0)
    got = snapshot(tree)["511703100202"]
    assert got["parent_code"] == TOWN_B
    assert got["path"] == f"{DISTRICT}/{TOWN_B}/511703100202/"


def test_moving_a_town_moves_its_villages(tree: Database) -> None:
    data = csv_file(
        "511704000000,新区,district,,demonstration,,,,,",
        "511703100000,西外镇综治中心,town,511704000000,establishing,2023,李镇长,13800000001,,1",
    )
    assert run_import(tree, data) == ImportResult(created=1, updated=1, unchanged=0)
    got = snapshot(tree)
    assert got[TOWN_A]["path"] == "511704000000/511703100000/"
    for village in ("511703100201", "511703100202"):
        assert got[village]["path"] == f"511704000000/511703100000/{village}/"
    assert got["511703101201"]["path"] == f"{DISTRICT}/{TOWN_B}/511703101201/"


def test_level_change_with_children_moved_away_is_accepted(tree: Database) -> None:
    # Town B becomes a village under town A; its village moves to town A first.
    data = csv_file(
        "511703101201,朝阳社区,village,511703100000,demonstration,2022,,,,1",
        "511703101000,东城,village,511703100000,follow-on,2025,,,,0",
    )
    assert run_import(tree, data).updated == 2
    got = snapshot(tree)
    assert got[TOWN_B]["path"] == f"{DISTRICT}/{TOWN_A}/{TOWN_B}/"
    assert got["511703101201"]["path"] == f"{DISTRICT}/{TOWN_A}/511703101201/"


def test_a_parent_cycle_gets_no_path() -> None:
    a = _Row(2, {"code": "A", "parent_code": "B", "level": Level.town})
    b = _Row(3, {"code": "B", "parent_code": "A", "level": Level.town})
    paths = _Paths({"A": a, "B": b})
    assert paths.of("A") is None
    assert paths.of("B") is None


# --- scale --------------------------------------------------------------------------


def province_csv(towns: int = 40, villages: int = 900) -> bytes:
    """One district, `towns` towns and `villages` villages in each."""
    lines = [f"{DISTRICT},通川区,district,,demonstration,,,,,1"]
    for t in range(towns):
        town = f"511703{100 + t:03d}000"
        lines.append(f"{town},第{t}镇,town,{DISTRICT},establishing,,镇长{t},1380000{t:04d},,1")
        for v in range(1, villages + 1):
            workers = f"网格员{v}:139{t:04d}{v:04d};协管员{v}"
            lines.append(f"{town[:9]}{v:03d},第{t}镇{v}村,village,{town},follow-on,,,,{workers},1")
    return csv_file(*lines)


def test_a_province_imports_and_exports_whole(db: Database) -> None:
    """36k rows in, out and in again. How fast: tests/bench/demo.py (speed is the
    benches' business; a timed assertion here failed on loaded machines)."""
    data = province_csv()
    result = run_import(db, data)
    assert result.created == 1 + 40 + 40 * 900

    exported = export(db, "csv")
    assert exported.count(b"\r\n") == result.created + 1

    again = run_import(db, exported)
    assert again.unchanged == result.created


def test_a_centre_with_accounts_cannot_change_level(tree: Database) -> None:
    with tree.session() as s:
        create_account(s, username="town-b", password_hash="x", role="town_operator",
                       centre_code=TOWN_B)  # fmt: skip
    data = csv_file(
        "511703101201,朝阳社区,village,511703100000,demonstration,2022,,,,1",
        "511703101000,东城,village,511703100000,follow-on,2025,,,,0",
    )
    p = only(rejected(tree, data))
    assert (p.line, p.column) == (3, "level")
    assert "account 'town-b' (town_operator) belongs to it" in p.reason


def test_ui_level_labels_import_and_separators_in_names_are_refused(tree: Database) -> None:
    assert run_import(tree, csv_file("511703100203,新村,村/社区,511703100000,带动类,,,,,")).created
    bad = csv_file("511703100204,又村,village,511703100000,follow-on,,,,a:b:1;c,")
    p = only(rejected(tree, bad))
    assert (p.line, p.column) == (2, "grid_workers")
