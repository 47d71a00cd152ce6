"""How invited centres read (dispatch/wording.py): a town with its villages reads as the
town and its N villages, never "翠屏街道 等20个"."""

from __future__ import annotations

from dispatch.wording import callees_phrase, callees_text

TOWN = "511703002000"
NAMES = {TOWN: "翠屏街道", "511703002001": "沿江社区", "511703002002": "北外社区",
         "511703003001": "别的村", "511703003000": "别的镇"}  # fmt: skip


def test_a_town_and_its_villages() -> None:
    callees = [TOWN, *(f"5117030020{n:02d}" for n in range(1, 21))]
    assert callees_phrase(callees, NAMES) == ("翠屏街道及所辖20个村（社区）",
                                              "翠屏街道 and its 20 villages")  # fmt: skip
    assert callees_text([TOWN, "511703002001"], NAMES, "en") == "翠屏街道 and its 1 village"


def test_villages_and_mixed_calls() -> None:
    villages = ["511703002001", "511703002002", "511703003001"]
    assert callees_phrase(villages, NAMES) == ("沿江社区等3个村（社区）",
                                               "沿江社区 and 2 more villages")  # fmt: skip
    mixed = ["511703003000", "511703002001"]  # another town's village: not "its"
    assert callees_phrase(mixed, NAMES) == ("别的镇等2个中心", "别的镇 and 1 more centre")
    assert callees_phrase(["511703002001"], NAMES) == ("沿江社区", "沿江社区")
    assert callees_phrase([], NAMES) == ("", "")
