"""Import and export of centres as CSV and XLSX files.

Invariants:
- An import is all or nothing: every row is parsed and checked before anything is
  written, and any problem raises `ImportRejected` with every problem found while the
  session is left untouched. The caller owns the transaction; nothing here commits.
- After an import every centre's `path` is its parent's path plus its code and "/"
  (the invariant of centres.py), for the imported centres and everything below them.
- Export → import into an empty database → export gives the same bytes for CSV and the
  same cells for XLSX, and equal centres on every field but `updated_at`.
- The database is read in bulk (batches of at most `db.IN_BATCH` keys), never once per row.
"""

from __future__ import annotations

import csv
import heapq
import io
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import ParseError

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy import ColumnElement, and_, insert, or_
from sqlmodel import Session, col, select

from . import spreadsheets
from .accounts import Account, Role
from .centres import (
    Centre,
    CentreClass,
    Level,
    below_range,
    format_grid_workers,
    parse_class,
    parse_code,
    parse_grid_workers,
    parse_level,
    parse_name,
    parse_phone,
    parse_year,
)
from .clock import utcnow
from .db import in_batches
from .errors import ImportRejected, InvalidInput, RowProblem

COLUMNS: tuple[str, ...] = (
    "code",
    "name",
    "level",
    "parent_code",
    "class",
    "target_year",
    "director_name",
    "director_phone",
    "grid_workers",
    "active",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("code", "name", "level", "parent_code", "class")
HEADER_ALIASES: dict[str, str] = {c: c for c in COLUMNS} | {
    "代码": "code",
    "统一代码": "code",
    "名称": "name",
    "层级": "level",
    "上级代码": "parent_code",
    "类别": "class",
    "目标年份": "target_year",
    "主任": "director_name",
    "主任电话": "director_phone",
    "网格员": "grid_workers",
    "启用": "active",
}
FORMATS = ("csv", "xlsx")
SHEET = "centres"
RANGES_PER_QUERY = 200  # path ranges OR-ed into one query (2 variables each)
DIRECTOR_NAME_MAX = 50  # Centre.director_name max_length
MAX_PROBLEMS = 200  # an import lists at most this many problems, and says how many in all
XLSX_MAX_UNPACKED = 256 * 1024 * 1024  # bytes an XLSX may hold unpacked (a zip bomb stops)
XLSX_MAX_MEMBERS = 10_000


def default_max_rows() -> int:
    """DISPATCH_IMPORT_MAX_ROWS as the environment sets it (callers may pass their own)."""
    from .settings import Settings

    return Settings.from_env().import_max_rows


ACTIVE_VALUES: dict[str, bool] = {
    "": True, "1": True, "true": True, "yes": True, "是": True,
    "0": False, "false": False, "no": False, "否": False,
}  # fmt: skip
TEXT_COLUMNS = frozenset({"code", "parent_code", "director_phone"})  # "@" format in XLSX

Cell = str | int | None


@dataclass(frozen=True)
class ImportResult:
    """Rows of the file by outcome. A listed centre whose fields all match is unchanged
    even when its path moves with an ancestor."""

    created: int
    updated: int
    unchanged: int


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInput("format", f"unknown file format {fmt!r}: use csv or xlsx")
    return fmt


# --- export -------------------------------------------------------------------------


def export_centres(session: Session, under_path: str | None, fmt: str) -> bytes:
    """The centres in the subtree at `under_path` (all when None), parents first."""
    _check_format(fmt)
    rows = [
        dict(zip(COLUMNS, _export_row(c), strict=True)) for c in _centres_under(session, under_path)
    ]
    if fmt == "csv":
        return spreadsheets.csv_file(rows, COLUMNS)
    return spreadsheets.xlsx_table(rows, COLUMNS, sheet=SHEET, text_columns=TEXT_COLUMNS)


def _centres_under(session: Session, under_path: str | None) -> list[Centre]:
    # Ordering by path puts every parent before its children (a path is a prefix of its
    # children's paths), so the file imports in one pass.
    stmt = select(Centre).order_by(Centre.path)
    if under_path is not None:
        low, high = below_range(under_path)
        stmt = stmt.where(Centre.path >= low, Centre.path < high)
    return list(session.exec(stmt))


def _export_row(c: Centre) -> list[Cell]:
    """One centre in COLUMNS order; exactly what `_parse_row` reads back."""
    return [
        c.code,
        c.name,
        c.level,
        c.parent_code or "",
        c.centre_class,
        c.target_year,
        c.director_name,
        c.director_phone,
        format_grid_workers(c.grid_workers or []),  # the JSON column allows null
        "1" if c.active else "0",
    ]


# --- reading a file into rows of text -----------------------------------------------


@dataclass(frozen=True)
class _RawRow:
    line: int  # the header is line 1; for CSV the physical line where the row starts
    cells: list[str]


def _reject(line: int, column: str, reason: str) -> ImportRejected:
    return ImportRejected(problems=[RowProblem(line, column, reason)])


def _too_many_rows(max_rows: int) -> ImportRejected:
    return _reject(max_rows + 2, "", f"more than {max_rows} rows after the header; split the "
                   "file (DISPATCH_IMPORT_MAX_ROWS)")  # fmt: skip


def _read_csv(data: bytes, max_rows: int) -> list[_RawRow]:
    text = _decode(data)
    # strict: a stray quote is reported, not silently glued into a neighbouring value.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[_RawRow] = []
    start = 1
    try:
        for cells in reader:
            if len(rows) > max_rows:  # the header and max_rows rows are in
                raise _too_many_rows(max_rows)
            rows.append(_RawRow(start, [spreadsheets.restore_cell(c.strip()) for c in cells]))
            # line_num counts physical lines read so far, quoted newlines included.
            start = reader.line_num + 1
    except csv.Error as e:
        raise _reject(start, "", f"unreadable CSV: {e}") from None
    return rows


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # GB18030: what Excel in China saves as CSV
        try:
            return data.decode(encoding).removeprefix("\ufeff")  # a GB18030 BOM too
        except UnicodeDecodeError:
            continue
    raise _reject(1, "", "the file is neither UTF-8 nor GB18030 text")


def _check_unpacked(data: bytes) -> None:
    """Refuse a workbook that would unpack to more than XLSX_MAX_UNPACKED bytes. The
    sizes come from the zip's directory; zipfile never inflates a member beyond its
    stated size (it stops and fails the CRC), so they bound what openpyxl can read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise _reject(1, "", f"not a readable XLSX workbook: {e}") from None
    if len(members) > XLSX_MAX_MEMBERS:
        raise _reject(1, "", f"the workbook has {len(members)} parts; at most {XLSX_MAX_MEMBERS}")
    unpacked = sum(m.file_size for m in members)
    if unpacked > XLSX_MAX_UNPACKED:
        raise _reject(1, "", f"the workbook unpacks to {unpacked} bytes; at most "
                      f"{XLSX_MAX_UNPACKED}")  # fmt: skip


def _read_xlsx(data: bytes, max_rows: int) -> list[_RawRow]:
    _check_unpacked(data)
    # openpyxl warns about features of other tools' files (styles, extensions) that do
    # not touch cell values; those warnings are noise for an import.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except _XLSX_ERRORS as e:
            raise _reject(1, "", f"not a readable XLSX workbook: {e}") from None
        try:
            return _sheet_rows(wb, max_rows)
        except _XLSX_ERRORS as e:  # read-only sheets are parsed while iterating
            raise _reject(1, "", f"not a readable XLSX workbook: {e}") from None
        finally:
            wb.close()


_XLSX_ERRORS = (
    zipfile.BadZipFile, InvalidFileException, ParseError, KeyError, ValueError, OSError
)  # fmt: skip


def _sheet_rows(wb: Any, max_rows: int) -> list[_RawRow]:
    """The "centres" sheet, else the first one, as text rows (at most max_rows + 1)."""
    if not wb.worksheets:
        raise _reject(1, "", "the workbook has no sheet")
    ws = wb[SHEET] if SHEET in wb.sheetnames else wb.worksheets[0]
    ws.reset_dimensions()  # trust the rows, not the (often wrong) stored size
    # Missing rows are filled in by openpyxl, so the n-th row is sheet row n.
    rows = []
    for n, values in enumerate(ws.iter_rows(min_row=1, values_only=True), 1):
        if n > max_rows + 1:
            raise _too_many_rows(max_rows)
        rows.append(_RawRow(n, [spreadsheets.restore_cell(_cell_text(v)) for v in values]))
    return rows


def _cell_text(value: object) -> str:
    """A cell as the text a CSV would hold; integral numbers lose their ".0"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# --- parsing rows -------------------------------------------------------------------


@dataclass
class _Row:
    """One data row. `values` maps Centre attributes to parsed values; an attribute is
    absent when its column is absent from the file or its cell had a problem."""

    line: int
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        return self.values.get("code")

    @property
    def level(self) -> Level | None:
        return self.values.get("level")

    @property
    def parent_ok(self) -> bool:
        return "parent_code" in self.values

    @property
    def parent_code(self) -> str | None:
        return self.values.get("parent_code")


def _parse_parent(value: str) -> str | None:
    return parse_code(value, "parent_code") if value else None


def _parse_director_name(value: str) -> str:
    if len(value) > DIRECTOR_NAME_MAX:
        raise InvalidInput("director_name", f"longer than {DIRECTOR_NAME_MAX} characters")
    return value


def _parse_active(value: str) -> bool:
    key = value.strip().lower()
    if key not in ACTIVE_VALUES:
        raise InvalidInput("active", f"must be 1 or 0 (true/false, yes/no, 是/否), got {value!r}")
    return ACTIVE_VALUES[key]


# column → (Centre attribute, parser). target_year is parsed apart: it needs the class.
_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "code": ("code", parse_code),
    "name": ("name", parse_name),
    "level": ("level", parse_level),
    "parent_code": ("parent_code", _parse_parent),
    "class": ("centre_class", parse_class),
    "director_name": ("director_name", _parse_director_name),
    "director_phone": ("director_phone", lambda v: parse_phone(v, "director_phone")),
    "grid_workers": ("grid_workers", parse_grid_workers),
    "active": ("active", _parse_active),
}


def _parse_header(header: _RawRow) -> tuple[list[str | None], list[RowProblem]]:
    """The column of each cell position (None: a blank header cell)."""
    line = header.line  # 1, unless blank lines come first
    columns: list[str | None] = []
    problems: list[RowProblem] = []
    for cell in header.cells:
        name = HEADER_ALIASES.get(cell.lower()) if cell else None
        if cell and name is None:
            problems.append(RowProblem(line, cell, f"unknown column {cell!r}"))
        elif name is not None and name in columns:
            problems.append(RowProblem(line, name, f"column {name} appears more than once"))
            name = None
        columns.append(name)
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            problems.append(RowProblem(line, name, f"required column {name} is missing"))
    return columns, problems


def _parse_row(raw: _RawRow, columns: list[str | None]) -> tuple[_Row, list[RowProblem]]:
    row = _Row(raw.line)
    problems: list[RowProblem] = []
    cells = dict.fromkeys((c for c in columns if c is not None), "")
    for i, value in enumerate(raw.cells):
        name = columns[i] if i < len(columns) else None
        if name is not None:
            cells[name] = value
        elif value:
            problems.append(RowProblem(raw.line, f"#{i + 1}", "a value under no column"))
    for name, value in cells.items():
        if name in _PARSERS:
            attr, parse = _PARSERS[name]
            try:
                row.values[attr] = parse(value)
            except InvalidInput as e:
                problems.append(RowProblem(raw.line, name, e.reason))
    if "target_year" in cells:
        _parse_target_year(row, cells["target_year"], problems)
    return row, problems


def _parse_target_year(row: _Row, value: str, problems: list[RowProblem]) -> None:
    cls: CentreClass | None = row.values.get("centre_class")
    if cls is None and not value:
        return  # the year would default to the class's, and the class is already wrong
    try:
        row.values["target_year"] = parse_year(value, cls or CentreClass.demonstration)
    except InvalidInput as e:
        problems.append(RowProblem(row.line, "target_year", e.reason))


def _parse_rows(raws: list[_RawRow]) -> tuple[list[_Row], list[RowProblem], int]:
    """The rows, the first problems found (in line order), and how many more were not kept."""
    raws = [r for r in raws if any(r.cells)]  # blank rows, trailing ones above all
    if not raws:
        raise _reject(1, "", "the file is empty: it needs a header row")
    columns, problems = _parse_header(raws[0])
    if problems:
        raise ImportRejected(problems=problems)  # rows cannot be read without a header
    rows: list[_Row] = []
    total = 0
    for raw in raws[1:]:
        row, row_problems = _parse_row(raw, columns)
        rows.append(row)
        total += len(row_problems)
        if len(problems) < MAX_PROBLEMS:  # rows come in line order: these are the first
            problems += row_problems
    return rows, problems, total - len(problems)


# --- checks against the file and the database ---------------------------------------


def _index(rows: list[_Row]) -> tuple[dict[str, _Row], list[RowProblem]]:
    """Rows by code; a repeated code keeps its first row and reports the later ones."""
    by_code: dict[str, _Row] = {}
    problems: list[RowProblem] = []
    for row in rows:
        if row.code is None:
            continue
        first = by_code.get(row.code)
        if first is None:
            by_code[row.code] = row
        else:
            reason = f"duplicate code {row.code}: first on line {first.line}"
            problems.append(RowProblem(row.line, "code", reason))
    return by_code, problems


def _load(session: Session, codes: Iterable[str]) -> dict[str, Centre]:
    found: dict[str, Centre] = {}
    for chunk in in_batches(codes):
        for c in session.exec(select(Centre).where(col(Centre.code).in_(chunk))):
            found[c.code] = c
    return found


def _load_children(session: Session, codes: Iterable[str]) -> list[Centre]:
    out: list[Centre] = []
    for chunk in in_batches(codes):
        out += session.exec(select(Centre).where(col(Centre.parent_code).in_(chunk)))
    return out


def _check_parent(
    row: _Row, by_code: dict[str, _Row], existing: dict[str, Centre]
) -> RowProblem | None:
    """The level rule: a district has no parent; others sit exactly one level below it."""
    level, parent = row.level, row.parent_code
    if level is None or not row.parent_ok:
        return None  # already reported
    want = level.parent_level
    if want is None:
        if parent is None:
            return None
        return RowProblem(row.line, "parent_code", "a district has no parent: leave it empty")
    if parent is None:
        return RowProblem(row.line, "parent_code", f"a {level} needs its parent {want}'s code")
    if parent == row.code:
        return RowProblem(row.line, "parent_code", "a centre cannot be its own parent")
    parent_level = _level_of(parent, by_code, existing)
    if parent_level is None:
        if parent in by_code or parent in existing:
            return None  # the parent's row has a bad level, reported on its own line
        reason = f"unknown parent {parent}: neither in the file nor in the database"
        return RowProblem(row.line, "parent_code", reason)
    if parent_level != want:
        reason = (
            f"level that does not fit the parent: a {level}'s parent must be a {want}, "
            f"{parent} is a {parent_level}"
        )
        return RowProblem(row.line, "parent_code", reason)
    return None


def _level_of(code: str, by_code: dict[str, _Row], existing: dict[str, Centre]) -> Level | None:
    # The file wins: it is what the parent will be after the import.
    if code in by_code:
        return by_code[code].level
    if code in existing:
        return Level(existing[code].level)
    return None


def _check_kept_children(
    session: Session, by_code: dict[str, _Row], existing: dict[str, Centre]
) -> list[RowProblem]:
    """A centre whose level changes must not keep children (not moved by the file) of a
    level that no longer fits under it."""
    changed = _level_changes(by_code, existing)
    misfits: dict[str, list[Centre]] = {}
    for child in _load_children(session, changed):
        if child.code in by_code:
            continue  # the file states the child's parent and level; checked on its row
        parent = changed[child.parent_code or ""]
        if Level(child.level).parent_level != parent.level:
            misfits.setdefault(child.parent_code or "", []).append(child)
    problems = []
    for code, kids in misfits.items():
        row, first = changed[code], min(kids, key=lambda c: c.code)
        reason = (
            f"a level that its {len(kids)} child centre(s) no longer fit: {code} keeps "
            f"{first.code}, a {first.level}, which cannot sit under a {row.level}"
        )
        problems.append(RowProblem(row.line, "level", reason))
    return problems


def _level_changes(by_code: dict[str, _Row], existing: dict[str, Centre]) -> dict[str, _Row]:
    return {
        code: row
        for code, row in by_code.items()
        if code in existing and row.level is not None and row.level != existing[code].level
    }


def _check_accounts(
    session: Session, by_code: dict[str, _Row], existing: dict[str, Centre]
) -> list[RowProblem]:
    """An account's role must keep fitting its centre's level: a centre with accounts
    cannot change level (move or remove the accounts first)."""
    changed = _level_changes(by_code, existing)
    problems = []
    for chunk in in_batches(sorted(changed)):
        stmt = select(Account).where(col(Account.centre_code).in_(chunk))
        for account in session.exec(stmt):
            row = changed[account.centre_code or ""]
            if Role(account.role).level != row.level:
                reason = (
                    f"{account.centre_code} cannot become a {row.level}: account "
                    f"{account.username!r} ({account.role}) belongs to it"
                )
                problems.append(RowProblem(row.line, "level", reason))
    return problems


class _Paths:
    """New paths: each centre's path is its new parent's path plus its code and "/".

    A centre's new parent is the file's when the file lists it, otherwise the stored one
    (read from stored paths, which name every ancestor). `None` marks a parent cycle.
    """

    def __init__(self, by_code: dict[str, _Row]) -> None:
        self.by_code = by_code
        self.stored_parent: dict[str, str | None] = {}
        self.memo: dict[str, str | None] = {}

    def learn(self, centres: Iterable[Centre]) -> None:
        for c in centres:
            codes = c.path.rstrip("/").split("/")
            for i, code in enumerate(codes):
                self.stored_parent.setdefault(code, codes[i - 1] if i else None)

    def parent(self, code: str) -> str | None:
        row = self.by_code.get(code)
        return row.parent_code if row is not None else self.stored_parent.get(code)

    def of(self, code: str) -> str | None:
        chain: list[str] = []  # codes whose paths are not known yet, deepest first
        seen: set[str] = set()
        cur: str | None = code
        base: str | None = ""
        while cur is not None:
            if cur in self.memo:
                base = self.memo[cur]
                break
            if cur in seen:
                base = None  # a cycle: every centre on it has no path
                break
            seen.add(cur)
            chain.append(cur)
            cur = self.parent(cur)
        for c in reversed(chain):
            base = None if base is None else base + c + "/"
            self.memo[c] = base
        return self.memo[code]


# --- writing ------------------------------------------------------------------------


def _new_centre(row: _Row, path: str) -> dict[str, Any]:
    """The stored fields of a centre the file creates; absent columns take defaults."""
    v = row.values
    cls: CentreClass = v["centre_class"]
    return {
        "code": v["code"],
        "name": v["name"],
        "level": v["level"].value,
        "parent_code": v["parent_code"],
        "path": path,
        "centre_class": cls.value,
        "target_year": v.get("target_year", cls.default_target_year),
        "director_name": v.get("director_name", ""),
        "director_phone": v.get("director_phone", ""),
        "grid_workers": v.get("grid_workers", []),
        "active": v.get("active", True),
        "updated_at": utcnow(),
    }


def _changes(row: _Row, centre: Centre) -> dict[str, Any]:
    """The stored fields the row changes. Columns absent from the file keep their
    values, except that a new class without a target_year column resets the year."""
    wanted = {k: _stored(v) for k, v in row.values.items()}
    if "target_year" not in wanted and wanted["centre_class"] != centre.centre_class:
        wanted["target_year"] = CentreClass(wanted["centre_class"]).default_target_year
    return {k: v for k, v in wanted.items() if getattr(centre, k) != v}


def _stored(value: Any) -> Any:
    return value.value if isinstance(value, Level | CentreClass) else value


def _moved_roots(moved: dict[str, str]) -> list[str]:
    """The old paths of moved centres not already below another moved one."""
    roots: list[str] = []
    for old in sorted(moved.values()):
        if not roots or not old.startswith(roots[-1]):
            roots.append(old)
    return roots


def _load_below(session: Session, old_paths: list[str]) -> list[Centre]:
    out: list[Centre] = []
    for batch in in_batches(old_paths, RANGES_PER_QUERY):
        conds: list[ColumnElement[bool]] = []
        for path in batch:
            low, high = below_range(path)
            conds.append(and_(col(Centre.path) > low, col(Centre.path) < high))
        out += session.exec(select(Centre).where(or_(*conds)))
    return out


def _write(
    session: Session, by_code: dict[str, _Row], existing: dict[str, Centre], paths: _Paths
) -> ImportResult:
    """Insert new centres parents first, then update, then re-path moved subtrees."""
    new = [row for code, row in by_code.items() if code not in existing]
    # A shorter new path is never below a longer one, so parents are inserted first and
    # each insert satisfies the foreign key; no path can clash, as each ends in its code.
    new.sort(key=lambda r: (_must(paths.of(r.values["code"])).count("/"), r.line))
    if new:
        # One bulk INSERT (in list order): building 36,000 model objects costs seconds.
        values = [_new_centre(r, _must(paths.of(r.values["code"]))) for r in new]
        session.exec(insert(Centre), params=values)

    updated = unchanged = 0
    moved: dict[str, str] = {}  # code → old path
    for code, row in by_code.items():
        centre = existing.get(code)
        if centre is None:
            continue
        changes = _changes(row, centre)
        path = _must(paths.of(code))
        if path != centre.path:
            moved[code] = centre.path
            centre.path = path
        if changes:
            for attr, value in changes.items():
                setattr(centre, attr, value)
            centre.updated_at = utcnow()
            updated += 1
        else:
            unchanged += 1
    session.flush()

    below = [c for c in _load_below(session, _moved_roots(moved)) if c.code not in by_code]
    paths.learn(below)
    for c in below:
        c.path = _must(paths.of(c.code))  # the stored parent stays; an ancestor moved
    session.flush()
    return ImportResult(created=len(new), updated=updated, unchanged=unchanged)


def _must(path: str | None) -> str:
    assert path is not None, "parent cycles are rejected before writing"
    return path


# --- import -------------------------------------------------------------------------


def import_centres(
    session: Session, data: bytes, fmt: str, *, max_rows: int | None = None
) -> ImportResult:
    """Create or update the file's centres; all of them, or none with `ImportRejected`
    (listing the first MAX_PROBLEMS problems by line, `total` counting all of them).
    At most `max_rows` rows (default: DISPATCH_IMPORT_MAX_ROWS)."""
    _check_format(fmt)
    max_rows = default_max_rows() if max_rows is None else max_rows
    raws = _read_csv(data, max_rows) if fmt == "csv" else _read_xlsx(data, max_rows)
    rows, problems, unlisted = _parse_rows(raws)
    by_code, dup_problems = _index(rows)
    problems += dup_problems
    wanted = set(by_code) | {r.parent_code for r in rows if r.parent_code is not None}
    existing = _load(session, wanted)
    for row in by_code.values():
        problem = _check_parent(row, by_code, existing)
        if problem is not None:
            problems.append(problem)
    problems += _check_kept_children(session, by_code, existing)
    problems += _check_accounts(session, by_code, existing)
    paths = _Paths(by_code)
    paths.learn(existing.values())
    if not problems:
        problems += _check_cycles(by_code, paths)
    if problems or unlisted:
        raise _rejected(problems, unlisted)
    return _write(session, by_code, existing, paths)


def _rejected(problems: list[RowProblem], unlisted: int) -> ImportRejected:
    """The first MAX_PROBLEMS problems by line; `total` (an attribute the web layer
    reports as `problem_count`) counts every one."""
    total = len(problems) + unlisted
    listed = heapq.nsmallest(MAX_PROBLEMS, problems, key=lambda p: p.line)
    exc = ImportRejected(problems=listed, total=total)
    if total > len(listed):
        exc.message = (f"{total} problems in the file (the first {len(listed)} listed); "
                       "nothing was imported")  # fmt: skip
        exc.args = (exc.message,)
    return exc


def _check_cycles(by_code: dict[str, _Row], paths: _Paths) -> list[RowProblem]:
    # The level rule already makes a cycle impossible; this guards the path invariant.
    return [
        RowProblem(row.line, "parent_code", "the parents form a cycle through this centre")
        for code, row in by_code.items()
        if paths.of(code) is None
    ]
