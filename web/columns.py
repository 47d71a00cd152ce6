"""Text laid out in terminal columns: a wide (East Asian) character takes two cells, so
Chinese and English line up in the CLI's tables and calendars."""

from __future__ import annotations

import unicodedata


def width(text: str) -> int:
    """Display columns: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, cells: int, right: bool = False) -> str:
    """`text` filled with spaces to `cells` columns (on the left when `right`); text
    already as wide or wider comes back unchanged."""
    gap = " " * max(0, cells - width(text))
    return gap + text if right else text + gap
