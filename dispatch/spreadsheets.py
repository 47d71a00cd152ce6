"""The one spreadsheet writer: every CSV and XLSX file the service hands out — the
centres file (`dispatch.centre_files`), the dispute ledgers (`logs.ledgers`), the
reports' tables (`logs.report_files`) and the journals (`dispatch export`).

A file is rows of one shape: each row a mapping whose keys are exactly the file's
columns, in column order (`columns` names them when there may be no row).

Invariants:
- No cell starts a formula. CSV: a string that would is prefixed with an apostrophe
  (OWASP CSV injection; `neutralise_cell`, undone exactly by `restore_cell` when a file
  comes back). XLSX: strings are string cells, never formulas, whatever they start with.
- Text stays text and numbers stay numbers: a 12-digit code or a date written as a
  string is never turned into a number; None and "" are empty cells.
- CSV is UTF-8 with a BOM (Excel set to GBK, as in China, then reads it as UTF-8) and
  CRLF line ends.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

Row = Mapping[str, Any]

# A cell starting with one of these is a formula to a spreadsheet (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEXT = "@"  # the XLSX number format that keeps a cell text when it is edited


def neutralise_cell(value: str) -> str:
    """`value` made inert for a spreadsheet: a leading apostrophe before a formula start
    (OWASP). Also before apostrophes that precede one, so `restore_cell` is exact."""
    if value.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore_cell(value: str) -> str:
    """What `neutralise_cell` was given: export → import stays lossless."""
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_STARTS):
        return value[1:]
    return value


def columns_of(rows: Sequence[Row], columns: Sequence[str] | None) -> list[str]:
    """The file's columns: `columns`, else the first row's keys. Raises ValueError when a
    row's keys are not exactly the columns in order, or there is nothing to name them."""
    if columns is None:
        if not rows:
            raise ValueError("an empty file needs its columns")
        columns = list(rows[0])
    for n, row in enumerate(rows, 1):
        if list(row) != list(columns):
            raise ValueError(f"row {n} has the keys {list(row)}, not the columns {columns}")
    return list(columns)


def csv_file(rows: Sequence[Row], columns: Sequence[str] | None = None) -> bytes:
    """The header, then one line per row."""
    names = columns_of(rows, columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(names)
    writer.writerows(
        [
            ("" if v is None else neutralise_cell(v) if isinstance(v, str) else v)
            for v in row.values()
        ]
        for row in rows
    )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def xlsx_table(
    rows: Sequence[Row],
    columns: Sequence[str],
    *,
    sheet: str,
    text_columns: Collection[str] = (),
) -> bytes:
    """A plain sheet for files that come back (an import reads them): the header in row 1,
    then the rows, streamed (a province's 36,000 rows stay small in memory). Cells of
    `text_columns` also get the text format, so Excel keeps a code a code on editing."""
    names = columns_of(rows, columns)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet_name(sheet))
    ws.append(names)
    text_at = frozenset(i for i, name in enumerate(names) if name in text_columns)

    def cell(value: Any, text_format: bool) -> Any:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not (text_format or value.startswith(FORMULA_STARTS)):
            return value
        written = WriteOnlyCell(ws, value=value)
        written.data_type = "s"  # openpyxl would make "=…" a formula
        if text_format:
            written.number_format = TEXT
        return written

    for row in rows:
        ws.append([cell(v, i in text_at) for i, v in enumerate(row.values())])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def xlsx_ledger(
    rows: Sequence[Row],
    title: str,
    *,
    columns: Sequence[str] | None = None,
    sheet: str = "台账",
) -> bytes:
    """A sheet for people: the title merged across row 1, the bold header in row 2, then
    the rows. Every string is a text cell ("@"), numbers are numbers, empty values are
    empty cells; columns as wide as their content (to a limit); the sheet prints
    landscape, one page wide, repeating the header."""
    names = columns_of(rows, columns)
    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook always has its first sheet
    ws.title = sheet_name(sheet)
    width = len(names)

    head = ws.cell(row=1, column=1)
    _set(head, title)
    head.font = Font(bold=True, size=14)
    head.alignment = Alignment(horizontal="center", vertical="center")
    if width > 1:
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    ws.row_dimensions[1].height = 28

    bold = Font(bold=True)
    centred = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for c, name in enumerate(names, 1):
        cell = ws.cell(row=2, column=c)
        _set(cell, name)
        cell.font, cell.alignment = bold, centred

    wrap = Alignment(vertical="top", wrap_text=True)
    for r, row in enumerate(rows, 3):
        for c, value in enumerate(row.values(), 1):
            cell = ws.cell(row=r, column=c)
            _set(cell, value)
            cell.alignment = wrap

    for c, name in enumerate(names, 1):
        longest = max([display_width(name)] + [display_width(row[name]) for row in rows])
        ws.column_dimensions[get_column_letter(c)].width = min(max(longest + 2, 6), 48)
    ws.freeze_panes = "A3"
    ws.print_title_rows = "2:2"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    setup = ws.sheet_properties.pageSetUpPr
    assert setup is not None  # a new sheet's properties always hold one
    setup.fitToPage = True
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _set(cell: Any, value: Any) -> None:
    """Strings stay strings: the text format keeps Excel from turning codes and dates into
    numbers on editing, and "=..." is not written as a formula (openpyxl would)."""
    if value is None or value == "":
        return
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"
        cell.number_format = TEXT


def sheet_name(name: str, default: str = "台账") -> str:
    """Excel's rules: at most 31 characters, none of []:*?/\\ , not empty."""
    cleaned = "".join(ch for ch in name if ch not in "[]:*?/\\").strip("'").strip()
    return cleaned[:31] or default


def display_width(value: object) -> int:
    """Columns the longest line of `value` takes: wide (CJK) characters count two."""
    if value is None:
        return 0
    lines = str(value).split("\n")
    return max(
        sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line) for line in lines
    )
