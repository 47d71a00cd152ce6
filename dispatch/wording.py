"""How a call's invited centres read in a line: "翠屏街道及所辖20个村（社区）" / "翠屏街道
and its 20 villages", never "翠屏街道 等20个" (which reads as twenty towns).

Levels come from the 12-digit statistical codes (district DDDDDD000000, town
DDDDDDTTT000, village DDDDDDTTTVVV), so no database read is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def is_town(code: str) -> bool:
    return len(code) == 12 and code[9:] == "000" and code[6:9] != "000"


def is_village(code: str) -> bool:
    return len(code) == 12 and code[9:] != "000"


def callees_phrase(callees: Sequence[str], names: Mapping[str, str]) -> tuple[str, str]:
    """(Chinese, English) for the centres a call invites, in their order."""
    if not callees:
        return "", ""
    first = names.get(callees[0], callees[0])
    if len(callees) == 1:
        return first, first
    rest = callees[1:]
    head = callees[0]
    if is_town(head) and all(is_village(c) and c[:9] == head[:9] for c in rest):
        n = len(rest)
        return (f"{first}及所辖{n}个村（社区）",
                f"{first} and its {n} village{'s' if n > 1 else ''}")  # fmt: skip
    total = len(callees)
    more = "s" if total > 2 else ""
    if all(is_village(c) for c in callees):
        return f"{first}等{total}个村（社区）", f"{first} and {total - 1} more village{more}"
    return f"{first}等{total}个中心", f"{first} and {total - 1} more centre{more}"


def callees_text(callees: Sequence[str], names: Mapping[str, str], lang: str) -> str:
    zh, en = callees_phrase(callees, names)
    return zh if lang == "zh" else en
