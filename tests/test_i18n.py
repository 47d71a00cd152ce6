"""Every text key a template uses exists in Chinese and English."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

from web.i18n import LANGS, MESSAGES, pick_language, translator

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"


def test_every_key_in_the_templates_is_translated() -> None:
    used: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_.-]+)'\)", path.read_text(encoding="utf-8")))
    # Keys built from values: roles, levels and classes.
    dynamic = {k for k in MESSAGES if k.startswith(("role.", "level.", "class."))}
    assert used, "no keys found: the pattern is stale"
    assert sorted(used - set(MESSAGES)) == []
    assert dynamic >= {"role.admin", "level.village", "class.follow-on"}
    for key, pair in MESSAGES.items():
        assert len(pair) == len(LANGS) and all(pair), key


def test_language_choice() -> None:
    def lang(path: str = "/", **headers: str) -> str:
        return pick_language(make_mocked_request("GET", path, headers=headers))

    assert lang() == "zh"
    assert lang(**{"Accept-Language": "en-GB,en;q=0.8"}) == "en"
    assert lang(**{"Accept-Language": "fr, en;q=0.5, zh-CN;q=0.9"}) == "zh"
    assert lang("/?lang=en", **{"Accept-Language": "zh-CN"}) == "en"
    assert lang(**{"Cookie": "lang=en"}) == "en"
    assert lang("/?lang=xx") == "zh"
    assert translator("en")("nav.home") == "Home" and translator("zh")("nav.home") == "首页"


def test_rota_messages_show_in_the_page_language() -> None:
    from web.render import bilingual

    text = "找不到 10 分钟的空档：A → B（缺 10 时段分钟）：5 个工作日坐席已满 / no free slot"
    assert bilingual(text, "zh").startswith("找不到") and "no free" not in bilingual(text, "zh")
    assert bilingual(text, "en") == "no free slot"
    assert bilingual("plain", "en") == "plain"
